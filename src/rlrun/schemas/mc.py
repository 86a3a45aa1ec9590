"""Settings of the Monte Carlo loops (Sutton & Barto chapter 5; loops: rlrun.algos.mc) and of
n-step TD prediction (chapter 7; loop: rlrun.algos.n_step_td). Torch-free: read at CLI
start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rlrun.core.errors import ConfigError
from rlrun.core.schema import AlgoSpec, opt
from rlrun.schemas.dp import GAMMA_HELP, POLICY_FILE_HELP, POLICY_HELP, TabularLoopSchema

POLICIES = ("book", "uniform", "greedy", "file")


def _spec(objective: str, goal: str, tags: tuple[str, ...]) -> AlgoSpec:
    return AlgoSpec(task_kinds=("tabular",), objective=objective, goal=goal, logged_tags=tags,
                    uses_torch=False, uses_network=False, budget="algo.episodes")


@dataclass
class MCPredictionConfig(TabularLoopSchema):
    spec: ClassVar[AlgoSpec] = _spec("mc/rms_error", "min", ("mc/*", "eval/*"))

    episodes: int = opt(10_000, "episodes per run", ge=1)
    batch: int = opt(10_000, "episodes played at once, over all runs (at least one per run):"
                             " memory and speed only, the estimates are the same", ge=1)
    gamma: float | None = opt(None, GAMMA_HELP, ge=0, le=1)
    policy: str = opt("book", POLICY_HELP, choices=POLICIES)
    policy_file: str | None = opt(None, POLICY_FILE_HELP)
    first_visit: bool = opt(True, "average the return after each state's first visit of an"
                                  " episode (false: after every visit)")
    snapshots: list[int] = opt(factory=list, help="episode counts whose estimates are also"
                                                  " drawn and kept in values.json (Figure 5.1:"
                                                  " 10000); the last always is", ge=1,
                               each=True)


@dataclass
class MCControlESConfig(TabularLoopSchema):
    spec: ClassVar[AlgoSpec] = _spec("eval/policy_agreement", "max", ("mc/*", "eval/*"))

    episodes: int = opt(100_000, "episodes per run", ge=1)
    batch: int = opt(1000, "episodes each run plays with one greedy policy before it is"
                           " improved (1: the book's algorithm exactly, slow in Python)", ge=1)
    gamma: float | None = opt(None, GAMMA_HELP, ge=0, le=1)
    policy: str = opt("book", "the first batch's policy: " + POLICY_HELP, choices=POLICIES)
    policy_file: str | None = opt(None, POLICY_FILE_HELP)


@dataclass
class MCOffPolicyConfig(TabularLoopSchema):
    spec: ClassVar[AlgoSpec] = _spec("mc/weighted_mse", "min", ("mc/*", "eval/*"))

    episodes: int = opt(10_000, "episodes per run", ge=1)
    batch: int = opt(10_000, "episodes played at once, over all runs (at least one per run):"
                             " memory and speed only", ge=1)
    gamma: float | None = opt(None, GAMMA_HELP, ge=0, le=1)
    policy: str = opt("book", "the target policy: " + POLICY_HELP, choices=POLICIES)
    policy_file: str | None = opt(None, POLICY_FILE_HELP)
    behaviour_epsilon: float = opt(1.0, "the behaviour policy: epsilon-soft on the target (1:"
                                        " uniformly random, Figure 5.3)", gt=0, le=1)
    start_state: int | None = opt(None, "every episode starts here, and the errors are this"
                                        " state's (Figure 5.3: 111, blackjack's player sum 13"
                                        " with a usable ace, dealer 2); null: the start"
                                        " distribution, errors over all reached states", ge=0)
    log_points: int = opt(41, "episode counts, log-spaced from 1 to algo.episodes, at which"
                              " the errors are logged (the book's log axis; 41 over 10,000"
                              " episodes: 10 a decade, 10, 100 and 1,000 among them)", ge=1)

    def check_env(self, env: Any, data: bool = True) -> None:
        from rlrun.rl.tabular_task import check_start_state, check_task

        check_start_state(self.start_state, check_task(self, env, data))


@dataclass
class NStepTDConfig(TabularLoopSchema):
    spec: ClassVar[AlgoSpec] = _spec("td/rms_error", "min", ("td/*",))

    n: int = opt(4, "steps before bootstrapping: 1 is TD(0), large n Monte Carlo", ge=1)
    step_size: float = opt(0.4, "step size alpha", ge=0, le=1)
    episodes: int = opt(10, "episodes per run (Figure 7.2: the first 10)", ge=1)
    gamma: float | None = opt(None, GAMMA_HELP, ge=0, le=1)
    initial_value: float = opt(0.0, "V(s) of every non-terminal state before learning")
    policy: str = opt("book", "the policy evaluated: " + POLICY_HELP, choices=POLICIES)
    policy_file: str | None = opt(None, POLICY_FILE_HELP)
    study_n: list[int] = opt(factory=list, help="a parameter study (Figure 7.2): learn every"
                                                " n of this list with every step size of"
                                                " algo.study_step_size side by side, on the"
                                                " same episodes", ge=1, each=True)
    study_step_size: list[float] = opt(factory=list, help="the step sizes of the parameter"
                                                          " study", ge=0, le=1, each=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if bool(self.study_n) != bool(self.study_step_size):
            raise ConfigError("study_n and algo.study_step_size go together: a parameter study"
                              " needs both lists (e.g. Figure 7.2's n = 1, 2, 4, .., 512 and"
                              " alpha = 0, 0.1, .., 1)")
