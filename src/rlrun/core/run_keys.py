"""The one list of config keys that change how a run is run, not what it learns.

Sweep job dir names and TensorBoard HParams leave them out, and rlrun-report groups runs that
differ only in them (and in the seed) as seeds of one configuration. They used to live in
three drifting copies (the CLI, `train.yaml`'s `exclude_keys`, the report).
"""

from __future__ import annotations

# Resources, bookkeeping and presentation: never part of what a run learns.
RUN_ONLY_KEYS = ("resume", "threads", "checkpoint_every_s", "label", "experiment",
                 "hparams_search", "algo.loop", "algo.schema", "env.schema")
RUN_ONLY_PREFIXES = ("hydra.", "hydra/", "logger.", "objective.")
# The seed tells replicates of one configuration apart: shown in job names and HParams,
# left out when runs are grouped into configurations.
REPLICATE_KEYS = ("seed",)


def run_only(key: str) -> bool:
    """Whether `key` (a dotted config key or override key) only changes how a run runs."""
    key = key.lstrip("+~")
    return key in RUN_ONLY_KEYS or key.startswith(RUN_ONLY_PREFIXES)


def identifies_configuration(key: str) -> bool:
    """Whether runs that differ in `key` are different configurations (not seeds of one)."""
    return not run_only(key) and key.lstrip("+~") not in REPLICATE_KEYS
