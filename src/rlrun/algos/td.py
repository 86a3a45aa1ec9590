"""Tabular TD control: Sarsa, Q-learning, Expected Sarsa and their double versions
(Sutton & Barto chapter 6), vectorised over independent runs.

    rlrun algo=q_learning env=cliff_walking_book           # Example 6.6
    rlrun algo=sarsa env=windy_gridworld                   # Example 6.5
    rlrun algo=double_q_learning env=maximization_bias     # Example 6.7
    rlrun algo=expected_sarsa algo.double=true env=Taxi-v4

Every run is an independent agent with its own table; all runs step together through the
task's transition model (rlrun.envs.tabular_sim). Runs stop at evaluation points until all
have finished the same number of episodes, so logged curves are exact per-episode averages.

The same model is solved exactly once (chapter 4's policy iteration), and every evaluation
also measures the agents against it: `eval/optimality_gap` (v* at the start minus the exact
value of each greedy policy) and `eval/value_rms` (max_a Q against v*; see
rlrun.rl.tabular_report.ExactReference). At the end, grid tasks get mu_pi of the first
run's behaviour policy as a heatmap (chapter 9's on-policy distribution).
"""

from __future__ import annotations

import time

import numpy as np

from rlrun.envs.tabular_sim import VectorTabularSim
from rlrun.rl.policy import argmax_random_ties, epsilon_greedy_probs
from rlrun.rl.tabular_report import ExactReference, draw_mu
from rlrun.rl.tabular_task import load_task
from rlrun.schemas.td import TDControlConfig

METHODS = ("sarsa", "q_learning", "expected_sarsa")


class Agents:
    """Q tables of all runs, arms-major: q[table, action, run * S + state]."""

    def __init__(self, cfg: TDControlConfig, model, n_runs: int, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.S, self.A = model.n_states, model.n_actions
        self.base = np.arange(n_runs) * self.S
        self.q = np.full((2 if cfg.double else 1, self.A, n_runs * self.S),
                         float(cfg.initial_value))
        self.q[:, :, (self.base[:, None] + np.flatnonzero(model.terminal)).ravel()] = 0.0
        # (A, S) mask of available actions; None when every action is always available.
        self.valid = None if model.valid.all() else model.valid.T.copy()

    def tables(self) -> np.ndarray:
        """(runs, S, A) every run's action values (double: the mean of its two tables)."""
        q = self.q.mean(axis=0)
        return q.reshape(self.A, len(self.base), self.S).transpose(1, 2, 0)

    def values(self, rows: np.ndarray) -> np.ndarray:
        """(A, n) behaviour values at `rows`: the table, or the sum of the two (double)."""
        return self.q[0][:, rows] if len(self.q) == 1 else self.q[:, :, rows].sum(axis=0)

    def mask(self, values: np.ndarray, states: np.ndarray) -> np.ndarray:
        return values if self.valid is None else np.where(self.valid[:, states], values, -np.inf)

    def act(self, rows: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Epsilon-greedy on the (summed) tables, random among tied and among valid."""
        actions = argmax_random_ties(self.mask(self.values(rows), states), self.rng)
        if self.cfg.epsilon > 0:
            n = len(rows)
            if self.valid is None:
                random = self.rng.integers(0, self.A, size=n)
            else:  # uniform over the valid actions: argmax over equal values breaks ties
                random = argmax_random_ties(np.where(self.valid[:, states], 0.0, -np.inf),
                                            self.rng)
            actions = np.where(self.rng.random(n) < self.cfg.epsilon, random, actions)
        return actions

    def update(self, rows, s, a, r, rows2, s2, a2, terminated) -> None:
        """One TD update per run: the target of the configured method, bootstrapped from
        the other table when learning double (van Hasselt 2010)."""
        cfg, n = self.cfg, len(rows)
        if cfg.double:
            upd = (self.rng.random(n) < 0.5).astype(np.int64)  # which table learns
            q_learn = np.where(upd, self.q[1][:, rows2], self.q[0][:, rows2])
            q_eval = np.where(upd, self.q[0][:, rows2], self.q[1][:, rows2])
        else:
            upd = np.zeros(n, dtype=np.int64)
            q_learn = q_eval = self.q[0][:, rows2]
        cols = np.arange(n)
        if cfg.method == "sarsa":
            boot = q_eval[a2, cols]
        elif cfg.method == "q_learning" and not cfg.double:
            boot = self.mask(q_eval, s2).max(axis=0)
        elif cfg.method == "q_learning":  # double: argmax of one table, value of the other
            best = argmax_random_ties(self.mask(q_learn, s2), self.rng)
            boot = q_eval[best, cols]
        else:  # expected_sarsa: expectation under the epsilon-greedy policy of q_learn
            valid = None if self.valid is None else self.valid[:, s2]
            pi = epsilon_greedy_probs(q_learn, cfg.epsilon, valid)
            boot = np.where(pi > 0, pi * q_eval, 0.0).sum(axis=0)
        target = r + cfg.gamma * np.where(terminated, 0.0, boot)
        flat = self.q.reshape(-1)
        i = (upd * self.A + a) * self.q.shape[2] + rows
        flat[i] += cfg.step_size * (target - flat[i])


def evaluate(agents: Agents, sim: VectorTabularSim, rng: np.random.Generator, episodes: int,
             max_steps: int, n_runs: int) -> dict[str, np.ndarray]:
    """Per-run undiscounted return, length and whether a terminal state was reached, of
    every run's greedy policy (ties at random, drawn from `rng` so that evaluating does not
    change the training stream). A greedy policy can loop forever where some action values
    still hold their initial value: such episodes are cut at `max_steps`."""
    returns, lengths, ended = np.zeros(n_runs), np.zeros(n_runs), np.zeros(n_runs)
    for _ in range(episodes):
        s = sim.reset(n_runs)
        alive = np.arange(n_runs)
        for _ in range(max_steps):
            if alive.size == 0:
                break
            sa = s[alive]
            values = agents.mask(agents.values(agents.base[alive] + sa), sa)
            s2, r, term = sim.step(sa, argmax_random_ties(values, rng))
            returns[alive] += r
            lengths[alive] += 1
            s[alive] = s2
            ended[alive[term]] += 1
            alive = alive[~term]
    return {"return": returns / episodes, "length": lengths / episodes,
            "terminated_fraction": ended / episodes}


def run(ctx) -> None:
    cfg, env_cfg = ctx.algo, ctx.env
    task = load_task(env_cfg)
    model, env, max_steps = task.model, task.env, task.max_steps
    exact = ExactReference.of(model, cfg.gamma, task.name, cfg.eval_max_steps)
    n, E = env_cfg.num_runs, cfg.episodes
    left = getattr(env, "LEFT", None)  # maximization bias: log the share of left first moves
    seeds = np.random.SeedSequence(ctx.seed).spawn(4)
    sim = VectorTabularSim(model, np.random.default_rng(seeds[0]))
    agents = Agents(cfg, model, n, np.random.default_rng(seeds[1]))
    eval_sim = VectorTabularSim(model, np.random.default_rng(seeds[2]))
    eval_rng = np.random.default_rng(seeds[3])

    s = sim.reset(n)
    a = agents.act(agents.base + s, s)
    st = {"s": s, "a": a, "ret": np.zeros(n), "len": np.zeros(n, dtype=np.int64),
          "count": np.zeros(n, dtype=np.int64), "returns": np.zeros((n, E)),
          "lengths": np.zeros((n, E)), "first_left": np.zeros((n, E), dtype=bool),
          "first": a.copy(), "logged": 0, "evaluated": 0, "env_steps": 0}
    ctx.track(q=agents.q, rngs=[sim.rng, agents.rng, eval_sim.rng, eval_rng], counters=st)
    if ctx.resume():
        for key in ("returns", "lengths", "first_left"):  # algo.episodes raised on resume
            st[key] = np.pad(st[key], ((0, 0), (0, max(0, E - st[key].shape[1]))))

    every, log = cfg.eval_every or E, ctx.logger
    ctx.start_progress(E, st["logged"], unit="episode")
    t0, steps0 = time.perf_counter(), st["env_steps"]
    while st["evaluated"] < E:
        # Runs that reach the next evaluation point wait there for the others, so every
        # evaluation sees all agents after exactly the same number of episodes.
        sync = min((st["evaluated"] // every + 1) * every, E)
        while st["logged"] < sync:
            active = np.flatnonzero(st["count"] < sync)
            _step(agents, sim, st, slice(None) if active.size == n else active, max_steps, left)
            done = int(st["count"].min())
            if done > st["logged"]:
                for ep in range(st["logged"], done):  # per-episode averages over runs
                    log.scalar("charts/episodic_return", st["returns"][:, ep].mean(), ep + 1)
                    log.scalar("charts/episodic_length", st["lengths"][:, ep].mean(), ep + 1)
                    if left is not None:
                        log.scalar("td/left_fraction", st["first_left"][:, ep].mean(), ep + 1)
                st["logged"] = done
                if ctx.tick(done, st["returns"][:, done - 1].mean()):
                    return ctx.finish()
        t = time.perf_counter()
        log.scalar("charts/SPS", (st["env_steps"] - steps0) / max(t - t0, 1e-9), sync)
        result = evaluate(agents, eval_sim, eval_rng, cfg.eval_episodes, cfg.eval_max_steps, n)
        for key, values in result.items():
            log.scalar(f"eval/{key}", values.mean(), sync)
        if exact is not None:
            gap, rms = exact.measure(agents.tables())
            log.scalars({"eval/optimality_gap": gap.mean(), "eval/value_rms": rms.mean()},
                        sync)
        st["evaluated"] = sync
        t0, steps0 = time.perf_counter(), st["env_steps"]

    def final() -> None:
        if exact is not None and cfg.draws:  # mu_pi of run 0's epsilon-greedy policy
            q = np.where(model.valid, agents.tables()[0], -np.inf)
            pi = epsilon_greedy_probs(q.T, cfg.epsilon, model.valid.T).T
            draw_mu(ctx, task, exact.mdp, pi, "td", f"{ctx.algo_name}'s behaviour policy (run"
                                                    f" 0, ε = {cfg.epsilon:g}), {task.name}")

    ctx.finish(final=final)


def _step(agents: Agents, sim: VectorTabularSim, st: dict, idx: np.ndarray | slice,
          max_steps: int, left: int | None) -> None:
    """One environment step and TD update for the runs in `idx` (all runs in one go).

    `idx` is `slice(None)` while every run is stepping, the common case: slices index
    without copying."""
    s, a = st["s"][idx], st["a"][idx]
    rows = agents.base[idx] + s
    s2, r, term = sim.step(s, a)
    rows2 = agents.base[idx] + s2
    a2 = agents.act(rows2, s2)
    agents.update(rows, s, a, r, rows2, s2, a2, term)
    st["ret"][idx] += r
    st["len"][idx] += 1
    st["env_steps"] += len(s)
    ended = term | (st["len"][idx] >= max_steps)
    if ended.any():
        e = np.flatnonzero(ended) if isinstance(idx, slice) else idx[ended]
        ep = st["count"][e]
        st["returns"][e, ep] = st["ret"][e]
        st["lengths"][e, ep] = st["len"][e]
        if left is not None:
            st["first_left"][e, ep] = st["first"][e] == left
        st["count"][e] += 1
        st["ret"][e], st["len"][e] = 0.0, 0
        s2, a2 = s2.copy(), a2.copy()
        s2[ended] = sim.reset(e.size)
        a2[ended] = agents.act(agents.base[e] + s2[ended], s2[ended])
        st["first"][e] = a2[ended]
    st["s"][idx], st["a"][idx] = s2, a2
