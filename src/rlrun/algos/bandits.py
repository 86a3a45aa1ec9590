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

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rlrun.core.errors import ConfigError
from rlrun.envs.bandit import BanditTestbed


# ---- configs ------------------------------------------------------------------------------
@dataclass
class BanditAlgoConfig:
    task_kinds: ClassVar[tuple[str, ...]] = ("bandit",)
    uses_torch: ClassVar[bool] = False  # NumPy on the CPU
    uses_network: ClassVar[bool] = False
    headline: ClassVar[str] = "bandit/average_reward"
    objective: ClassVar[str] = "bandit/average_reward_all_steps"


def _check_step_size(step_size: float | None, allow_none: bool = True) -> None:
    if step_size is None and allow_none:
        return
    if step_size is None or not step_size > 0:
        raise ConfigError(f"step_size={step_size} must be > 0" +
                          (" (or null for sample averages)" if allow_none else ""))


@dataclass
class EpsilonGreedyConfig(BanditAlgoConfig):
    epsilon: float = 0.1
    step_size: float | None = None  # None: sample averages
    initial_value: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"epsilon={self.epsilon} must be in [0, 1]")
        _check_step_size(self.step_size)


@dataclass
class UCBConfig(BanditAlgoConfig):
    c: float = 2.0
    step_size: float | None = None
    initial_value: float = 0.0

    def __post_init__(self) -> None:
        if self.c < 0:
            raise ConfigError(f"c={self.c} must be >= 0")
        _check_step_size(self.step_size)


@dataclass
class GradientBanditConfig(BanditAlgoConfig):
    step_size: float = 0.1
    baseline: bool = True

    def __post_init__(self) -> None:
        _check_step_size(self.step_size, allow_none=False)


# ---- agents ---------------------------------------------------------------------------------
def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax, ties broken uniformly at random (only tied rows draw numbers)."""
    actions = values.argmax(axis=1)
    ties = values == values[np.arange(len(values)), actions][:, None]
    tied = np.flatnonzero(np.count_nonzero(ties, axis=1) > 1)
    if tied.size:
        actions[tied] = (rng.random((tied.size, values.shape[1])) * ties[tied]).argmax(axis=1)
    return actions


class ActionValueAgent:
    """Incremental action-value estimates Q with counts N (eq. 2.3 / 2.5), shared by
    epsilon-greedy and UCB; they differ only in how they pick actions."""

    def __init__(self, cfg: EpsilonGreedyConfig | UCBConfig, n_rows: int, k: int,
                 rng: np.random.Generator):
        self.cfg, self.rng, self.k = cfg, rng, k
        self.q = np.full((n_rows, k), float(cfg.initial_value))
        self.n = np.zeros((n_rows, k))

    def act(self, rows: np.ndarray) -> np.ndarray:
        q, cfg = self.q[rows], self.cfg
        if isinstance(cfg, UCBConfig):
            n = self.n[rows]
            t = n.sum(axis=1, keepdims=True) + 1.0  # time step (per context)
            with np.errstate(divide="ignore"):
                bonus = cfg.c * np.sqrt(np.log(t) / n)  # n == 0 -> inf: a maximizing action
            return argmax_random_ties(np.where(n == 0, np.inf, q + bonus), self.rng)
        actions = argmax_random_ties(q, self.rng)
        if cfg.epsilon > 0:
            explore = self.rng.random(len(rows)) < cfg.epsilon
            actions = np.where(explore, self.rng.integers(0, self.k, size=len(rows)), actions)
        return actions

    def update(self, rows: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.n[rows, actions] += 1.0
        alpha = 1.0 / self.n[rows, actions] if self.cfg.step_size is None else self.cfg.step_size
        self.q[rows, actions] += alpha * (rewards - self.q[rows, actions])

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q, "n": self.n, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.q, self.n = s["q"].copy(), s["n"].copy()
        self.rng.bit_generator.state = s["rng"]


class GradientBanditAgent:
    """Softmax preferences H updated by eq. 2.12. The baseline R-bar_t is the average of the
    rewards before time t, with R-bar_1 = R_1 (2nd edition, 2018 text)."""

    def __init__(self, cfg: GradientBanditConfig, n_rows: int, k: int,
                 rng: np.random.Generator):
        self.cfg, self.rng, self.k = cfg, rng, k
        self.h = np.zeros((n_rows, k))
        self.avg = np.zeros(n_rows)  # running mean reward per row
        self.count = np.zeros(n_rows)
        self._pi = None

    def act(self, rows: np.ndarray) -> np.ndarray:
        h = self.h[rows]
        e = np.exp(h - h.max(axis=1, keepdims=True))
        self._pi = e / e.sum(axis=1, keepdims=True)
        u = self.rng.random((len(rows), 1))
        return np.minimum((self._pi.cumsum(axis=1) < u).sum(axis=1), self.k - 1)

    def update(self, rows: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        n = self.count[rows]
        if self.cfg.baseline:
            baseline = np.where(n == 0, rewards, self.avg[rows])
        else:
            baseline = 0.0
        grad = -self._pi
        grad[np.arange(len(rows)), actions] += 1.0  # one_hot(A) - pi
        self.h[rows] += self.cfg.step_size * (rewards - baseline)[:, None] * grad
        self.avg[rows] += (rewards - self.avg[rows]) / (n + 1.0)
        self.count[rows] = n + 1.0

    def state_dict(self) -> dict[str, Any]:
        return {"h": self.h, "avg": self.avg, "count": self.count,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.h, self.avg, self.count = s["h"].copy(), s["avg"].copy(), s["count"].copy()
        self.rng.bit_generator.state = s["rng"]


def make_agent(cfg: BanditAlgoConfig, n_rows: int, k: int, rng: np.random.Generator):
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

    def state() -> dict[str, Any]:
        return {"env": bandit.state_dict(), "agent": agent.state_dict()}

    start = 0
    saved = ctx.restore()
    if saved is not None:
        bandit.load_state_dict(saved["env"])
        agent.load_state_dict(saved["agent"])
        start = ctx.step

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
        if ctx.tick(t, avg_reward, state):
            return

    # One number per run for parameter studies (Fig. 2.6): the mean over all steps.
    for tag in ("bandit/average_reward", "bandit/optimal_action"):
        series = log.series[tag]
        log.scalar(f"{tag}_all_steps", sum(series) / len(series), total)
    ctx.save(total, state())
