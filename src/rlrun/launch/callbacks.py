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
        line = f"sweep done: {total} jobs, {len(failed)} failed"
        if failed:
            line += ": " + ", ".join(str(p) for p in failed)
        else:
            line += f" ({sweep_dir})"
        # Hydra's job logging is torn down after the last job: print, as Hydra does.
        print(f"[rlrun] {line}", file=sys.stderr if failed else sys.stdout, flush=True)
