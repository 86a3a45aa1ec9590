"""Settings of the tasks: bandit testbeds and tabular MDPs (more in this module as the
families move here). Torch-free and Gymnasium-free: read at CLI start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlrun.core.schema import EnvSchema, opt


@dataclass
class BanditConfig(EnvSchema):
    k: int = opt(10, "arms", ge=1)
    mean: float = opt(0.0, "mean of the true values q*(a) ~ N(mean, 1)")
    num_runs: int = opt(2000, "independent problems solved side by side", ge=1)
    steps: int = opt(1000, "time steps of each run", ge=1)
    nonstationary: bool = opt(False, "q* take independent random walks (Exercise 2.5)")
    walk_std: float = opt(0.01, "std of the random-walk increment per step", ge=0)
    start_equal: bool = opt(False, "q* all start at `mean` (Exercise 2.5) instead of"
                                   " N(mean, 1)")
    contexts: int = opt(1, "testbeds drawn at random each step, their identity shown to the"
                           " agent (associative search, 2.9)", ge=1)


@dataclass
class TabularEnvConfig(EnvSchema):
    id: str = opt("rlrun/CliffWalkingBook-v0", "the Gymnasium id of a tabular env (a transition"
                                               " table P)")
    kwargs: dict[str, Any] = opt(factory=dict, help="passed to gymnasium.make")
    num_runs: int = opt(1, "independent agents whose curves are averaged", ge=1)
    max_steps: int | None = opt(None, "truncate longer episodes; null: the env's registered"
                                      " limit (Taxi 200, FrozenLake 100, ...) or 100,000", ge=1)
