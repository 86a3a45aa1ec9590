"""The k-armed bandit testbed of Sutton & Barto chapter 2, vectorised over independent runs.

One object holds `num_runs` independent problems (and, for associative search, `contexts`
problems per run). Every step is a handful of NumPy operations on (runs, k) arrays: there is
no Python loop over runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlrun.schemas.envs import BanditConfig


class BanditTestbed:
    """`num_runs` independent k-armed problems; rows are (run, context) pairs.

    q*(a) ~ N(mean, 1) (or all equal to `mean` with `start_equal`); a reward is
    N(q*(A), 1). With `nonstationary`, every q* takes an independent N(0, walk_std) step
    after each time step.
    """

    def __init__(self, cfg: BanditConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.runs, self.k, self.contexts = cfg.num_runs, cfg.k, cfg.contexts
        self.n_rows = self.runs * self.contexts
        shape = (self.k, self.n_rows)  # arms-major, like the agents' tables
        if cfg.start_equal:
            self.q_star = np.full(shape, float(cfg.mean))
        else:
            self.q_star = rng.normal(cfg.mean, 1.0, size=shape)
        self._base_rows = np.arange(self.runs) * self.contexts
        self._update_optimal()

    def _update_optimal(self) -> None:
        self.optimal = self.q_star.argmax(axis=0)

    def observe(self) -> np.ndarray:
        """The row (run x context) each run faces this step: its context is the observation."""
        if self.contexts == 1:
            return self._base_rows
        return self._base_rows + self.rng.integers(0, self.contexts, size=self.runs)

    def step(self, rows: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rewards for `actions` in `rows`, and whether each action was optimal."""
        mean = self.q_star.reshape(-1)[actions * self.n_rows + rows]
        rewards = mean + self.rng.standard_normal(self.runs)
        optimal = actions == (self.optimal if self.contexts == 1 else self.optimal[rows])
        if self.cfg.nonstationary:
            self.q_star += self.rng.normal(0.0, self.cfg.walk_std, size=self.q_star.shape)
            self._update_optimal()
        return rewards, optimal

    def state_dict(self) -> dict[str, Any]:
        return {"q_star": self.q_star.copy(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_star = np.array(state["q_star"], dtype=float, order="C").reshape(
            self.k, self.n_rows)
        self.rng.bit_generator.state = state["rng"]
        self._update_optimal()
