"""Monte Carlo prediction and control (Sutton & Barto chapter 5), a batch of episodes at a
time, vectorised over episodes and independent runs.

The loops call one function per batch, after drawing the batch from a simulator (for
blackjack, `rlrun.envs.tabular.blackjack.BlackjackSim.play`, which returns `Episodes`):

    acc = Averages(runs, n_states)                  # sums and counts per run and state
    first_visit_prediction(acc, episodes, runs=r)   # Figure 5.1
    q = acc_q.means().reshape(runs, S, A)           # exploring starts (Figure 5.2):
    probs = greedy_probs(q[0], valid)               #   the batch's policy, ties at random,
    s0, a0 = exploring_starts(rng, n, states, A)    #   its random starts,
    first_visit_control(acc_q, episodes, A, runs=r) #   and the update
    rho = importance_ratios(episodes, target, behaviour)           # off-policy (Fig. 5.3)
    ordinary, weighted = importance_sampling_curves(rho[:, 0], returns)

A batch plays every episode with the policy as it was at the batch's start: with a batch of
one episode, exploring starts is exactly the book's algorithm (greedy after every episode);
larger batches update the greedy policy less often, which is what makes 500,000 episodes
take seconds. The averages themselves do not depend on the batching.
"""

from __future__ import annotations

import numpy as np

from rlrun.core.errors import ConfigError
from rlrun.rl.policy import epsilon_greedy_probs


class Averages:
    """Sums and counts per (run, key): sample averages of returns, the book's
    `Returns(s)` lists without keeping the lists. Keys are states or state * A + action."""

    def __init__(self, runs: int, n_keys: int):
        self.runs, self.n_keys = runs, n_keys
        self.sums = np.zeros((runs, n_keys))
        self.counts = np.zeros((runs, n_keys), dtype=np.int64)

    def add(self, keys: np.ndarray, values: np.ndarray, runs: np.ndarray | None = None) -> None:
        """Add values at keys (1-d arrays of equal length), each in its run (default 0)."""
        flat = keys if runs is None else runs * self.n_keys + keys
        size = self.runs * self.n_keys
        self.sums += np.bincount(flat, weights=values, minlength=size).reshape(self.sums.shape)
        self.counts += np.bincount(flat, minlength=size).reshape(self.counts.shape)

    def means(self, default: float = 0.0) -> np.ndarray:
        """(runs, keys) averages; `default` where a key has no return yet."""
        out = np.full(self.sums.shape, float(default))
        np.divide(self.sums, self.counts, out=out, where=self.counts > 0)
        return out


def returns_to_go(rewards: np.ndarray, lengths: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """(n, L) G_t = sum_k gamma^k R_{t+k+1} of padded episodes (0 after each end)."""
    G = np.zeros_like(rewards, dtype=float)
    g = np.zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        g = np.where(t < lengths, rewards[:, t] + gamma * g, 0.0)
        G[:, t] = g
    return G


def first_visits(keys: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(n, L) bool: step t is in the episode and its key was not seen earlier in it.

    The first occurrence of each (episode, key) among the steps in time order, found by one
    sort (np.unique's first indices): O(N log N) in the number of steps N, however long the
    episodes (comparing each step with all earlier ones would be O(n L^2))."""
    n, L = keys.shape
    rows, cols = np.nonzero(np.arange(L)[None, :] < lengths[:, None])  # row-major: by time
    k = keys[rows, cols].astype(np.int64)
    span = int(k.max()) + 1 if k.size else 1
    _, first = np.unique(rows * span + k, return_index=True)
    out = np.zeros((n, L), dtype=bool)
    out[rows[first], cols[first]] = True
    return out


def _check_runs(runs: np.ndarray | None, n: int) -> np.ndarray | None:
    if runs is None:
        return None
    runs = np.asarray(runs, dtype=np.int64)
    if runs.shape != (n,):
        raise ConfigError(f"runs has shape {runs.shape}, expected ({n},): one run per episode")
    return runs


def first_visit_prediction(acc: Averages, episodes, gamma: float = 1.0,
                           runs: np.ndarray | None = None, first_visit: bool = True) -> None:
    """First-visit (or every-visit) MC prediction: add each visited state's return to its
    average. `episodes` has `states`, `rewards`, `lengths` (n, L) as `Episodes`; `runs` gives
    each episode's run (None: all in run 0)."""
    states, lengths = episodes.states, episodes.lengths
    runs = _check_runs(runs, len(lengths))
    G = returns_to_go(episodes.rewards, lengths, gamma)
    mask = first_visits(states, lengths) if first_visit else \
        np.arange(states.shape[1])[None, :] < lengths[:, None]
    rows = None if runs is None else np.broadcast_to(runs[:, None], states.shape)[mask]
    acc.add(states[mask], G[mask], rows)


def first_visit_control(acc: Averages, episodes, n_actions: int, gamma: float = 1.0,
                        runs: np.ndarray | None = None) -> None:
    """Monte Carlo ES's update: each first-visited (state, action) pair's return is added to
    its average (keys state * n_actions + action)."""
    states = episodes.states.astype(np.int64)
    keys = np.where(states >= 0, states * n_actions + episodes.actions, -1)
    lengths = episodes.lengths
    runs = _check_runs(runs, len(lengths))
    G = returns_to_go(episodes.rewards, lengths, gamma)
    mask = first_visits(keys, lengths)
    rows = None if runs is None else np.broadcast_to(runs[:, None], keys.shape)[mask]
    acc.add(keys[mask], G[mask], rows)


def greedy_probs(q: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(S, A) greedy policy on q (S, A), probability split evenly between tied actions, so
    that sampling from it breaks ties at random at every step (as the reference does)."""
    return epsilon_greedy_probs(q.T, 0.0, None if valid is None else valid.T).T


def exploring_starts(rng: np.random.Generator, n: int, states: np.ndarray,
                     n_actions: int) -> tuple[np.ndarray, np.ndarray]:
    """n random (state, action) starts: states uniform over `states`, actions uniform."""
    states = np.asarray(states)
    return states[rng.integers(0, len(states), size=n)], rng.integers(0, n_actions, size=n)


def importance_ratios(episodes, target: np.ndarray, behaviour: np.ndarray) -> np.ndarray:
    """(n, L) rho_{t:T-1} = prod_{k >= t} pi(A_k|S_k) / b(A_k|S_k) of each step's tail
    (1 after an episode's end); rho[:, 0] is the whole episode's ratio."""
    states, actions, lengths = episodes.states, episodes.actions, episodes.lengths
    n, L = states.shape
    A = target.shape[1]
    inside = np.flatnonzero(np.arange(L)[None, :] < lengths[:, None])  # flat (episode, t)
    key = states.ravel()[inside].astype(np.int64) * A + actions.ravel()[inside]
    b = behaviour.ravel()[key]
    if (b <= 0).any():
        raise ConfigError("an episode took an action its behaviour policy gives probability 0")
    ratio = np.ones(n * L)
    ratio[inside] = target.ravel()[key] / b
    return np.cumprod(ratio.reshape(n, L)[:, ::-1], axis=1)[:, ::-1]


def off_policy_prediction(ordinary: Averages, weights: Averages, episodes,
                          target: np.ndarray, behaviour: np.ndarray, gamma: float = 1.0,
                          runs: np.ndarray | None = None) -> None:
    """First-visit off-policy MC prediction of v_target from behaviour episodes.

    Each first visit adds rho_{t:T-1} G_t to `ordinary.sums` (and 1 to its counts) and
    rho_{t:T-1} to `weights.sums`: ordinary importance sampling is `ordinary.means()`
    (sum rho G / visits), weighted importance sampling `weighted_estimates(ordinary,
    weights)` (sum rho G / sum rho)."""
    lengths = episodes.lengths
    runs = _check_runs(runs, len(lengths))
    rho = importance_ratios(episodes, target, behaviour)
    G = returns_to_go(episodes.rewards, lengths, gamma)
    mask = first_visits(episodes.states, lengths)
    rows = None if runs is None else np.broadcast_to(runs[:, None], G.shape)[mask]
    keys = episodes.states[mask]
    ordinary.add(keys, (rho * G)[mask], rows)
    weights.add(keys, rho[mask], rows)


def weighted_estimates(ordinary: Averages, weights: Averages) -> np.ndarray:
    """Weighted importance sampling: sum rho G / sum rho (0 where no ratio is positive yet,
    as the reference code and the book's Figure 5.3 start)."""
    out = np.zeros(ordinary.sums.shape)
    np.divide(ordinary.sums, weights.sums, out=out, where=weights.sums > 0)
    return out


def importance_sampling_curves(rho: np.ndarray, returns: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Estimates of one state's value after each episode, per run: (ordinary, weighted),
    each (runs, episodes), from per-episode ratios and returns of shape (runs, episodes).

    Ordinary: sum_k rho_k G_k / k. Weighted: sum_k rho_k G_k / sum_k rho_k, 0 until some
    ratio is positive (Figure 5.3 plots both's squared error against the true value)."""
    num = np.cumsum(rho * returns, axis=1)
    den = np.cumsum(rho, axis=1)
    ordinary = num / np.arange(1, rho.shape[1] + 1)
    weighted = np.zeros_like(num)
    np.divide(num, den, out=weighted, where=den > 0)
    return ordinary, weighted
