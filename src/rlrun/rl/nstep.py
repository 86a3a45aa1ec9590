"""n-step TD prediction (Sutton & Barto section 7.1), vectorised over runs and settings.

Prediction follows a fixed policy, so an episode's trajectory does not depend on the values
being learnt: a loop draws a batch of episodes (one per run) with `sample_episodes`, then
`n_step_td` replays them, updating every learner online in time order exactly as the book's
algorithm does during the episode. A learner is a (run, setting) pair; the settings (n,
alpha) of one call share each run's trajectory, so Figure 7.2's 10 n x 11 alpha grid is one
call per episode on values of shape (runs, 110, states).

    traj = sample_episodes(model, pi, rng, runs)        # one episode per run
    n_step_td(v, traj, n=ns, alpha=alphas, gamma=1.0)   # v: (runs, settings, S)

Speed: runs are processed in order of decreasing episode length, so the runs still inside
their episode at time t are a prefix (a view, no copy), and the cost is the total number
of steps, not runs x the longest episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular.model import TabularModel
from rlrun.envs.tabular_sim import VectorTabularSim


@dataclass
class Trajectories:
    """One episode per run, padded: states (runs, L + 1) with S_0..S_T (the last state
    repeated after T), rewards (runs, L) with R_1..R_T (0 after), lengths T (runs,)."""

    states: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray  # (runs,) bool: ended in a terminal state (else cut at max_steps)


def sample_episodes(model: TabularModel, pi: np.ndarray, rng: np.random.Generator,
                    runs: int, max_steps: int = 100_000) -> Trajectories:
    """One episode of policy pi (S, A) per run, all runs stepping together."""
    sim = VectorTabularSim(model, rng)
    cdf = np.cumsum(pi, axis=1)
    s = sim.reset(runs)
    states, rewards = [s.copy()], []
    lengths = np.zeros(runs, dtype=np.int64)
    terminated = np.zeros(runs, dtype=bool)
    alive = np.arange(runs)
    cur = s.copy()
    for t in range(max_steps):
        if alive.size == 0:
            break
        sa = cur[alive]
        u = rng.random(alive.size)
        a = np.minimum((cdf[sa] < u[:, None]).sum(axis=1), model.n_actions - 1)
        s2, r, term = sim.step(sa, a)
        row_r = np.zeros(runs)
        row_r[alive] = r
        cur[alive] = s2
        lengths[alive] = t + 1
        terminated[alive[term]] = True
        rewards.append(row_r)
        states.append(cur.copy())
        alive = alive[~term]
    return Trajectories(np.stack(states, axis=1), np.stack(rewards, axis=1)
                        if rewards else np.zeros((runs, 0)), lengths, terminated)


def _reward_sums(rewards: np.ndarray, n: int, gamma: float) -> np.ndarray:
    """(runs, L) sum_{j < n} gamma^j R_{t+j+1}: the rewards part of each n-step return
    (rewards are 0 after an episode's end, so the sum stops there by itself)."""
    runs, L = rewards.shape
    if gamma == 1.0:
        c = np.concatenate([np.zeros((runs, 1)), np.cumsum(rewards, axis=1)], axis=1)
        hi = np.minimum(np.arange(L) + n, L)
        return c[:, hi] - c[:, :L]
    out = np.zeros((runs, L))
    for j in range(min(n, L)):
        out[:, :L - j] += gamma**j * rewards[:, j:]
    return out


def n_step_td(v: np.ndarray, traj: Trajectories, n: np.ndarray | int,
              alpha: np.ndarray | float, gamma: float = 1.0) -> None:
    """Replay one episode per run with n-step TD, updating `v` (runs, settings, S) online.

    Setting c uses n[c] and alpha[c]. At time tau the target is
    G = sum_{j<h} gamma^j R_{tau+j+1} + gamma^h V(S_{tau+h}), h = min(n, T - tau), with V of
    a terminal state 0 (keep terminal entries of `v` at 0) and V of the state an episode was
    cut at (not terminated) as the bootstrap, from the values as updated so far.
    """
    runs, C, S = v.shape
    n = np.broadcast_to(np.asarray(n, dtype=np.int64), (C,))
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (C,))
    if (n < 1).any():
        raise ConfigError(f"n={n.min()} must be >= 1")
    if traj.states.shape[0] != runs:
        raise ConfigError(f"{traj.states.shape[0]} trajectories for {runs} runs")
    order = np.argsort(-traj.lengths, kind="stable")
    T = traj.lengths[order]
    st = traj.states[order]
    L = traj.rewards.shape[1]
    if L == 0:
        return
    uniq, which = np.unique(n, return_inverse=True)
    sums = np.stack([_reward_sums(traj.rewards[order], int(k), gamma) for k in uniq], axis=2)
    flat = np.ascontiguousarray(v[order]).reshape(-1)
    base = (np.arange(runs)[:, None] * C + np.arange(C)[None, :]) * S  # (runs, C)
    cols = np.arange(C)
    # runs still inside their episode at time tau: the first k (T sorted descending)
    active = np.searchsorted(-T, -np.arange(L), side="left")
    for tau in range(L):
        k = int(active[tau])
        if k == 0:
            break
        h = np.minimum(n[None, :], T[:k, None] - tau)  # (k, C)
        boot = st[np.arange(k)[:, None], tau + h]
        target = sums[:k, tau][:, which] + gamma**h * flat[base[:k] + boot]
        i = base[:k] + st[:k, tau][:, None]
        flat[i] += alpha[cols] * (target - flat[i])
    v[order] = flat.reshape(runs, C, S)


def rms_errors(model: TabularModel, pi: np.ndarray, true_values: np.ndarray,
               rng: np.random.Generator, runs: int, episodes: int, ns: np.ndarray,
               alphas: np.ndarray, gamma: float = 1.0, initial_value: float = 0.0
               ) -> np.ndarray:
    """RMS error over the non-terminal states after each episode, per run and setting:
    (episodes, runs, len(ns), len(alphas)), for every (n, alpha) pair sharing each run's
    episodes. Figure 7.2 is its mean over episodes and runs (100 runs, 10 episodes)."""
    ns, alphas = np.asarray(ns), np.asarray(alphas, dtype=float)
    grid_n, grid_a = np.meshgrid(ns, alphas, indexing="ij")
    S = model.n_states
    live = ~model.terminal
    v = np.full((runs, grid_n.size, S), float(initial_value))
    v[:, :, model.terminal] = 0.0
    out = np.zeros((episodes, runs, len(ns), len(alphas)))
    for e in range(episodes):
        traj = sample_episodes(model, pi, rng, runs)
        n_step_td(v, traj, grid_n.ravel(), grid_a.ravel(), gamma)
        err = np.sqrt(((v[:, :, live] - true_values[live]) ** 2).mean(axis=2))
        out[e] = err.reshape(runs, len(ns), len(alphas))
    return out
