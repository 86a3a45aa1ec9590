"""The tasks of Sutton & Barto chapter 6 as real Gymnasium envs (toy_text conventions).

They keep their dynamics in the `P` table (not in `step`), so the stepped env and the model
`model_from_env` reads are the same process, and expose what the loop needs beyond toy_text
as attributes: `reward_std` (S, A), `valid_actions` (S, A) bool, `terminal_states` (S,) bool
and `true_values` (S,) or None.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular.model import TransitionTable


class _TabularEnv(gymnasium.Env):
    """toy_text-style env driven entirely by its `P` table (plus Gaussian reward noise).

    Keeping the dynamics in the table (rather than in `step`) is what guarantees that the
    stepped env and the `model_from_env` model the loop simulates are the same process.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    # what an episode changes: all a checkpoint may set (rlrun.envs.env_state)
    rlrun_state_attrs: ClassVar[tuple[str, ...]] = ("s", "lastaction")

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


