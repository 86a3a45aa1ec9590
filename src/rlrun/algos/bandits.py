"""Multi-armed and contextual bandits: Sutton & Barto chapter 2, vectorised over runs.

    rlrun algo=epsilon_greedy algo.epsilon=0.1          # sections 2.2-2.4, Fig. 2.2
    rlrun algo=epsilon_greedy algo.epsilon=0 algo.initial_value=5 algo.step_size=0.1
    rlrun algo=ucb algo.c=2                             # section 2.7, Fig. 2.4
    rlrun algo=gradient_bandit env.mean=4               # section 2.8, Fig. 2.5

Every agent keeps one table row per (run, context); all runs act and learn in the same
NumPy operations. Ties between maximal values are broken uniformly at random, as the book
requires (`argmax` alone would always pick the first arm).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlrun.core.errors import ConfigError
from rlrun.envs.bandit import BanditTestbed
from rlrun.rl.policy import argmax_random_ties
from rlrun.schemas.bandits import EpsilonGreedyConfig, GradientBanditConfig, UCBConfig


# ---- agents ---------------------------------------------------------------------------------
# Tables are arms-major, shape (k, rows), as rlrun.rl.policy expects.
class _Tables:
    """Gather/scatter helpers over (k, rows) tables; `rows` is the identity when there is
    one context, and then no copies are made."""

    def __init__(self, n_rows: int, k: int):
        self.n_rows, self.k = n_rows, k

    def cols(self, table: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return table if len(rows) == self.n_rows else table[:, rows]

    def flat(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return actions * self.n_rows + rows  # index into table.ravel()


class ActionValueAgent(_Tables):
    """Incremental action-value estimates Q with counts N (eqs. 2.3 and 2.5), shared by
    epsilon-greedy and UCB; they differ only in how they pick actions."""

    def __init__(self, cfg: EpsilonGreedyConfig | UCBConfig, n_rows: int, k: int,
                 rng: np.random.Generator):
        super().__init__(n_rows, k)
        self.cfg, self.rng = cfg, rng
        self.q = np.full((k, n_rows), float(cfg.initial_value))
        self.n = np.zeros((k, n_rows))
        if isinstance(cfg, UCBConfig):
            # UCB bonus c sqrt(ln t / N) = c sqrt(ln t) * rsqrt_n; untried arms get +inf
            # ("considered maximizing"). Both tables change at one entry per step.
            self.t = np.zeros(n_rows)  # time steps seen per row (per context)
            self.rsqrt_n = np.zeros((k, n_rows))
            self.untried = np.full((k, n_rows), np.inf)

    def act(self, rows: np.ndarray) -> np.ndarray:
        cfg, q = self.cfg, self.cols(self.q, rows)
        if isinstance(cfg, UCBConfig):
            coef = cfg.c * np.sqrt(np.log(self.t[rows] + 1.0))
            values = q + coef * self.cols(self.rsqrt_n, rows) + self.cols(self.untried, rows)
            return argmax_random_ties(values, self.rng)
        actions = argmax_random_ties(q, self.rng)
        if cfg.epsilon > 0:
            explore = self.rng.random(len(rows)) < cfg.epsilon
            actions = np.where(explore, self.rng.integers(0, self.k, size=len(rows)), actions)
        return actions

    def update(self, rows: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        i = self.flat(rows, actions)
        q, n = self.q.reshape(-1), self.n.reshape(-1)
        n[i] += 1.0
        alpha = 1.0 / n[i] if self.cfg.step_size is None else self.cfg.step_size
        q[i] += alpha * (rewards - q[i])
        if isinstance(self.cfg, UCBConfig):
            self.t[rows] += 1.0
            self.rsqrt_n.reshape(-1)[i] = 1.0 / np.sqrt(n[i])
            self.untried.reshape(-1)[i] = 0.0

    def state_dict(self) -> dict[str, Any]:
        s = {"q": self.q, "n": self.n, "rng": self.rng.bit_generator.state}
        if isinstance(self.cfg, UCBConfig):
            s.update(t=self.t, rsqrt_n=self.rsqrt_n, untried=self.untried)
        return s

    def load_state_dict(self, s: dict[str, Any]) -> None:
        for key, value in s.items():
            if key != "rng":  # C order: update() writes through reshape(-1) views
                setattr(self, key, np.array(value, dtype=float, order="C"))
        self.rng.bit_generator.state = s["rng"]


class GradientBanditAgent(_Tables):
    """Softmax preferences H updated by eq. 2.12. The baseline R-bar_t is the average of the
    rewards before time t, with R-bar_1 = R_1 (2nd edition, 2018 text)."""

    def __init__(self, cfg: GradientBanditConfig, n_rows: int, k: int,
                 rng: np.random.Generator):
        super().__init__(n_rows, k)
        self.cfg, self.rng = cfg, rng
        self.h = np.zeros((k, n_rows))
        self.avg = np.zeros(n_rows)  # running mean reward per row
        self.count = np.zeros(n_rows)
        self._pi = np.empty(0)

    def act(self, rows: np.ndarray) -> np.ndarray:
        h = self.cols(self.h, rows)
        e = np.exp(h - h.max(axis=0))
        self._pi = pi = e / e.sum(axis=0)
        # Inverse-CDF sampling: the action is how many cumulative probabilities lie below u.
        u = self.rng.random(len(rows))
        acc, actions = np.zeros(len(rows)), np.zeros(len(rows), dtype=np.int64)
        for p in pi[:-1]:  # a loop over arms (k is small), never over runs
            acc += p
            actions += acc < u
        return actions

    def update(self, rows: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        n = self.count[rows]
        baseline = np.where(n == 0, rewards, self.avg[rows]) if self.cfg.baseline else 0.0
        grad = -self._pi  # may be F-ordered (fancy-indexed columns): index it in 2-D
        grad[actions, np.arange(len(rows))] += 1.0  # 1{a=A} - pi
        step = self.cfg.step_size * (rewards - baseline) * grad
        if len(rows) == self.n_rows:
            self.h += step
        else:
            self.h[:, rows] += step
        self.avg[rows] += (rewards - self.avg[rows]) / (n + 1.0)
        self.count[rows] = n + 1.0

    def state_dict(self) -> dict[str, Any]:
        return {"h": self.h, "avg": self.avg, "count": self.count,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.h, self.avg, self.count = (np.array(s[key], dtype=float, order="C")
                                        for key in ("h", "avg", "count"))
        self.rng.bit_generator.state = s["rng"]


def make_agent(cfg: EpsilonGreedyConfig | UCBConfig | GradientBanditConfig, n_rows: int,
               k: int, rng: np.random.Generator):
    if isinstance(cfg, GradientBanditConfig):
        return GradientBanditAgent(cfg, n_rows, k, rng)
    if isinstance(cfg, EpsilonGreedyConfig | UCBConfig):
        return ActionValueAgent(cfg, n_rows, k, rng)
    raise ConfigError(f"no bandit agent for {type(cfg).__name__}")


# ---- the loop -------------------------------------------------------------------------------
def run(ctx) -> None:
    """Play `env.steps` steps on `env.num_runs` independent problems; log run averages."""
    env_cfg = ctx.env
    # Separate streams for the task and the agent: with the same seed, every algorithm of a
    # sweep faces the very same testbed (common random numbers, as the book's comparisons).
    env_seed, agent_seed = np.random.SeedSequence(ctx.seed).spawn(2)
    bandit = BanditTestbed(env_cfg, np.random.default_rng(env_seed))
    agent = make_agent(ctx.algo, env_cfg.num_runs * env_cfg.contexts, env_cfg.k,
                       np.random.default_rng(agent_seed))

    ctx.track(env=bandit, agent=agent)
    start = ctx.step if ctx.resume() else 0

    log, total = ctx.logger, env_cfg.steps
    ctx.start_progress(total, start)
    for t in range(start + 1, total + 1):
        rows = bandit.observe()
        actions = agent.act(rows)
        rewards, optimal = bandit.step(rows, actions)
        agent.update(rows, actions, rewards)

        avg_reward = float(rewards.mean())
        log.scalar("bandit/average_reward", avg_reward, t)
        log.scalar("bandit/optimal_action", float(optimal.mean()), t)
        if ctx.tick(t, avg_reward):
            break

    def summary() -> None:  # one number per run for parameter studies (Fig. 2.6)
        for tag in ("bandit/average_reward", "bandit/optimal_action"):
            series = log.series[tag]
            log.scalar(f"{tag}_all_steps", sum(series) / len(series), total)

    ctx.finish(final=summary)
