"""Many independent copies of a tabular MDP, stepped together from its transition model.

A Gymnasium toy-text env steps one agent at a time in Python; the book's figures average
50 to 10,000 independent agents. Sampling all of them at once from the model (P, R, done)
turns each step into a few array operations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular import TabularModel, model_from_env
from rlrun.schemas.envs import TabularEnvConfig


def load_model(cfg: TabularEnvConfig) -> tuple[TabularModel, Any, int]:
    """Build the Gymnasium env once and read its model.

    Returns (model, unwrapped env, episode step limit): `env.max_steps`, else the limit the
    env is registered with (what Gymnasium's TimeLimit would apply), else 100,000."""
    import gymnasium

    import rlrun.envs.tabular  # noqa: F401  (registers the project's own envs)

    try:
        env = gymnasium.make(cfg.id, **cfg.make_kwargs())
    except gymnasium.error.Error as e:
        raise ConfigError(f"env.id={cfg.id!r}: {e}") from None
    except TypeError as e:
        raise ConfigError(f"env.kwargs for {cfg.id}: {e}") from None
    registered = getattr(env.spec, "max_episode_steps", None) if env.spec else None
    return model_from_env(env), env.unwrapped, cfg.max_steps or registered or 100_000


class VectorTabularSim:
    """Steps arrays of states; every array index is one independent run."""

    def __init__(self, model: TabularModel, rng: np.random.Generator):
        self.m, self.rng = model, rng
        ok = model.valid & ~model.terminal[:, None]
        self.deterministic = bool(np.all(model.P.max(axis=2)[ok] == 1.0))
        if self.deterministic:
            self.next_state = model.P.argmax(axis=2)  # (S, A)
        else:
            self.cdf = model.P.cumsum(axis=2)
        self.noisy = bool(np.any(model.reward_std > 0))
        self.init_cdf = model.initial.cumsum()

    def reset(self, n: int) -> np.ndarray:
        """Start states for `n` runs, drawn from the initial distribution."""
        if self.init_cdf[0] == 1.0:
            return np.zeros(n, dtype=np.int64)
        u = self.rng.random(n)
        return np.minimum(np.searchsorted(self.init_cdf, u, side="right"), self.m.n_states - 1)

    def step(self, s: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Next states, rewards and termination flags for actions `a` in states `s`."""
        m = self.m
        if self.deterministic:
            s2 = self.next_state[s, a]
        else:
            u = self.rng.random(len(s))
            s2 = (self.cdf[s, a] < u[:, None]).sum(axis=1)
            s2 = np.minimum(s2, m.n_states - 1)
        r = m.R[s, a, s2]
        if self.noisy:
            r = r + m.reward_std[s, a] * self.rng.standard_normal(len(s))
        return s2, r, m.done[s, a, s2]


def policy_values(model: TabularModel, pi: np.ndarray, gamma: float) -> np.ndarray | None:
    """v_pi by solving the Bellman equations of the model; None if they have no solution
    (a policy that never terminates with gamma = 1)."""
    S = model.n_states
    cont = model.P * ~model.done  # probability mass that continues the episode
    m = np.einsum("sa,sat->st", pi, cont)
    b = np.einsum("sa,sat,sat->s", pi, model.P, model.R)
    m[model.terminal] = 0.0
    b[model.terminal] = 0.0
    try:
        v = np.linalg.solve(np.eye(S) - gamma * m, b)
    except np.linalg.LinAlgError:
        return None
    return v if np.all(np.isfinite(v)) else None
