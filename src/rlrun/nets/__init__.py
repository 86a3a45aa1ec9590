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


def accepts_observations(cfg: Any, obs_shape: tuple[int, ...]) -> bool:
    """Whether the network `cfg` names takes observations of this rank: each network class
    declares `input_ranks` (MLP: flat vectors; NatureCNN: images), checked without building
    it. A class that declares none is taken to accept flat vectors."""
    from rlrun.core.config import import_object

    cls = import_object(str(cfg.get("_target_", "")), "network._target_")
    rank = 1 if len(obs_shape) <= 1 else len(obs_shape)
    return rank in getattr(cls, "input_ranks", (1,))
