"""What every deep RL algorithm declares alike (the declarations of the loop contract, see
docs/extending.md): it learns Gymnasium tasks with torch networks built from `in_dim` and
`out_dim`, reports episodic returns, and is judged by its deterministic evaluation."""

from __future__ import annotations

from typing import ClassVar


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
