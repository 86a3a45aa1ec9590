"""Gymnasium tasks, named by their registered id (`env=CartPole-v1`)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from rlrun.core.errors import ConfigError


@dataclass
class GymEnvConfig:
    id: str = "CartPole-v1"
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make

    def __post_init__(self) -> None:
        import gymnasium

        registry = gymnasium.envs.registry
        if self.id not in registry:
            close = difflib.get_close_matches(self.id, list(registry), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"id={self.id!r} is not a registered Gymnasium env{hint}")
