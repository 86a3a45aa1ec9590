"""`results.json`, the run's record: one place builds and writes it (see DESIGN.md).

Written atomically at the start (`running`), at every heartbeat and checkpoint (so a killed
run shows how far it got, and readers can call it `stale`), and at the end (`completed`,
`interrupted` or `failed`, with the error). The CLI's record of a job that failed before its
run started goes through `mark_failed` here too.
"""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path
from typing import Any

from rlrun.core.checkpoint import atomic_write_json
from rlrun.core.status import HEARTBEAT_S, identity

NAME = "results.json"


def read(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's record, or None when there is none or it is unreadable."""
    try:
        data = json.loads((Path(run_dir) / NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def build(*, algo: str, env: str, seed: Any, status: str, steps: int = 0,
          wall_time_s: float = 0.0, metrics: dict | None = None, **extra: Any) -> dict[str, Any]:
    """A record with the contract's keys first, then liveness (pid, host, heartbeat), then
    `extra` (device, headline, objective, error, ...)."""
    rec: dict[str, Any] = {"algo": algo, "env": env, "seed": seed, "status": status,
                           "steps": int(steps), "wall_time_s": round(float(wall_time_s), 3)}
    rec.update(identity())
    rec.update(heartbeat=round(time.time(), 3), heartbeat_s=HEARTBEAT_S)
    rec.update(extra)
    rec["metrics"] = metrics or {}
    return rec


def write(run_dir: str | Path, record: dict[str, Any]) -> None:
    """Atomically; on a full disk, in place instead (the old file's blocks take the new
    record, so the status still reaches the disk), without the metrics if need be."""
    path = Path(run_dir) / NAME
    try:
        atomic_write_json(path, record)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.is_file():
            raise
        for rec in (record, {k: v for k, v in record.items() if k != "metrics"}):
            try:
                with open(path, "r+b") as f:
                    f.truncate(0)
                    f.write((json.dumps(rec, indent=2, allow_nan=True) + "\n").encode())
                return
            except OSError:
                continue
        raise


def mark_failed(run_dir: str | Path, error: str, **fallback: Any) -> None:
    """Record `error` as the run's failure: on its own `failed` record if it has one, or
    a new one built from `fallback` (algo, env, seed) when there is none. A record of
    another status (a run the dir already held) is left alone."""
    rec = read(run_dir)
    if rec is None:
        rec = build(status="failed", **fallback)
    elif rec.get("status") != "failed":
        return
    rec["error"] = error
    write(run_dir, rec)
