"""One process owns a run dir at a time: an exclusive `fcntl` lock on `<run_dir>/.rlrun.lock`.

Two `rlrun` commands with the same run dir used to interleave their event files and
overwrite each other's `.hydra/config.yaml`. The lock is taken before anything is written
(Hydra's own `.hydra/` files included: see `rlrun.core.config._output_subdir`) and held for
the life of the run. The kernel drops it when its process dies, however it dies, so a lock
left by a killed run is simply taken over; the file itself stays, holding the last owner's
PID and host for the message a refused second run prints.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from rlrun.core.errors import RunDirBusyError
from rlrun.core.status import identity

LOCK_NAME = ".rlrun.lock"
_held: dict[Path, int] = {}  # run dir -> fd of the lock this process holds


def lock_path(run_dir: str | Path) -> Path:
    return Path(run_dir).resolve() / LOCK_NAME


def holds(run_dir: str | Path) -> bool:
    return Path(run_dir).resolve() in _held


def owner(run_dir: str | Path) -> dict[str, Any]:
    """What the lock file says about its (last) owner: pid, host; {} when unreadable."""
    try:
        return json.loads(lock_path(run_dir).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def try_acquire(run_dir: str | Path) -> bool:
    """Take the lock if it is free (or already ours); False if a live process holds it.
    OSErrors (read-only dir, no permission) propagate: the caller reports them."""
    import fcntl

    run_dir = Path(run_dir).resolve()
    if run_dir in _held:
        return True
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(run_dir), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(identity()).encode(), 0)
    _held[run_dir] = fd
    return True


def acquire(run_dir: str | Path) -> None:
    """`try_acquire`, or a one-line RunDirBusyError naming the process that holds it."""
    if not try_acquire(run_dir):
        who = owner(run_dir)
        pid, host = who.get("pid", "?"), who.get("host", "?")
        raise RunDirBusyError(
            f"{Path(run_dir)} is in use by a live rlrun process (PID {pid} on {host}); wait"
            " for it to finish, stop it, or pick another directory")


def release(run_dir: str | Path) -> None:
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing drops the flock
