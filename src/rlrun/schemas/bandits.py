"""Settings of the bandit algorithms (Sutton & Barto chapter 2; loop: rlrun.algos.bandits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlrun.core.schema import AlgoSchema, AlgoSpec, opt

BANDIT = AlgoSpec(task_kinds=("bandit",), objective="bandit/average_reward_all_steps",
                  goal="max", headline="bandit/average_reward", logged_tags=("bandit/*",),
                  uses_torch=False, uses_network=False, budget="env.steps")


@dataclass
class EpsilonGreedyConfig(AlgoSchema):
    spec: ClassVar[AlgoSpec] = BANDIT
    epsilon: float = opt(0.1, "probability of a uniformly random arm", ge=0, le=1)
    step_size: float | None = opt(None, "constant step size alpha; null: sample averages (1/n)",
                                  gt=0)
    initial_value: float = opt(0.0, "Q1 of every arm (5 with epsilon=0: optimistic, Fig. 2.3)")


@dataclass
class UCBConfig(AlgoSchema):
    spec: ClassVar[AlgoSpec] = BANDIT
    c: float = opt(2.0, "exploration weight c in Q + c sqrt(ln t / N)", ge=0)
    step_size: float | None = opt(None, "constant step size alpha; null: sample averages (1/n)",
                                  gt=0)
    initial_value: float = opt(0.0, "Q1 of every arm")


@dataclass
class GradientBanditConfig(AlgoSchema):
    spec: ClassVar[AlgoSpec] = BANDIT
    step_size: float = opt(0.1, "step size alpha of the preference updates", gt=0)
    baseline: bool = opt(True, "subtract the average reward (the book's baseline)")
