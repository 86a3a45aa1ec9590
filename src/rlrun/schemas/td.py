"""Settings of the tabular TD loops (Sutton & Barto chapter 6; loops: rlrun.algos.td for
control, rlrun.algos.td_prediction for prediction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlrun.core.schema import AlgoSchema, AlgoSpec, opt
from rlrun.schemas.dp import check_figures, matplotlib_installed

METHODS = ("sarsa", "q_learning", "expected_sarsa")


@dataclass
class TDControlConfig(AlgoSchema):
    spec: ClassVar[AlgoSpec] = AlgoSpec(
        task_kinds=("tabular",), objective="eval/return", goal="max",
        headline="charts/episodic_return", logged_tags=("charts/*", "td/*", "eval/*"),
        uses_torch=False, uses_network=False, budget="algo.episodes")

    method: str = opt("q_learning", "the TD target", choices=METHODS)
    double: bool = opt(False, "two tables, each updated with the other's values (6.7)")
    episodes: int = opt(500, "episodes per run", ge=1)
    epsilon: float = opt(0.1, "exploration of the epsilon-greedy behaviour policy", ge=0, le=1)
    step_size: float = opt(0.5, "step size alpha", gt=0, le=1)
    gamma: float = opt(1.0, "discount factor", ge=0, le=1)
    initial_value: float = opt(0.0, "Q of every non-terminal state-action before learning")
    eval_every: int = opt(0, "episodes between greedy evaluations (eval/return); 0: at the end"
                             " only", ge=0)
    eval_episodes: int = opt(1, "greedy episodes per run and evaluation (more for stochastic"
                                " tasks)", ge=1)
    eval_max_steps: int = opt(1000, "a greedy policy that never reaches a terminal state is"
                                    " cut here", ge=1)
    figures: bool | None = opt(None, "draw mu_pi of the behaviour policy on grid tasks (a"
                                     " heatmap: <run>/figures/mu.png, TensorBoard); null: when"
                                     " matplotlib is installed (pip install 'rlrun[plot]')")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_figures(self.figures)

    @property
    def draws(self) -> bool:
        return matplotlib_installed() if self.figures is None else bool(self.figures)


@dataclass
class TDPredictionConfig(AlgoSchema):
    spec: ClassVar[AlgoSpec] = AlgoSpec(
        task_kinds=("tabular",), objective="td/rms_error", goal="min", logged_tags=("td/*",),
        uses_torch=False, uses_network=False, budget="algo.episodes")

    method: str = opt("td0", "td0, or mc: every-visit Monte Carlo with a constant step size",
                      choices=("td0", "mc"))
    episodes: int = opt(100, "episodes per run", ge=1)
    step_size: float = opt(0.1, "step size alpha", gt=0, le=1)
    gamma: float = opt(1.0, "discount factor", ge=0, le=1)
    initial_value: float = opt(0.5, "V(s) of every non-terminal state before learning (the"
                                    " book's 0.5)")
