"""What a sweep varies, so job dirs, TensorBoard run names and HParams show just that.

`rlrun -m algo=ppo env=CartPole-v1 seed=0,1,2 algo.total_steps=20000` varies one key, the
seed. Hydra's `override_dirname` repeats every override in every job dir and the old 80
character cut dropped the seed, so TensorBoard (whose run names are the job dirs) showed
three identical names; the HParams table listed every config key, 53 columns of constants.

At the start of a multirun, `SweepSummary.on_multirun_start` (rlrun/launch/callbacks.py) reads the
sweep's command line (`hydra.overrides.task` still holds `seed=0,1,2` there) and the
sweeper's `params` (the Optuna presets), and puts the swept keys into the environment as
`RLRUN_SWEEP_KEYS`, which the jobs inherit whichever launcher runs them (in process, joblib
workers, submitit). Each job then names its dir from its own overrides of those keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from rlrun.core.run_keys import run_only

ENV_VAR = "RLRUN_SWEEP_KEYS"
# group overrides (`algo=ppo`) name a config group; its flat config key is `<group>.name`
GROUPS = ("algo", "env", "network", "device", "logger")


def swept_keys(task_overrides: Iterable[str], sweeper_params: Iterable[str] = ()) -> list[str]:
    """Keys a multirun's command line sweeps (`seed=0,1,2`, `range()`, `interval()`,
    `glob()`) plus the sweeper's own `params`, in command-line order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys: list[str] = []
    try:
        parsed = OverridesParser.create().parse_overrides([str(o) for o in task_overrides])
    except Exception:  # Hydra has already refused a bad override; nothing to add here
        parsed = []
    for o in parsed:
        if o.is_sweep_override() and o.key_or_group not in keys:
            keys.append(o.key_or_group)
    for k in sweeper_params:  # `+points: glob(...)` in a preset sweeps `points`
        k = str(k).lstrip("+~")
        if k not in keys:
            keys.append(k)
    return keys


def announce(keys: Sequence[str]) -> None:
    """Tell this process's jobs (and launched ones, through the environment) what varies."""
    os.environ[ENV_VAR] = json.dumps(list(keys))


def current_keys() -> list[str] | None:
    """The swept keys of the multirun this process belongs to; None outside one."""
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return None
    try:
        keys = json.loads(raw)
    except ValueError:
        return None
    return [str(k) for k in keys] if isinstance(keys, list) else None


def _split(override: str) -> tuple[str, str] | None:
    if "=" not in override or override.startswith("~"):
        return None
    key, value = override.split("=", 1)
    return key.lstrip("+"), value


def _abbreviations(keys: Sequence[str]) -> dict[str, str]:
    """Shortest unique dotted suffix of each key: `algo.learning_rate` -> `learning_rate`."""
    out = {}
    for k in keys:
        parts = k.split(".")
        for n in range(1, len(parts) + 1):
            short = ".".join(parts[-n:])
            if sum(other.split(".")[-n:] == parts[-n:] for other in keys) == 1:
                break
        out[k] = short
    return out


def job_name(label: Any, task_overrides: Iterable[str], exclude: Iterable[str] = (),
             max_len: int = 80) -> str:
    """A job dir name (after Hydra's `<num>_`) showing every swept key's value.

    Keys that the sweep does not vary are dropped (all overrides are kept when the swept
    keys are unknown); keys are shortened to their shortest unique dotted suffix; the full
    overrides stay in `.hydra/overrides.yaml`. Over `max_len`, the name is cut and an
    8-character hash of the whole name keeps it unique."""
    excluded = {str(k) for k in exclude}
    items = [kv for o in task_overrides if (kv := _split(str(o))) and kv[0] not in excluded
             and not run_only(kv[0])]
    swept = current_keys()
    if swept:
        items = [kv for kv in items if kv[0] in swept]
    short = _abbreviations([k for k, _ in items])
    text = ",".join(f"{short[k]}={v}" for k, v in items)
    if label not in (None, "", "None", "null"):
        text = f"{label},{text}" if text else str(label)
    name = re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", text).strip("_") or "job"
    if len(name) > max_len:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:max_len - 9].rstrip('_,')}_{digest}"
    return name


def sweep_hparams(flat: dict[str, Any],
                  task_overrides: Iterable[str] | None = None) -> dict[str, Any]:
    """The config keys worth an HParams column: those the sweep varies (all keys the run
    overrode, outside a sweep), plus algo and env. A group override (`algo=ppo`) stands for
    `algo.name`; a key missing from the flat config is skipped. `task_overrides` default to
    Hydra's `hydra.overrides.task` of this run (none when Hydra is not running it)."""
    if task_overrides is None:
        task_overrides = _hydra_task()
    keys = current_keys()
    if keys is None:
        keys = [kv[0] for o in task_overrides or () if (kv := _split(str(o)))
                and not run_only(kv[0])]
    wanted = ["algo.name", "env.name"]
    for k in keys:
        k = f"{k}.name" if k in GROUPS else k
        if k not in wanted:
            wanted.append(k)
    return {k: flat[k] for k in wanted if k in flat}


def _hydra_task() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]
