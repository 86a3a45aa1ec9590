"""What `algo.fast_path` means, once for every fast path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from rlrun.core.errors import ConfigError

T = TypeVar("T")


def choose(cfg: Any, why_not: Callable[[], str | None], build: Callable[[], T]) -> T | None:
    """The fast path `build()` makes, or None for the plain code, as `cfg.fast_path` (with
    `cfg.compile`) says: `off` never; `auto` where `why_not()` finds nothing against it (and
    the loss is not compiled); `on` the same, but a one-line ConfigError with the reason
    where it cannot run, so a user who insists on it learns why instead of silently getting
    the plain code."""
    if cfg.fast_path == "off":
        return None
    reason = "algo.compile=true compiles the plain code" if cfg.compile else why_not()
    if reason is None:
        return build()
    if cfg.fast_path == "on":
        raise ConfigError(f"algo.fast_path=on: {reason}; use algo.fast_path=auto or off")
    return None
