"""The training envs of a deep RL loop as one item of `ctx.track`.

Saved: each sub-env's state as plain data (`rlrun.envs.env_state`), the episode statistics,
the normalisation statistics, and the loop's current observation. Where the sub-envs' state
cannot be saved (async envs, simulators in C), a resume starts fresh episodes and keeps the
observation of the fresh reset, never the saved one of an episode that is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rlrun.envs.gym import (
    load_normalizer_state,
    load_vector_env_state,
    normalizer_state,
    vector_env_state,
)


class VecEnvState:
    def __init__(self, envs: Any, current_obs: Callable[[], Any]):
        """`current_obs` returns what the loop holds of the envs' present: the observation
        (or a tuple, e.g. observation and lives)."""
        self.envs, self.current_obs = envs, current_obs
        self.restored, self.saved_obs = False, None

    def state_dict(self) -> dict[str, Any]:
        return {"envs": vector_env_state(self.envs), "norm": normalizer_state(self.envs),
                "obs": _copy(self.current_obs())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_normalizer_state(self.envs, state["norm"])
        self.restored = load_vector_env_state(self.envs, state["envs"])
        saved = state["obs"]
        self.saved_obs = tuple(map(np.asarray, saved)) if isinstance(saved, list | tuple) \
            else np.asarray(saved)

    def observation(self, fresh: Any) -> Any:
        """After `ctx.resume()`: what to continue from (the saved observation where the envs'
        state came back, else `fresh`, the reset's)."""
        return self.saved_obs if self.restored else fresh


def _copy(x: Any) -> Any:
    return [np.asarray(v).copy() for v in x] if isinstance(x, tuple | list) else \
        np.asarray(x).copy()
