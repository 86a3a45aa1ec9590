"""The training envs of a deep RL loop: a Gymnasium vector env that remembers where it is.

`TrackedVecEnv` wraps the vector env once, outermost, and records the observation of every
`reset` and `step` (`last_obs`, and any `info_keys` the loop needs, e.g. Atari's `lives`).
It is one item of `ctx.track`: its `state_dict` holds each sub-env's state as plain data
(`rlrun.envs.env_state`), the episode statistics, the statistics of the normalisation
wrappers inside it, and the last observation, so that `ctx.resume().obs` hands the loop the
observation to continue from. Where the sub-envs' state cannot be saved (async envs,
simulators in C), a resume starts fresh episodes: `restored` is False and `last_obs` stays
the fresh reset's, never the saved one of an episode that is gone.

    envs = training_envs(ctx)                  # built, wrapped, reset from ctx's "envs" seed
    ctx.track_per_rank(envs=envs, ...)
    obs = ctx.resume().obs                     # the live observation, resumed or fresh
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import VectorWrapper

from rlrun.envs.gym import (
    load_normalizer_state,
    load_vector_env_state,
    make_vector_env,
    normalizer_state,
    vector_env_state,
)


class TrackedVecEnv(VectorWrapper):
    def __init__(self, env: Any, info_keys: tuple[str, ...] = ()):
        super().__init__(env)
        self.info_keys = tuple(info_keys)
        self.last_obs: Any = None
        self.last_info: dict[str, np.ndarray] = {}
        self.restored = False  # whether the last load_state_dict brought the episodes back

    def reset(self, *, seed: Any = None, options: dict | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._record(obs, info)
        return obs, info

    def step(self, actions: Any) -> tuple[Any, ...]:
        obs, reward, term, trunc, info = self.env.step(actions)
        self._record(obs, info)
        return obs, reward, term, trunc, info

    def _record(self, obs: Any, info: dict) -> None:
        self.last_obs = obs
        self.last_info.update({k: np.asarray(info[k]) for k in self.info_keys if k in info})

    def state_dict(self) -> dict[str, Any]:
        return {"envs": vector_env_state(self.env), "norm": normalizer_state(self.env),
                "obs": np.asarray(self.last_obs).copy(),
                "info": {k: v.copy() for k, v in self.last_info.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_normalizer_state(self.env, state["norm"])
        self.restored = load_vector_env_state(self.env, state["envs"])
        if self.restored:
            self.last_obs = np.asarray(state["obs"]).copy()
            self.last_info = {str(k): np.asarray(v).copy() for k, v in state["info"].items()}


def num_envs(ctx: Any) -> int:
    """The copies of the task a loop steps: `env.num_envs`, else its algorithm's
    `spec.default_num_envs`, else 1."""
    from rlrun.core.schema import spec_of

    return ctx.env.num_envs or spec_of(type(ctx.algo)).default_num_envs or 1


def training_envs(ctx: Any, wrappers: tuple = (), info_keys: tuple[str, ...] = ()
                  ) -> TrackedVecEnv:
    """`num_envs(ctx)` copies of `ctx.env` (`make_vector_env`, with its vector `wrappers`),
    tracked and reset: the run's `envs` stream seeds the resets (sub-env i gets seed + i)
    and the action spaces."""
    seed = ctx.seed_of("envs")
    envs = TrackedVecEnv(make_vector_env(ctx.env, num_envs(ctx), seed, wrappers), info_keys)
    envs.reset(seed=seed)
    return envs
