"""Tabular tasks of Sutton & Barto chapter 6, and their dense transition models.

The chapter 6 TD methods (TD(0), Sarsa, Q-learning, Expected Sarsa, Double Q-learning) are
run over thousands of independent runs at once. Stepping thousands of Gymnasium envs one by
one in Python would dominate the run time, so the loop instead samples every run's next state
from the env's transition model with a few NumPy operations. This module provides both halves:

* `model_from_env` turns any tabular Gymnasium env (a toy_text-style `P` table: the project's
  own envs below, `CliffWalking-v1`, `FrozenLake-v1`, `Taxi-v4`, ...) into a dense
  `TabularModel` of (S, A, S) arrays;
* the book's own tasks as real Gymnasium envs, so they can also be stepped, rendered, checked
  with `gymnasium.utils.env_checker.check_env` and made by id after `import rlrun.envs.tabular`:

  =============================  ==========================  ===================
  id                             class                       max_episode_steps
  =============================  ==========================  ===================
  ``rlrun/RandomWalk-v0``        `RandomWalkEnv`             none (ends w.p. 1)
  ``rlrun/MaximizationBias-v0``  `MaximizationBiasEnv`       100
  ``rlrun/WindyGridworld-v0``    `WindyGridworldEnv`         10_000
  ``rlrun/CliffWalkingBook-v0``  `CliffWalkingBookEnv`       10_000
  =============================  ==========================  ===================

  The caps only guard a policy that never reaches the goal: a uniformly random policy
  finishes the gridworlds in a few hundred to a few thousand steps, and the book's learning
  curves never come near 10_000 steps in an episode. The maximization-bias task ends after
  at most 2 valid actions; its cap stops a policy that keeps choosing the no-op (invalid)
  actions in state A.

The project's envs follow the toy_text conventions (`P[s][a] = [(prob, next_state, reward,
terminated), ...]`, `initial_state_distrib`, `s`, `np_random`), and expose what the loop
needs beyond them as attributes that `model_from_env` reads when present:
`reward_std` (S, A), `valid_actions` (S, A) bool, `terminal_states` (S,) bool and
`true_values` (S,) or None.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from rlrun.core.errors import ConfigError

__all__ = [
    "CliffWalkingBookEnv",
    "MaximizationBiasEnv",
    "RandomWalkEnv",
    "TabularModel",
    "WindyGridworldEnv",
    "model_from_env",
    "register_envs",
]

Transition = tuple[float, int, float, bool]
TransitionTable = dict[int, dict[int, list[Transition]]]


# --------------------------------------------------------------------------------------
# The dense model
# --------------------------------------------------------------------------------------


@dataclass
class TabularModel:
    """Everything the vectorised TD loop needs to simulate an env, as dense arrays.

    Dense (S, A, S) arrays let the loop sample all runs' next states at once (cumulative sums
    of `P[s, a]` rows against uniform draws) and let tests solve Bellman equations exactly.

    `P[s, a]` sums to 1 for every (s, a) with transitions in the env's table; rows of invalid
    actions hold whatever the env does with them (a no-op self-loop in the project's envs).
    Rows of `terminal` states are absorbing self-loops with `done` set and reward 0, whatever
    the env's table says there (the loop never acts in them; toy_text tables sometimes keep
    live moves in the goal cell). `valid` is True for all actions of terminal states, so
    masked arg-maxes over them stay well-defined.
    """

    n_states: int
    n_actions: int
    P: np.ndarray  # (S, A, S) float64 transition probabilities
    R: np.ndarray  # (S, A, S) float64 expected reward of that transition
    reward_std: np.ndarray  # (S, A) std of Gaussian noise added to the reward (0: deterministic)
    done: np.ndarray  # (S, A, S) bool: this transition terminates the episode
    initial: np.ndarray  # (S,) initial-state distribution
    valid: np.ndarray  # (S, A) bool: actions available in s
    terminal: np.ndarray  # (S,) bool: absorbing terminal states (never acted in)
    true_values: np.ndarray | None = None  # v_pi of the uniform random policy, where known

    def __post_init__(self) -> None:
        S, A = self.n_states, self.n_actions
        if S < 1 or A < 1:
            raise ConfigError(f"TabularModel needs n_states>=1 and n_actions>=1, got {S}, {A}")
        shapes = {
            "P": (S, A, S), "R": (S, A, S), "reward_std": (S, A), "done": (S, A, S),
            "initial": (S,), "valid": (S, A), "terminal": (S,),
        }
        if self.true_values is not None:
            shapes["true_values"] = (S,)
        for name, shape in shapes.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ConfigError(f"TabularModel.{name} has shape {got}, expected {shape}")

    def expected_reward(self) -> np.ndarray:
        """r(s, a) = sum_s' P(s'|s,a) R(s,a,s'): what a one-step lookahead needs."""
        return np.einsum("ijk,ijk->ij", self.P, self.R)


def _env_name(env: gymnasium.Env) -> str:
    spec = getattr(env, "spec", None) or getattr(env.unwrapped, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def _discrete_n(space: Any, what: str, name: str) -> int:
    if not isinstance(space, spaces.Discrete) or int(space.start) != 0:
        raise ConfigError(
            f"env={name} has {what} space {space}; a tabular model needs Discrete(n) "
            f"starting at 0 (like CliffWalking-v1)"
        )
    return int(space.n)


def _optional_array(env: Any, attr: str, shape: tuple[int, ...], name: str,
                    dtype: Any) -> np.ndarray | None:
    value = getattr(env, attr, None)
    if value is None:
        return None
    arr = np.array(value, dtype=dtype)
    if arr.shape != shape:
        raise ConfigError(f"env={name} attribute {attr} has shape {arr.shape}, expected {shape}")
    return arr


def _initial_distribution(env: Any, S: int, name: str) -> np.ndarray:
    # toy_text (CliffWalking-v1, FrozenLake-v1, Taxi-v4 in gymnasium 1.x) and the project's envs
    # call it `initial_state_distrib`; the old gym DiscreteEnv called it `isd`.
    for attr in ("initial_state_distrib", "isd"):
        init = _optional_array(env, attr, (S,), name, np.float64)
        if init is not None:
            break
    else:
        raise ConfigError(
            f"env={name} has a P table but no initial-state distribution attribute "
            f"(initial_state_distrib, as toy_text envs keep); add one to the env"
        )
    if (init < 0).any() or abs(init.sum() - 1.0) > 1e-6:
        raise ConfigError(f"env={name} initial_state_distrib is not a probability distribution")
    return init / init.sum()


def _reachable(S: int, src: np.ndarray, dst: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """States an episode can be in before it ends: closure of the start states under the
    non-terminating transitions src -> dst of valid actions."""
    step = np.zeros((S, S), dtype=bool)
    step[src, dst] = True
    live = initial > 0
    frontier = live.copy()
    while frontier.any():
        frontier = step[frontier].any(axis=0) & ~live
        live |= frontier
    return live


def model_from_env(env: gymnasium.Env) -> TabularModel:
    """Dense transition model of a tabular env, read from its toy_text-style `P` table.

    Works through wrappers (it reads `env.unwrapped`). Repeated (next_state) entries in a
    `P[s][a]` list are merged: probabilities add up and rewards are probability-weighted.
    Terminal states come from the env's `terminal_states` attribute when it has one, else they
    are inferred: states an episode can only enter through a terminating transition (FrozenLake
    holes and goal, the CliffWalking goal, Taxi's delivered-passenger states). It builds fresh
    arrays in about 10 ms for Taxi's 500 states, so calling it once per run is cheap;
    the caller may keep the result, nothing here refers back to the env.
    """
    name = _env_name(env)
    base = env.unwrapped
    table = getattr(base, "P", None)
    if table is None:
        raise ConfigError(
            f"env={name} has no tabular model (discrete states and actions with a transition "
            f"table P, like CliffWalking-v1, FrozenLake-v1, Taxi-v4 or rlrun/RandomWalk-v0)"
        )
    S = _discrete_n(env.observation_space, "observation", name)
    A = _discrete_n(env.action_space, "action", name)
    if getattr(base, "fickle_passenger", False):
        raise ConfigError(
            f"env={name} with fickle_passenger=True changes destinations outside its P table; "
            f"use fickle_passenger=False for a tabular model"
        )
    if len(table) != S:
        raise ConfigError(f"env={name} P table has {len(table)} states but the space has {S}")

    rows: list[tuple[int, int, int, float, float, bool]] = []
    has_entries = np.zeros((S, A), dtype=bool)
    for s in range(S):
        if len(table[s]) != A:
            raise ConfigError(f"env={name} P[{s}] has {len(table[s])} actions, expected {A}")
        for a in range(A):
            for prob, s_next, reward, terminated in table[s][a]:
                if prob > 0:
                    rows.append((s, a, int(s_next), float(prob), float(reward), bool(terminated)))
                    has_entries[s, a] = True
    if not rows:
        raise ConfigError(f"env={name} P table has no transitions")
    s_i, a_i, n_i, p, r, d = (np.array(col) for col in zip(*rows, strict=True))
    s_i, a_i, n_i = (x.astype(np.intp) for x in (s_i, a_i, n_i))
    if n_i.min() < 0 or n_i.max() >= S:
        raise ConfigError(f"env={name} P table has next states outside 0..{S - 1}")

    # Merge repeated (s, a, s') entries on the short entry list, then scatter once: the dense
    # arrays are touched only a few times (Taxi's are 1.5M cells each).
    keys, inverse = np.unique((s_i * A + a_i) * S + n_i, return_inverse=True)
    p_key = np.bincount(inverse, weights=p)
    r_key = np.bincount(inverse, weights=p * r) / p_key
    n_done, n_all = np.bincount(inverse, weights=d.astype(float)), np.bincount(inverse)
    mixed = (n_done > 0) & (n_done < n_all)
    if mixed.any():
        s, a, s2 = np.unravel_index(int(keys[np.argmax(mixed)]), (S, A, S))
        raise ConfigError(
            f"env={name} P[{s}][{a}] both terminates and continues into state {s2}; a dense "
            f"model cannot represent that"
        )
    sa_key = keys // S
    sums = np.bincount(sa_key, weights=p_key, minlength=S * A)
    bad = has_entries.ravel() & (np.abs(sums - 1.0) > 1e-6)
    if bad.any():
        s, a = np.unravel_index(int(np.argmax(bad)), (S, A))
        raise ConfigError(f"env={name} P[{s}][{a}] probabilities sum to {sums[s * A + a]}, not 1")
    P, R, done = np.zeros(S * A * S), np.zeros(S * A * S), np.zeros(S * A * S, dtype=bool)
    key_done = n_done > 0
    P[keys], R[keys], done[keys] = p_key / sums[sa_key], r_key, key_done
    P, R, done = P.reshape(S, A, S), R.reshape(S, A, S), done.reshape(S, A, S)

    initial = _initial_distribution(base, S, name)
    valid = _optional_array(base, "valid_actions", (S, A), name, bool)
    valid = has_entries.copy() if valid is None else valid & has_entries
    reward_std = _optional_array(base, "reward_std", (S, A), name, np.float64)
    if reward_std is None:
        reward_std = np.zeros((S, A))
    if (reward_std < 0).any():
        raise ConfigError(f"env={name} reward_std has negative entries")
    true_values = _optional_array(base, "true_values", (S,), name, np.float64)

    terminal = _optional_array(base, "terminal_states", (S,), name, bool)
    if terminal is None:
        s_e, a_e, n_e = np.unravel_index(keys, (S, A, S))
        usable = valid[s_e, a_e]
        goes_on = usable & ~key_done
        live = _reachable(S, s_e[goes_on], n_e[goes_on], initial)
        ends = usable & key_done & live[s_e]
        terminal = ~live & (np.bincount(n_e[ends], minlength=S) > 0)
    if (initial[terminal] > 0).any():
        raise ConfigError(f"env={name} starts episodes in a terminal state")
    idx = np.flatnonzero(terminal)
    self_loop = (idx[:, None], np.arange(A)[None, :], idx[:, None])
    P[idx], R[idx], done[idx] = 0.0, 0.0, False
    P[self_loop], done[self_loop] = 1.0, True
    reward_std[idx] = 0.0
    valid[idx] = True

    missing = ~valid.any(axis=1) & ~terminal
    if missing.any():
        raise ConfigError(f"env={name} state {int(np.argmax(missing))} has no valid action")
    return TabularModel(
        n_states=S, n_actions=A, P=P, R=R, reward_std=reward_std, done=done,
        initial=initial, valid=valid, terminal=terminal, true_values=true_values,
    )


# --------------------------------------------------------------------------------------
# The project's envs
# --------------------------------------------------------------------------------------


class _TabularEnv(gymnasium.Env):
    """toy_text-style env driven entirely by its `P` table (plus Gaussian reward noise).

    Keeping the dynamics in the table (rather than in `step`) is what guarantees that the
    stepped env and the `model_from_env` model the loop simulates are the same process.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    P: TransitionTable
    initial_state_distrib: np.ndarray
    reward_std: np.ndarray
    valid_actions: np.ndarray
    terminal_states: np.ndarray
    true_values: np.ndarray | None

    def _setup(self, table: TransitionTable, n_actions: int, start: int,
               render_mode: str | None, terminal: list[int],
               valid: np.ndarray | None = None, reward_std: np.ndarray | None = None,
               true_values: np.ndarray | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode={render_mode!r} is not supported by {type(self).__name__}; "
                f"use None or 'ansi'"
            )
        S = len(table)
        self.nS, self.nA = S, n_actions
        self.P = table
        self.initial_state_distrib = np.zeros(S)
        self.initial_state_distrib[start] = 1.0
        self.terminal_states = np.zeros(S, dtype=bool)
        self.terminal_states[terminal] = True
        self.valid_actions = np.ones((S, n_actions), dtype=bool) if valid is None else valid
        self.reward_std = np.zeros((S, n_actions)) if reward_std is None else reward_std
        self.true_values = true_values
        self.observation_space = spaces.Discrete(S)
        self.action_space = spaces.Discrete(n_actions)
        self.render_mode = render_mode
        self.s: int | None = None
        self.lastaction: int | None = None

    def _info(self, prob: float) -> dict[str, Any]:
        assert self.s is not None
        return {"prob": prob, "action_mask": self.valid_actions[self.s].astype(np.int8)}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """Start an episode in a state drawn from `initial_state_distrib` with `np_random`."""
        super().reset(seed=seed)
        self.s = int(self.np_random.choice(self.nS, p=self.initial_state_distrib))
        self.lastaction = None
        return self.s, self._info(1.0)

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Sample the next state from `P`, add `reward_std` noise; never truncates itself."""
        if self.s is None:
            raise ResetNeeded("call reset() before step()")
        a = int(action)
        if not 0 <= a < self.nA:
            raise ValueError(f"action={action} is outside Discrete({self.nA})")
        transitions = self.P[self.s][a]
        i = 0
        if len(transitions) > 1:
            i = int(self.np_random.choice(len(transitions), p=[t[0] for t in transitions]))
        prob, s_next, reward, terminated = transitions[i]
        std = float(self.reward_std[self.s, a])
        if std > 0:
            reward = reward + std * float(self.np_random.standard_normal())
        self.s, self.lastaction = int(s_next), a
        return self.s, float(reward), bool(terminated), False, self._info(float(prob))

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
        """Generic picture; the grid and chain envs draw themselves."""
        return f"state {self.s} of {self.nS}, last action {self.lastaction}\n"


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)


def _check_float(name: str, value: Any, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ConfigError(f"{name}={value!r} must be a number")
    value = float(value)
    if not np.isfinite(value) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        raise ConfigError(f"{name}={value!r} must be a finite number{bound}")
    return value


class RandomWalkEnv(_TabularEnv):
    """The random walk of Example 6.2 (and the 19-state walk of chapter 7).

    States 0..n_states+1; 0 and n_states+1 are terminal, the nonterminal states 1..n_states are
    the book's A, B, C, ... . Episodes start in the middle state (n_states+1)//2 (C=3 for the
    book's 5 states, 10 for 19 states, 500 for 1000). Action 0 moves left, 1 moves right; the
    book's policy picks each with probability 1/2, which is the loop's job, not the env's.
    Entering the right end gives +1, entering the left end `left_reward` (0 in Example 6.2;
    pass -1 for the 19-state walk of Example 7.1), every other step 0.

    `true_values` are v_pi under that uniform policy: left_reward + (1 - left_reward) *
    i / (n_states + 1) for nonterminal i (1/6..5/6 for the book's walk), 0 at the terminals.
    """

    LEFT: ClassVar[int] = 0
    RIGHT: ClassVar[int] = 1

    def __init__(self, render_mode: str | None = None, n_states: int = 5,
                 left_reward: float = 0.0):
        n = _check_int("n_states", n_states, 1)
        left_reward = _check_float("left_reward", left_reward)
        self.n_nonterminal = n
        last = n + 1
        table: TransitionTable = {}
        for s in range(last + 1):
            if s in (0, last):
                table[s] = {a: [(1.0, s, 0.0, True)] for a in range(2)}
                continue
            table[s] = {
                self.LEFT: [(1.0, s - 1, left_reward if s - 1 == 0 else 0.0, s - 1 == 0)],
                self.RIGHT: [(1.0, s + 1, 1.0 if s + 1 == last else 0.0, s + 1 == last)],
            }
        true_values = left_reward + (1.0 - left_reward) * np.arange(last + 1) / last
        true_values[[0, last]] = 0.0
        self._setup(table, 2, start=(n + 1) // 2, render_mode=render_mode,
                    terminal=[0, last], true_values=true_values)

    def _render_text(self) -> str:
        n = self.n_nonterminal
        names = [chr(ord("A") + i) for i in range(n)] if n <= 26 else [str(i + 1) for i in range(n)]
        cells = ["T", *names, "T"]
        if self.s is not None:
            cells[self.s] = f"[{cells[self.s]}]"
        return " ".join(cells) + "\n"


class MaximizationBiasEnv(_TabularEnv):
    """The maximization-bias MDP of Example 6.7 (Figure 6.5).

    States: A=0 (start), B=1, terminal=2. In A, action RIGHT=0 ends the episode with reward
    0 and action LEFT=1 moves to B with reward 0. In B, each of the `n_b_actions` actions ends
    the episode with reward ~ N(b_reward_mean, b_reward_std^2) (book: 10 actions, N(-0.1, 1)):
    the table holds the mean, `reward_std` the std, so the model's noise is explicit.

    The action space is Discrete(max(2, n_b_actions)), so actions 2.. do not exist in A (and,
    when n_b_actions < 2, action 1 does not exist in B). `valid_actions` marks the real ones
    and reset/step return it for the current state as `info["action_mask"]` (np.int8, the
    Gymnasium convention). Stepping an invalid action is a documented no-op (stay, reward 0,
    not terminated) so that random-action checkers such as `check_env` do not crash.
    """

    A: ClassVar[int] = 0
    B: ClassVar[int] = 1
    TERMINAL: ClassVar[int] = 2
    RIGHT: ClassVar[int] = 0
    LEFT: ClassVar[int] = 1

    def __init__(self, render_mode: str | None = None, n_b_actions: int = 10,
                 b_reward_mean: float = -0.1, b_reward_std: float = 1.0):
        nb = _check_int("n_b_actions", n_b_actions, 1)
        mean = _check_float("b_reward_mean", b_reward_mean)
        std = _check_float("b_reward_std", b_reward_std, 0.0)
        self.n_b_actions = nb
        n_actions = max(2, nb)
        A, B, T = self.A, self.B, self.TERMINAL
        valid = np.zeros((3, n_actions), dtype=bool)
        valid[A, [self.RIGHT, self.LEFT]] = True
        valid[B, :nb] = True
        valid[T] = True
        reward_std = np.zeros((3, n_actions))
        reward_std[B, :nb] = std
        table: TransitionTable = {A: {}, B: {}, T: {}}
        for a in range(n_actions):
            if a == self.RIGHT:
                table[A][a] = [(1.0, T, 0.0, True)]
            elif a == self.LEFT:
                table[A][a] = [(1.0, B, 0.0, False)]
            else:
                table[A][a] = [(1.0, A, 0.0, False)]  # invalid: no-op
            table[B][a] = [(1.0, T, mean, True)] if a < nb else [(1.0, B, 0.0, False)]
            table[T][a] = [(1.0, T, 0.0, True)]
        # v_pi of a uniform policy is not what the example studies (it is about the greedy
        # policy's bias), so no true_values.
        self._setup(table, n_actions, start=A, render_mode=render_mode, terminal=[T],
                    valid=valid, reward_std=reward_std)

    def _render_text(self) -> str:
        cells = {self.TERMINAL: "T", self.B: "B", self.A: "A"}
        if self.s is not None:
            cells[self.s] = f"[{cells[self.s]}]"
        return f"{cells[self.TERMINAL]} <- {cells[self.B]} <-left- {cells[self.A]} -right-> T\n"


class _GridEnv(_TabularEnv):
    """Deterministic gridworld: state = row * cols + col, table built from `_move`."""

    rows: int
    cols: int
    start: tuple[int, int]
    goal: tuple[int, int]

    def _index(self, row: int, col: int) -> int:
        return row * self.cols + col

    def _clip(self, row: int, col: int) -> tuple[int, int]:
        return min(max(row, 0), self.rows - 1), min(max(col, 0), self.cols - 1)

    def _cell_char(self, row: int, col: int) -> str:
        if (row, col) == self.start:
            return "S"
        return "G" if (row, col) == self.goal else "."

    def _render_text(self) -> str:
        lines = []
        for row in range(self.rows):
            chars = [
                "x" if self.s == self._index(row, col) else self._cell_char(row, col)
                for col in range(self.cols)
            ]
            lines.append(" ".join(chars))
        return "\n".join(lines) + "\n"


class WindyGridworldEnv(_GridEnv):
    """The windy gridworld of Example 6.5 (king's moves: Exercise 6.9).

    7 rows x 10 columns, start (3, 0), goal (3, 7), state = row * 10 + col. Actions 0 up,
    1 right, 2 down, 3 left (Gymnasium's CliffWalking order); with `king_moves=True` also
    4 up-right, 5 down-right, 6 down-left, 7 up-left. After the move the agent is pushed up
    by the wind of the column it is leaving, WIND = [0,0,0,1,1,1,2,2,1,0] (as in the book's
    figure), and the result is clipped to the grid. Reward -1 on every step, including the one
    into the goal, which ends the episode. The shortest episode takes 15 steps (7 with king's
    moves). The goal is an absorbing terminal state.
    """

    ROWS: ClassVar[int] = 7
    COLS: ClassVar[int] = 10
    WIND: ClassVar[tuple[int, ...]] = (0, 0, 0, 1, 1, 1, 2, 2, 1, 0)
    START: ClassVar[tuple[int, int]] = (3, 0)
    GOAL: ClassVar[tuple[int, int]] = (3, 7)
    MOVES: ClassVar[tuple[tuple[int, int], ...]] = (
        (-1, 0), (0, 1), (1, 0), (0, -1), (-1, 1), (1, 1), (1, -1), (-1, -1),
    )

    def __init__(self, render_mode: str | None = None, king_moves: bool = False):
        if not isinstance(king_moves, bool | np.bool_):
            raise ConfigError(f"king_moves={king_moves!r} must be true or false")
        self.king_moves = bool(king_moves)
        self.rows, self.cols, self.start, self.goal = self.ROWS, self.COLS, self.START, self.GOAL
        n_actions = 8 if self.king_moves else 4
        goal = self._index(*self.goal)
        table: TransitionTable = {}
        for row in range(self.rows):
            for col in range(self.cols):
                s = self._index(row, col)
                if s == goal:
                    table[s] = {a: [(1.0, s, 0.0, True)] for a in range(n_actions)}
                    continue
                table[s] = {}
                for a in range(n_actions):
                    dr, dc = self.MOVES[a]
                    s2 = self._index(*self._clip(row + dr - self.WIND[col], col + dc))
                    table[s][a] = [(1.0, s2, -1.0, s2 == goal)]
        self._setup(table, n_actions, start=self._index(*self.start), render_mode=render_mode,
                    terminal=[goal])

    def _render_text(self) -> str:
        return super()._render_text() + " ".join(str(w) for w in self.WIND) + "  (wind)\n"


class CliffWalkingBookEnv(_GridEnv):
    """The cliff walking task of Example 6.6, exactly as in the book.

    4 x 12 grid, state = row * 12 + col, start (3, 0) = 36, goal (3, 11) = 47, the cliff is
    (3, 1..10). Actions 0 up, 1 right, 2 down, 3 left (Gymnasium's order). Reward -1 per step;
    stepping into the cliff gives -100 and puts the agent back at the start without ending the
    episode; entering the goal ends it. Optimal path (along the cliff edge): 13 steps, return
    -13; the safe path along the top row: 17 steps, return -17. Cliff cells are in the
    observation space (so states keep Gymnasium's numbering) but are never observed.

    How Gymnasium 1.4.0's `CliffWalking-v1` differs (its non-slippery dynamics and rewards are
    the same: -1 per step, -100 and back to the start without `terminated` on the cliff):

    * it has `is_slippery` (default False; `CliffWalkingSlippery-v1` sets it): the agent then
      moves in the intended or one of the two perpendicular directions with probability 1/3;
    * its goal state 47 is not absorbing: its `P[47]` keeps ordinary moves (-1, and -100 for
      left into the cliff), so stepping on after `terminated` walks on; here 47 is an absorbing
      terminal (self-loop, reward 0) and `terminal_states` says so;
    * it is registered without `max_episode_steps` (no TimeLimit); this one has 10_000;
    * its rewards are Python ints and its `P` holds np.int64 next states; here floats and ints;
    * its info has only "prob"; here also "action_mask" (all ones);
    * it renders in "human", "rgb_array" (pygame) and "ansi"; this one only in "ansi".
    """

    ROWS: ClassVar[int] = 4
    COLS: ClassVar[int] = 12
    START: ClassVar[tuple[int, int]] = (3, 0)
    GOAL: ClassVar[tuple[int, int]] = (3, 11)
    MOVES: ClassVar[tuple[tuple[int, int], ...]] = ((-1, 0), (0, 1), (1, 0), (0, -1))

    def __init__(self, render_mode: str | None = None):
        self.rows, self.cols, self.start, self.goal = self.ROWS, self.COLS, self.START, self.GOAL
        start, goal = self._index(*self.start), self._index(*self.goal)
        table: TransitionTable = {}
        for row in range(self.rows):
            for col in range(self.cols):
                s = self._index(row, col)
                if s == goal:
                    table[s] = {a: [(1.0, s, 0.0, True)] for a in range(4)}
                    continue
                table[s] = {}
                for a, (dr, dc) in enumerate(self.MOVES):
                    r2, c2 = self._clip(row + dr, col + dc)
                    if self._is_cliff(r2, c2):
                        table[s][a] = [(1.0, start, -100.0, False)]
                    else:
                        s2 = self._index(r2, c2)
                        table[s][a] = [(1.0, s2, -1.0, s2 == goal)]
        self._setup(table, 4, start=start, render_mode=render_mode, terminal=[goal])

    def _is_cliff(self, row: int, col: int) -> bool:
        return row == self.rows - 1 and 0 < col < self.cols - 1

    def _cell_char(self, row: int, col: int) -> str:
        return "C" if self._is_cliff(row, col) else super()._cell_char(row, col)


# --------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------

_ENVS: dict[str, tuple[str, int | None]] = {
    "rlrun/RandomWalk-v0": ("RandomWalkEnv", None),
    "rlrun/MaximizationBias-v0": ("MaximizationBiasEnv", 100),
    "rlrun/WindyGridworld-v0": ("WindyGridworldEnv", 10_000),
    "rlrun/CliffWalkingBook-v0": ("CliffWalkingBookEnv", 10_000),
}


def register_envs() -> None:
    """Register the project's tabular envs with Gymnasium; safe to call any number of times."""
    for env_id, (cls, max_steps) in _ENVS.items():
        if env_id in gymnasium.registry:
            continue
        with suppress(gymnasium.error.RegistrationError):
            gymnasium.register(id=env_id, entry_point=f"{__name__}:{cls}",
                               max_episode_steps=max_steps)


register_envs()
