"""The settings of `algo=reinforce`: one dataclass, each field with its default, help and
bounds (rlrun.core.schema.opt), and the algorithm's declarations (`spec`).

Torch-free on purpose: rlrun imports it at every start-up (it is registered in Hydra's
ConfigStore by this package's `__init__`), so `rlrun --help algo=reinforce` lists it and a
config error answers fast. The loop (reinforce.py) imports torch when a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlrun.core.schema import AlgoSchema, AlgoSpec, opt


@dataclass
class ReinforceConfig(AlgoSchema):
    # What rlrun reads before and after a run (rlrun.core.schema.AlgoSpec documents each).
    # task_kinds, objective and goal are required: a forgotten direction would otherwise
    # make "best" the wrong extreme.
    spec: ClassVar[AlgoSpec] = AlgoSpec(
        task_kinds=("gym",), objective="eval/return", goal="max",
        headline="charts/episodic_return",  # shown in the progress bar
        logged_tags=("charts/*", "losses/*", "eval/return", "eval/length"),
        action_spaces=("discrete",), suggest={"continuous": "ppo (or sac)"},
        network_inputs=("in_dim", "out_dim"),
        default_num_envs=8)  # episodes per update when env.num_envs is null

    total_steps: int = opt(100_000, "env steps learned from, all envs together", ge=1)
    learning_rate: float = opt(5e-3, "the policy's Adam step size", gt=0)
    baseline_learning_rate: float = opt(1e-2, "the value baseline's Adam step size", gt=0)
    gamma: float = opt(0.99, "discount factor", ge=0, le=1)
    baseline: bool = opt(True, "false: plain REINFORCE, G_t itself weighs log pi")
    normalize_advantage: bool = opt(True, "(G_t - b) / std over the batch")
    ent_coef: float = opt(0.0, "entropy bonus weight", ge=0)
    max_grad_norm: float = opt(1.0, "gradient norm clip per network; 0: no clipping", ge=0)
    eval_every: int = opt(10_000, "env steps between deterministic evaluations (0: at the end"
                                  " only)", ge=0)
    eval_episodes: int = opt(10, "episodes per evaluation", ge=1)
