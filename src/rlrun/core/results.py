"""`results.json`, the run's record: one place builds and writes it (see DESIGN.md).

Written atomically at the start (`running`), at every heartbeat and checkpoint (so a killed
run shows how far it got, and readers can call it `stale`), and at the end (`completed`,
`interrupted` or `failed`, with the error). The CLI's record of a job that failed before its
run started goes through `mark_failed` here too.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

from rlrun.core import runlock
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
    record, so the status still reaches the disk), without the metrics if need be.

    In a dir this process has locked, the file is named through the dir's descriptor
    (`runlock.dir_fd`), so the record still reaches a dir mounted over read-only mid-run."""
    path = Path(run_dir) / NAME
    dfd = runlock.dir_fd(run_dir)
    try:
        atomic_write_json(path, record, dir_fd=dfd)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        for rec in (record, {k: v for k, v in record.items() if k != "metrics"}):
            try:
                fd = os.open(NAME if dfd is not None else path, os.O_RDWR, dir_fd=dfd)
            except OSError:
                raise e from None  # no old record to write over
            try:
                with os.fdopen(fd, "r+b") as f:
                    f.truncate(0)
                    f.write((json.dumps(rec, indent=2, allow_nan=True) + "\n").encode())
                return
            except OSError:
                continue
        raise


def mark_failed(run_dir: str | Path, error: str, **fallback: Any) -> None:
    """Record `error` as the run's failure: on its own `failed` record if it has one, or
    a new one built from `fallback` (algo, env, seed) when there is none. A record of
    another status (a run the dir already held) is left alone, and so is a dir that another
    live process has locked: a run that lost its dir to another writes nothing there."""
    held = runlock.holds(run_dir)
    if not held and not runlock.try_acquire(run_dir):
        return
    try:
        rec = read(run_dir)
        if rec is None:
            rec = build(status="failed", **fallback)
        elif rec.get("status") != "failed":
            return
        rec["error"] = error
        write(run_dir, rec)
    finally:
        if not held:
            runlock.release(run_dir)
