"""Networks, built from `configs/network/*.yaml` once the task's shapes are known."""

from __future__ import annotations

from typing import Any

from rlrun.core.errors import RlrunError


def build_network(cfg: Any, **shapes: Any) -> Any:
    """`hydra.utils.instantiate(cfg, **shapes)`, letting a network's own RlrunError (a bad
    size or activation) through as itself rather than wrapped in Hydra's exception."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(cfg, **shapes)
    except InstantiationException as e:
        if isinstance(e.__cause__, RlrunError):
            raise e.__cause__ from None
        raise
