"""What every deep RL algorithm declares alike (the declarations of the loop contract, see
docs/extending.md): it learns Gymnasium tasks with torch networks built from `in_dim` and
`out_dim`, reports episodic returns, and is judged by its deterministic evaluation."""

from __future__ import annotations

from typing import Any, ClassVar

from rlrun.core.errors import ConfigError


class GymAlgorithm:
    task_kinds: ClassVar[tuple[str, ...]] = ("gym",)
    uses_torch: ClassVar[bool] = True
    uses_network: ClassVar[bool] = True
    headline: ClassVar[str] = "charts/episodic_return"
    objective: ClassVar[str] = "eval/return"
    # the scalar tags it logs, as patterns (objective.metric is checked up front)
    logged_tags: ClassVar[tuple[str, ...]] = ("charts/*", "losses/*", "eval/return",
                                             "eval/length")
    # what build_network passes: a network= that takes other shapes cannot fit
    network_inputs: ClassVar[tuple[str, ...]] = ("in_dim", "out_dim")


def check_replay(cfg: Any) -> None:
    """The off-policy loops' (SAC, TD3/DDPG, DQN) budget checks: a batch must fit the replay
    buffer, and learning must start before the budget runs out."""
    if cfg.batch_size > cfg.buffer_size:
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than algo.buffer_size="
                          f"{cfg.buffer_size}: lower algo.batch_size or raise algo.buffer_size")
    if cfg.learning_starts >= cfg.total_steps:
        raise ConfigError(f"learning_starts={cfg.learning_starts} >= algo.total_steps="
                          f"{cfg.total_steps}: it would never learn; lower"
                          " algo.learning_starts or raise algo.total_steps")
