"""Settings of the dynamic-programming loops (Sutton & Barto chapters 3-4; loops:
rlrun.algos.dp), and what every chapter 3-7 loop shares: its figures and the check of its
task before the run dir exists (`check_env`, called by the preflight).

Torch-free and Gymnasium-free: read at CLI start-up; `check_env` builds the task lazily.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, ClassVar

from rlrun.core.errors import ConfigError
from rlrun.core.schema import AlgoSchema, AlgoSpec, opt

DP = AlgoSpec(task_kinds=("tabular",), objective="eval/start_value", goal="max",
              headline="dp/delta", minimize=("dp/delta",), logged_tags=("dp/*", "eval/*"),
              uses_torch=False, uses_network=False, budget="algo.max_iterations")

GAMMA_HELP = ("discount factor; null: the task's own (0.9 for gridworld_3_5 and"
              " jacks_car_rental, 1 for the episodic tasks)")
POLICY_HELP = ("book: the policy the book uses on this task (blackjack: stick on 20 or 21),"
               " else uniform; uniform: random over the valid actions; greedy: greedy on the q"
               " table of algo.policy_file (ties split evenly); file: the policy in"
               " algo.policy_file")
SNAPSHOTS_HELP = ("sweeps whose values are kept in values.json and drawn (Figure 4.1: 0 1 2 3"
                  " 10; Figure 4.3: 1 2 3 32); the last always is")
POLICY_FILE_HELP = ("a run's values.json (greedy: its q; file: its policy) or a .npy array:"
                    " (S, A) q values or probabilities, or (S,) actions")


def matplotlib_installed() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


FIGURES_HELP = ("draw the figures (PNGs in <run>/figures/, TensorBoard images); null: when"
                " matplotlib is installed (pip install 'rlrun[plot]')")


def check_figures(figures: bool | None) -> None:
    """`figures=true` without matplotlib: said before the run, not at its end."""
    if figures and not matplotlib_installed():
        raise ConfigError("figures=true needs matplotlib, which is not installed: pip"
                          " install 'rlrun[plot]', or set algo.figures=false")


@dataclass
class TabularLoopSchema(AlgoSchema):
    """What the chapter 3-7 loops share: `figures`, and `check_env`, which builds the task
    in the preflight so that what does not fit it is a one-line error before any run dir."""

    figures: bool | None = opt(None, FIGURES_HELP)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_figures(self.figures)
        policy, policy_file = getattr(self, "policy", None), getattr(self, "policy_file", None)
        if policy in ("greedy", "file") and not policy_file:
            raise ConfigError(f"policy={policy} reads algo.policy_file: name a run's"
                              " values.json or a .npy file")
        if policy in ("book", "uniform") and policy_file:
            raise ConfigError(f"policy_file is set but policy={policy} does not read it: set"
                              " algo.policy=file (its policy) or greedy (greedy on its q)")

    @property
    def draws(self) -> bool:
        """Whether this run draws its figures."""
        return matplotlib_installed() if self.figures is None else bool(self.figures)

    def check_env(self, env: Any, data: bool = True) -> None:
        """The task's own checks (rlrun.rl.tabular_task.check_task), in the preflight."""
        from rlrun.rl.tabular_task import check_task

        check_task(self, env, data)


@dataclass
class _DPConfig(TabularLoopSchema):
    gamma: float | None = opt(None, GAMMA_HELP, ge=0, le=1)
    theta: float = opt(1e-6, "stop when a sweep changes no value by more than this", gt=0)
    max_iterations: int = opt(10_000, "sweeps at most (policy iteration: evaluation and"
                                      " improvement rounds); a run that reaches it without"
                                      " converging says so", ge=1)
    atol: float = opt(1e-9, "greedy actions are those within atol (+ 1e-9 relative) of a"
                            " state's best q; the policy takes the lowest-numbered", ge=0)


@dataclass
class PolicyEvaluationConfig(_DPConfig):
    spec: ClassVar[AlgoSpec] = DP

    method: str = opt("linear", "linear: solve (I - gamma P_pi) v = r_pi exactly; sweep:"
                                " iterative policy evaluation to algo.theta",
                      choices=("linear", "sweep"))
    in_place: bool = opt(False, "sweep states in index order, each from the values already"
                                " updated (false: every state from the previous sweep)")
    policy: str = opt("book", POLICY_HELP, choices=("book", "uniform", "greedy", "file"))
    policy_file: str | None = opt(None, POLICY_FILE_HELP)
    snapshots: list[int] = opt(factory=list, help=SNAPSHOTS_HELP, ge=0, each=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method == "linear" and self.snapshots:
            raise ConfigError("snapshots needs algo.method=sweep (the linear solve has no"
                              " sweeps)")


@dataclass
class ValueIterationConfig(_DPConfig):
    spec: ClassVar[AlgoSpec] = DP

    in_place: bool = opt(False, "sweep states in index order, each from the values already"
                                " updated (the reference scripts' way; false: synchronous)")
    snapshots: list[int] = opt(factory=list, help=SNAPSHOTS_HELP, ge=0, each=True)


@dataclass
class PolicyIterationConfig(_DPConfig):
    spec: ClassVar[AlgoSpec] = DP

    evaluation: str = opt("linear", "how each policy is evaluated: linear (exact) or sweep"
                                    " (in place or not, to algo.theta, from the previous"
                                    " policy's values)", choices=("linear", "sweep"))
    in_place: bool = opt(True, "sweep evaluation: states in index order, each from the"
                               " values already updated (the reference's way)")
    initial_action: int | None = opt(None, "pi_0 takes this action in every state (Figure"
                                           " 4.2: 5, move no cars); null: pi_0 is the uniform"
                                           " random policy", ge=0)

    def check_env(self, env: Any, data: bool = True) -> None:
        """The task's checks, and pi_0's: its action valid everywhere, its episodes ending."""
        from rlrun.rl.tabular_task import check_task, initial_policy, make_mdp

        task = check_task(self, env, data)
        initial_policy(self.initial_action, task, make_mdp(task, self.gamma))
