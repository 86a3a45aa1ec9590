"""A run's liveness, as readers see it: `running` in results.json is a claim, checked here.

A process killed without a chance to clean up (SIGKILL, the OOM killer, a vanished node)
leaves `status: running` behind. Runs therefore record who they are (`pid`, `pid_start`,
`host`) and refresh a `heartbeat` (Unix time) every `heartbeat_s` seconds. Readers
(`rlrun-report`, `resume=`, the sweep summary) call such a run `stale` when its process is
gone from this host, or when its heartbeat is older than `STALE_BEATS` heartbeat periods.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

# A run whose heartbeat is older than this many periods is stale (its host may be gone).
STALE_BEATS = 3
# How often a live run refreshes results.json (seconds); written into results.json.
HEARTBEAT_S = 60.0


def process_start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot (Linux /proc), None if unknown.

    Kept beside the PID so that a PID reused by an unrelated process is not taken for
    the run's own.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 of the whole line: starttime
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start: int | None = None) -> bool:
    """True while process `pid` (with that start time, when given) runs on this host."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except (OverflowError, ValueError):
        return False
    if start is not None:
        now_start = process_start_time(int(pid))
        if now_start is not None and now_start != int(start):
            return False  # the PID was reused
    return True


def identity() -> dict[str, Any]:
    """What a live run writes about itself into results.json and its lock file."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start_time(pid), "host": socket.gethostname()}


def is_stale(record: dict[str, Any], now: float | None = None) -> bool:
    """Whether a `running` record (results.json or a lock) belongs to a dead process."""
    pid, host = record.get("pid"), record.get("host")
    if pid is not None and host == socket.gethostname():
        return not pid_alive(pid, record.get("pid_start"))
    beat = record.get("heartbeat")
    if beat is None:
        return False  # an older rlrun wrote it, or another host without a heartbeat yet
    period = float(record.get("heartbeat_s") or HEARTBEAT_S)
    now = time.time() if now is None else now
    return now - float(beat) > STALE_BEATS * period


def effective_status(results: dict[str, Any], now: float | None = None) -> str:
    """results.json's status, with a `running` run whose process is gone called `stale`."""
    status = str(results.get("status", "pending"))
    if status == "running" and is_stale(results, now):
        return "stale"
    return status
