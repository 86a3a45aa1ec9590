"""Tabular envs whose dynamics are dense (S, A, S) arrays rather than a toy_text `P` list.

Jack's car rental has 441 states, 11 actions and up to 441 next states per pair: 2.1M
transitions. As toy_text lists they take seconds to build and seconds more for
`model_from_env` to read back, so these envs keep the arrays and give both views of them:

* `tabular_model()`, which `model_from_env` uses when an env has it (a copy of the arrays);
* `P`, a read-only toy_text table (`P[s][a] = [(prob, next_state, reward, terminated), ...]`)
  built row by row on access, for code written against toy_text envs.

`step` samples from the same arrays, so the stepped env, the toy_text table and the model
that DP solves are one process. A transition's reward is `R[s, a, s']`: the expected reward
of that transition (for Jack's car rental, the expected rental income given the next state,
not one day's draw), so returns have the model's expectation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular.model import TabularModel, Transition


class DenseTable(Mapping[int, dict[int, list[Transition]]]):
    """toy_text's `P[s][a]` list view of dense arrays, rows built on access."""

    def __init__(self, P: np.ndarray, R: np.ndarray, done: np.ndarray):
        self._P, self._R, self._done = P, R, done

    def __getitem__(self, s: int) -> dict[int, list[Transition]]:
        if not 0 <= int(s) < self._P.shape[0]:
            raise KeyError(s)
        row = {}
        for a in range(self._P.shape[1]):
            nxt = np.flatnonzero(self._P[s, a])
            row[a] = [(float(self._P[s, a, t]), int(t), float(self._R[s, a, t]),
                       bool(self._done[s, a, t])) for t in nxt]
        return row

    def __iter__(self) -> Iterator[int]:
        return iter(range(self._P.shape[0]))

    def __len__(self) -> int:
        return self._P.shape[0]


class DenseTabularEnv(gymnasium.Env):
    """A Gymnasium env stepped from dense (P, R, done) arrays; see the module docstring.

    Subclasses build the arrays and call `_setup`. Terminal states must already be absorbing
    self-loops with `done` set and reward 0 (what `model_from_env` makes of any table), so
    the model returned here is the one `model_from_env` would read from `P`.

    Attributes beyond toy_text, for the loops: `discount` (the book's gamma for the task),
    `state_labels` (one string per state), `action_labels`, and `grid_shape` ((rows, cols)
    of the states drawn as a grid, or None).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    discount: float
    state_labels: list[str]
    action_labels: list[str]
    grid_shape: tuple[int, int] | None = None

    def _setup(self, P: np.ndarray, R: np.ndarray, done: np.ndarray, initial: np.ndarray,
               valid: np.ndarray, terminal: np.ndarray, render_mode: str | None,
               discount: float, state_labels: list[str], action_labels: list[str]) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode={render_mode!r} is not supported by {type(self).__name__}; "
                f"use None or 'ansi'"
            )
        S, A = valid.shape
        self.nS, self.nA = S, A
        self._arrays = (P, R, done)
        self._cdf: np.ndarray | None = None  # built at the first step: DP never steps
        self.P = DenseTable(P, R, done)
        self.initial_state_distrib = initial
        self.valid_actions = valid
        self.terminal_states = terminal
        self.reward_std = np.zeros((S, A))
        self.true_values = None
        self.discount = float(discount)
        self.state_labels, self.action_labels = state_labels, action_labels
        self.observation_space = spaces.Discrete(S)
        self.action_space = spaces.Discrete(A)
        self.render_mode = render_mode
        self.s: int | None = None
        self.lastaction: int | None = None

    def tabular_model(self) -> TabularModel:
        """The dense model (fresh copies: callers may change them)."""
        P, R, done = self._arrays
        return TabularModel(
            n_states=self.nS, n_actions=self.nA, P=P.copy(), R=R.copy(),
            reward_std=self.reward_std.copy(), done=done.copy(),
            initial=self.initial_state_distrib.copy(), valid=self.valid_actions.copy(),
            terminal=self.terminal_states.copy(),
        )

    def _info(self, prob: float) -> dict[str, Any]:
        assert self.s is not None
        return {"prob": prob, "action_mask": self.valid_actions[self.s].astype(np.int8)}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """Start in a state drawn from `initial_state_distrib` with `np_random`."""
        super().reset(seed=seed)
        self.s = int(self.np_random.choice(self.nS, p=self.initial_state_distrib))
        self.lastaction = None
        return self.s, self._info(1.0)

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Sample the next state from `P[s, a]`; never truncates itself."""
        if self.s is None:
            raise ResetNeeded("call reset() before step()")
        a = int(action)
        if not 0 <= a < self.nA:
            raise ValueError(f"action={action} is outside Discrete({self.nA})")
        P, R, done = self._arrays
        if self._cdf is None:
            self._cdf = P.cumsum(axis=2)
        cdf = self._cdf[self.s, a]
        s2 = min(int(np.searchsorted(cdf, self.np_random.random() * cdf[-1], side="right")),
                 self.nS - 1)
        while P[self.s, a, s2] == 0.0:  # rounding at the top of the cdf: step back to mass
            s2 -= 1
        s, self.s, self.lastaction = self.s, s2, a
        return s2, float(R[s, a, s2]), bool(done[s, a, s2]), False, self._info(float(P[s, a, s2]))

    def render(self) -> str | None:
        """Text picture of the current state ('ansi'); None (with a warning) without a mode."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                f"{type(self).__name__}.render() called without render_mode; pass "
                f"render_mode='ansi' to get a text picture"
            )
            return None
        return self._render_text()

    def _render_text(self) -> str:
        label = "-" if self.s is None else self.state_labels[self.s]
        return f"{label}\n"
