"""The MDPs of Sutton & Barto chapters 3 and 4, as dense models (see `dense.py`).

=================================  ==========================  =========  =====  ========
id                                 class                       states     gamma  example
=================================  ==========================  =========  =====  ========
``rlrun/Gridworld-v0``             `GridworldEnv`              25         0.9    3.5, 3.8
``rlrun/SmallGridworld-v0``        `SmallGridworldEnv`         16         1      4.1
``rlrun/JacksCarRental-v0``        `JacksCarRentalEnv`         441 (+1)   0.9    4.2
``rlrun/GamblersProblem-v0``       `GamblersProblemEnv`        101        1      4.3
=================================  ==========================  =========  =====  ========

The book's discount is each env's `discount` attribute; the loops choose gamma. The two
continuing tasks (the 5x5 gridworld and Jack's car rental) have no terminal state, so their
values exist only for gamma < 1. Episodes start in a state drawn uniformly from the
non-terminal states: the book gives these tasks no start state, and a uniform start makes
the start value the mean of v over the states.

Grid actions are 0 up, 1 right, 2 down, 3 left (Gymnasium's CliffWalking order, as the
project's other grids); state = row * cols + col.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular.book import _check_float, _check_int
from rlrun.envs.tabular.dense import DenseTabularEnv

GRID_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
GRID_ACTIONS = ["up", "right", "down", "left"]
ARROWS = "↑→↓←"


def _uniform_start(terminal: np.ndarray) -> np.ndarray:
    start = (~terminal).astype(float)
    return start / start.sum()


def _deterministic(next_state: np.ndarray, reward: np.ndarray,
                   done_into: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense (P, R, done) of a deterministic task from (S, A) next states and rewards;
    `done_into[s']` marks states whose entry ends the episode."""
    S, A = next_state.shape
    P, R = np.zeros((S, A, S)), np.zeros((S, A, S))
    done = np.zeros((S, A, S), dtype=bool)
    s, a = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")
    P[s, a, next_state] = 1.0
    R[s, a, next_state] = reward
    done[s, a, next_state] = done_into[next_state]
    return P, R, done


class _Grid(DenseTabularEnv):
    rows: int
    cols: int

    def _grid(self, special: dict[int, str]) -> str:
        lines = []
        for r in range(self.rows):
            cells = []
            for c in range(self.cols):
                s = r * self.cols + c
                cells.append("x" if s == self.s else special.get(s, "."))
            lines.append(" ".join(cells))
        return "\n".join(lines) + "\n"

    def _moves(self) -> tuple[np.ndarray, np.ndarray]:
        """(S, A) next state of each grid move, and whether it bumped into the edge."""
        S, A = self.rows * self.cols, len(GRID_MOVES)
        nxt, off = np.zeros((S, A), dtype=np.int64), np.zeros((S, A), dtype=bool)
        for s in range(S):
            r, c = divmod(s, self.cols)
            for a, (dr, dc) in enumerate(GRID_MOVES):
                r2, c2 = r + dr, c + dc
                off[s, a] = not (0 <= r2 < self.rows and 0 <= c2 < self.cols)
                nxt[s, a] = s if off[s, a] else r2 * self.cols + c2
        return nxt, off


class GridworldEnv(_Grid):
    """The 5x5 gridworld of Example 3.5 (Figures 3.2 and 3.5), a continuing task.

    From A = (0, 1) every action moves to A' = (4, 1) with reward +10; from B = (0, 3) to
    B' = (2, 3) with +5. Elsewhere a move off the grid leaves the state unchanged with
    reward -1, any other move gets 0. Book: gamma = 0.9; v of the uniform random policy has
    top row 3.3 8.8 4.4 5.3 1.5 (Figure 3.2), v* has 22.0 24.4 22.0 19.4 17.5 (Figure 3.5).
    """

    A: ClassVar[int] = 1
    A_PRIME: ClassVar[int] = 21
    B: ClassVar[int] = 3
    B_PRIME: ClassVar[int] = 13

    def __init__(self, render_mode: str | None = None):
        self.rows = self.cols = 5
        self.grid_shape = (5, 5)
        nxt, off = self._moves()
        reward = np.where(off, -1.0, 0.0)
        nxt[self.A], reward[self.A] = self.A_PRIME, 10.0
        nxt[self.B], reward[self.B] = self.B_PRIME, 5.0
        S = 25
        terminal = np.zeros(S, dtype=bool)
        P, R, done = _deterministic(nxt, reward, terminal)
        self._setup(P, R, done, _uniform_start(terminal), np.ones((S, 4), dtype=bool),
                    terminal, render_mode, 0.9, [f"({s // 5},{s % 5})" for s in range(S)],
                    GRID_ACTIONS)

    def _render_text(self) -> str:
        return self._grid({self.A: "A", self.A_PRIME: "a", self.B: "B", self.B_PRIME: "b"})


class SmallGridworldEnv(_Grid):
    """The 4x4 gridworld of Example 4.1 (Figure 4.1), an episodic task.

    States 0 and 15 (two corners) are terminal; the book's non-terminal states 1..14 keep
    their numbers. Every transition gives -1; a move off the grid leaves the state
    unchanged. Book: gamma = 1; v of the uniform random policy is 0 -14 -20 -22 on the top row.
    """

    def __init__(self, render_mode: str | None = None):
        self.rows = self.cols = 4
        self.grid_shape = (4, 4)
        S = 16
        terminal = np.zeros(S, dtype=bool)
        terminal[[0, S - 1]] = True
        nxt, _ = self._moves()
        reward = np.full((S, 4), -1.0)
        nxt[terminal], reward[terminal] = np.flatnonzero(terminal)[:, None], 0.0
        P, R, done = _deterministic(nxt, reward, terminal)
        self._setup(P, R, done, _uniform_start(terminal), np.ones((S, 4), dtype=bool),
                    terminal, render_mode, 1.0, [str(s) for s in range(S)], GRID_ACTIONS)

    def _render_text(self) -> str:
        return self._grid({0: "T", 15: "T"})


def poisson_pmf(lam: float, n: int) -> np.ndarray:
    """P(X = k) for k = 0..n-1, X ~ Poisson(lam) (no scipy at run time)."""
    k = np.arange(n)
    return np.exp(-lam + k * math.log(lam) - np.array([math.lgamma(i + 1) for i in k]))


def _location(n_max: int, req_mean: float, ret_mean: float, poisson_returns: bool,
              max_poisson: int | None) -> tuple[np.ndarray, np.ndarray]:
    """One location's day, from the cars there after the night's moves (0..n_max).

    Returns T[c, m] = P(m cars at the end of the day) and K[c, m] = E[cars rented; end at m]
    (so K / T is the expected number rented given the next state). Rentals come first
    (min(requests, cars)), then returns, capped at n_max (the surplus leaves the problem).

    Exact (max_poisson=None): a request of c or more rents all c cars, and returns that fill
    the lot to n_max all end at n_max, so each tail's mass is put on that one outcome and
    nothing is truncated. With max_poisson=k, requests and returns above k have probability
    0, as in the reference code (k = 10 there): a day's probabilities then sum to less than 1.
    """
    N = n_max + 1
    size = N if max_poisson is None else max(N, max_poisson + 1)
    req = poisson_pmf(req_mean, size)
    ret = poisson_pmf(ret_mean, size)
    if max_poisson is not None:
        req[max_poisson + 1:] = 0.0
        ret[max_poisson + 1:] = 0.0
    T, K = np.zeros((N, N)), np.zeros((N, N))
    for c in range(N):
        rent = np.zeros(c + 1)  # P(k cars rented), k = 0..c
        rent[:c] = req[:c]
        rent[c] = (1.0 - req[:c].sum()) if max_poisson is None else req[c:].sum()
        for k in range(c + 1):
            left = c - k
            end = np.zeros(N)
            if not poisson_returns:
                end[min(left + int(ret_mean), n_max)] = 1.0
            else:
                room = n_max - left  # returns 0..room-1 keep their count, room or more cap
                end[left:n_max] = ret[:room]
                end[n_max] = (1.0 - ret[:room].sum()) if max_poisson is None \
                    else ret[room:].sum()
            T[c] += rent[k] * end
            K[c] += k * rent[k] * end
    return T, K


class JacksCarRentalEnv(DenseTabularEnv):
    """Jack's car rental, Example 4.2 (Figure 4.2), a continuing task.

    State (n1, n2), the cars at each location at the end of a day, index n1 * 21 + n2.
    Action a = 0..10 moves a - 5 cars overnight (positive: first to second location) at $2
    a car; a move needs the cars at its source (`valid_actions`; an invalid action moves as
    many as there are). Next day each location rents min(requests, cars) at $10, then gets
    its returns, capped at 20. Requests are Poisson with means 3 and 4, returns Poisson
    with means 3 and 2. Book: gamma = 0.9.

    * `poisson_returns=False` returns exactly 3 and 2 cars a day, the reference code's
      default (ShangtongZhang/reinforcement-learning-an-introduction, chapter04/car_rental.py);
    * `max_poisson=None` (default) is the exact model: no truncation (the tails of requests
      and returns land on "rent every car" and "lot full", see `_location`);
      `max_poisson=10` gives the reference's truncation: counts above 10 have probability 0,
      which loses about 0.3% of each day's probability mass. That mass goes to an extra
      absorbing state 441 ("lost"), reached with the move's cost as its reward, so that
      the model stays a proper MDP and its values are the ones the reference computes.
    """

    MAX_MOVE: ClassVar[int] = 5

    def __init__(self, render_mode: str | None = None, max_cars: int = 20,
                 poisson_returns: bool = True, max_poisson: int | None = None,
                 request_means: tuple[float, float] = (3.0, 4.0),
                 return_means: tuple[float, float] = (3.0, 2.0),
                 rent_reward: float = 10.0, move_cost: float = 2.0):
        n_max = _check_int("max_cars", max_cars, 1)
        if not isinstance(poisson_returns, bool | np.bool_):
            raise ConfigError(f"poisson_returns={poisson_returns!r} must be true or false")
        if max_poisson is not None:
            max_poisson = _check_int("max_poisson", max_poisson, 1)
        means = [_check_float("request_means", m, 0.0)
                 for m in _pair("request_means", request_means)]
        returns = [_check_float("return_means", m, 0.0)
                   for m in _pair("return_means", return_means)]
        if not poisson_returns and any(m != int(m) for m in returns):
            raise ConfigError(
                f"return_means={list(returns)} must be whole numbers with poisson_returns=false"
            )
        if any(m <= 0 for m in means + (returns if poisson_returns else [])):
            raise ConfigError("request_means and Poisson return_means must be > 0")
        rent = _check_float("rent_reward", rent_reward)
        cost = _check_float("move_cost", move_cost)
        self.max_cars, self.poisson_returns, self.max_poisson = n_max, bool(poisson_returns), \
            max_poisson
        N = n_max + 1
        self.grid_shape = (N, N)
        T1, K1 = _location(n_max, means[0], returns[0], self.poisson_returns, max_poisson)
        T2, K2 = _location(n_max, means[1], returns[1], self.poisson_returns, max_poisson)
        E1 = np.divide(K1, T1, out=np.zeros_like(K1), where=T1 > 0)
        E2 = np.divide(K2, T2, out=np.zeros_like(K2), where=T2 > 0)

        n1, n2 = np.divmod(np.arange(N * N), N)
        move = np.arange(-self.MAX_MOVE, self.MAX_MOVE + 1)
        A = len(move)
        valid = (move[None, :] <= n1[:, None]) & (-move[None, :] <= n2[:, None])
        moved = np.clip(move[None, :], -n2[:, None], n1[:, None])  # (S, A)
        c1 = np.minimum(n1[:, None] - moved, n_max)
        c2 = np.minimum(n2[:, None] + moved, n_max)
        lost = max_poisson is not None
        S = N * N + int(lost)
        P = np.zeros((S, A, S))
        R = np.zeros((S, A, S))
        done = np.zeros((S, A, S), dtype=bool)
        live = N * N
        P[:live, :, :live] = (T1[c1][:, :, :, None] * T2[c2][:, :, None, :]).reshape(live, A, -1)
        R[:live, :, :live] = (rent * (E1[c1][:, :, :, None] + E2[c2][:, :, None, :])
                              - cost * np.abs(moved)[:, :, None, None]).reshape(live, A, -1)
        terminal = np.zeros(S, dtype=bool)
        labels = [f"({i},{j})" for i, j in zip(n1, n2, strict=True)]
        if lost:
            P[:live, :, live] = 1.0 - P[:live, :, :live].sum(axis=2)
            R[:live, :, live] = -cost * np.abs(moved)
            done[:live, :, live] = True
            P[live, :, live], done[live, :, live] = 1.0, True
            terminal[live] = True
            valid = np.vstack([valid, np.ones((1, A), dtype=bool)])
            labels.append("lost")
        initial = _uniform_start(terminal)
        self._setup(P, R, done, initial, valid, terminal, render_mode, 0.9, labels,
                    [f"move {m:+d}" for m in move])

    def _render_text(self) -> str:
        return f"cars {self.state_labels[self.s] if self.s is not None else '-'}\n"


def _pair(name: str, value: Any) -> list[Any]:
    """Two numbers, one per location (a tuple, list or OmegaConf ListConfig)."""
    try:
        items = list(value)
    except TypeError:
        items = [value]
    if len(items) != 2:
        raise ConfigError(f"{name}={value!r} must be two numbers, one per location")
    return items


class GamblersProblemEnv(DenseTabularEnv):
    """The gambler's problem, Example 4.3 (Figure 4.3), an episodic task.

    States are the capital 0..goal (0 and goal terminal), action a is the stake, valid for
    1 <= a <= min(s, goal - s). Heads (probability `p_heads`) wins the stake, tails loses it;
    reaching the goal gives +1, every other transition 0. Book: goal 100, p_heads 0.4,
    gamma = 1, so v*(s) is the probability of reaching the goal.

    The book also allows stake 0. It never changes the state, so with gamma = 1 it ties with
    the best stake everywhere at the optimum (q(s, 0) = v*(s)), and a policy that chooses it
    never ends; the book's figure and the reference code extract the policy from the stakes
    >= 1, and value iteration's values are the same with or without it (its iterates only
    increase from v = 0). So action 0 is kept in the action space as an invalid no-op
    (the project's convention for invalid actions), and the valid stakes start at 1.
    """

    def __init__(self, render_mode: str | None = None, p_heads: float = 0.4, goal: int = 100):
        p = _check_float("p_heads", p_heads, 0.0)
        if not 0.0 < p < 1.0:
            raise ConfigError(f"p_heads={p} must be in (0, 1)")
        goal = _check_int("goal", goal, 2)
        self.p_heads, self.goal = p, goal
        S, A = goal + 1, goal // 2 + 1
        s = np.arange(S)[:, None]
        a = np.arange(A)[None, :]
        valid = (a >= 1) & (a <= np.minimum(s, goal - s))
        terminal = np.zeros(S, dtype=bool)
        terminal[[0, goal]] = True
        P, R = np.zeros((S, A, S)), np.zeros((S, A, S))
        done = np.zeros((S, A, S), dtype=bool)
        ss, aa = np.broadcast_arrays(s, a)
        ok = valid & ~terminal[:, None]
        si, ai = ss[ok], aa[ok]
        for nxt, prob in ((si + ai, p), (si - ai, 1.0 - p)):
            P[si, ai, nxt] += prob
            R[si, ai, nxt] = (nxt == goal).astype(float)
            done[si, ai, nxt] = terminal[nxt]
        noop = ~ok  # invalid stakes and terminal rows: stay, reward 0
        P[ss[noop], aa[noop], ss[noop]] = 1.0
        done[ss[noop], aa[noop], ss[noop]] = terminal[ss[noop]]
        valid[terminal] = True
        self._setup(P, R, done, _uniform_start(terminal), valid, terminal, render_mode, 1.0,
                    [f"${i}" for i in range(S)], [f"stake {i}" for i in range(A)])

    def _render_text(self) -> str:
        return f"capital {self.s} of goal {self.goal}\n"
