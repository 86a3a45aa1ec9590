"""Hydra callbacks: what a sweep says when it ends."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rlrun.core.status import effective_status
from rlrun.core.sweep import ENV_VAR

# Job dirs of the last sweep of this process that failed: the CLI exits 1 when there are any,
# after the sweep finished every other job and printed its summary.
failed_jobs: list[Path] = []

# hydra/launcher=slurm settings that must be positive integers (checked before submitting)
_SLURM_POSITIVE = ("nodes", "tasks_per_node", "cpus_per_task", "timeout_min", "mem_gb")


def sweep_status(sweep_dir: Path) -> dict[str, list[Path]]:
    """Job dirs of a sweep by their results.json status ('missing' when there is none)."""
    out: dict[str, list[Path]] = {}
    for job in sorted(p for p in Path(sweep_dir).iterdir() if (p / ".hydra").is_dir()):
        try:
            status = effective_status(json.loads((job / "results.json").read_text()))
        except (OSError, ValueError, KeyError, AttributeError):
            status = "missing"
        out.setdefault(status, []).append(job)
    return out


class SweepSummary(Callback):
    """At the start of a multirun, which keys it sweeps (job dir names and HParams show
    those, rlrun.core.sweep); at the end, one line with the number of jobs and of failed
    jobs (and where they are), so a failed job among many does not go unnoticed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from rlrun.core.sweep import announce, swept_keys

        failed_jobs.clear()
        params = config.hydra.sweeper.get("params") or {}
        announce(swept_keys(config.hydra.overrides.task, list(params)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(ENV_VAR, None)  # this process's later runs are not in the sweep
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        status = sweep_status(sweep_dir)
        total = sum(len(v) for v in status.values())
        failed = status.get("failed", []) + status.get("missing", []) + status.get("stale", [])
        failed_jobs[:] = failed
        line = f"sweep done: {total} jobs, {len(failed)} failed"
        if failed:
            line += ": " + ", ".join(str(p) for p in failed)
        else:
            line += f" ({sweep_dir})"
        # Hydra's job logging is torn down after the last job: print, as Hydra does.
        print(f"[rlrun] {line}", file=sys.stderr if failed else sys.stdout, flush=True)


def check_launcher_overrides(args: list[str]) -> None:
    """`hydra.launcher.tasks_per_node=0` and the like on the command line, refused before
    anything is submitted (sbatch would refuse each job, or queue one that never starts;
    Hydra's callbacks cannot stop a sweep, so this runs on the command line itself)."""
    from rlrun.core.errors import ConfigError

    for arg in args:
        key, eq, value = arg.lstrip("+").partition("=")
        name = key.removeprefix("hydra.launcher.")
        if not eq or not key.startswith("hydra.launcher.") or \
                name not in (*_SLURM_POSITIVE, "gpus_per_node"):
            continue
        try:
            number = float(value)
        except ValueError:
            continue  # not a number: Hydra's type check says so
        low_ok = number >= 0 if name == "gpus_per_node" else number > 0
        if not low_ok or name != "mem_gb" and not number.is_integer():
            what = "an integer >= 0" if name == "gpus_per_node" else \
                "a positive number" if name == "mem_gb" else "a positive integer"
            raise ConfigError(f"{key}={value} must be {what}")
