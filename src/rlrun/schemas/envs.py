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

    def make_kwargs(self) -> dict[str, Any]:
        """What `gymnasium.make(id, ...)` gets: `kwargs`, plus a subclass's own settings."""
        return dict(self.kwargs)


@dataclass
class JacksCarRentalConfig(TabularEnvConfig):
    """Jack's car rental (Example 4.2) with its two model settings as options of their own."""

    id: str = opt("rlrun/JacksCarRental-v0", "the Gymnasium id of Jack's car rental")
    poisson_returns: bool = opt(True, "returns are Poisson with means 3 and 2, as in the book;"
                                      " false: exactly 3 and 2 a day, the reference code's"
                                      " default")
    max_poisson: int | None = opt(None, "requests and returns above this count have"
                                        " probability 0, as in the reference code (10): the"
                                        " lost mass goes to an absorbing 'lost' state; null:"
                                        " the exact model, nothing truncated", ge=1)

    def make_kwargs(self) -> dict[str, Any]:
        return {**self.kwargs, "poisson_returns": self.poisson_returns,
                "max_poisson": self.max_poisson}


@dataclass
class GamblersProblemConfig(TabularEnvConfig):
    """The gambler's problem (Example 4.3)."""

    id: str = opt("rlrun/GamblersProblem-v0", "the Gymnasium id of the gambler's problem")
    p_heads: float = opt(0.4, "probability that the coin comes up heads (the gambler wins his"
                              " stake)", gt=0, lt=1)
    goal: int = opt(100, "the capital that wins (+1) and ends the episode", ge=2)

    def make_kwargs(self) -> dict[str, Any]:
        return {**self.kwargs, "p_heads": self.p_heads, "goal": self.goal}
