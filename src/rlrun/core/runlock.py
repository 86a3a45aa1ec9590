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

from rlrun.core.errors import RunDirBusyError, RunDirTakenError
from rlrun.core.status import identity

LOCK_NAME = ".rlrun.lock"
RECORD = "results.json"  # a dir that holds one holds a run (rlrun.core.results.NAME)
_held: dict[Path, tuple[int, int]] = {}  # run dir -> fds of its lock and of the dir itself


def lock_path(run_dir: str | Path) -> Path:
    return Path(run_dir).resolve() / LOCK_NAME


def holds(run_dir: str | Path) -> bool:
    return Path(run_dir).resolve() in _held


def dir_fd(run_dir: str | Path) -> int | None:
    """An open descriptor of a run dir this process has locked, else None.

    Opened with the lock, before anything else in the dir: files named through it stay on
    the file system the run started on, so `results.json` can still say `failed` after the
    dir's path was mounted over read-only mid-run (a bind mount), when every write by path
    is refused."""
    held = _held.get(Path(run_dir).resolve())
    return held[1] if held else None


def owner(run_dir: str | Path) -> dict[str, Any]:
    """What the lock file says about its (last) owner: pid, host; {} when unreadable."""
    try:
        return json.loads(lock_path(run_dir).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def try_acquire(run_dir: str | Path, fresh: bool = False) -> bool:
    """Take the lock if it is free (or already ours); False if a live process holds it, or,
    with `fresh` (a new run), if the dir already holds a run. When False, nothing in the dir
    was written. OSErrors (read-only dir, no permission) propagate: the caller reports them."""
    return _take(run_dir, fresh) == ""


def _take(run_dir: str | Path, fresh: bool) -> str:
    """"" (ours now), "busy" (another live process holds it) or "taken" (fresh, and the dir
    already holds a run: its lock is not kept and its lock file not stamped)."""
    import fcntl

    run_dir = Path(run_dir).resolve()
    if run_dir in _held:
        return ""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(run_dir), os.O_RDWR | os.O_CREAT, 0o644)
    dfd = None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # checked under the lock: a run that won a race wrote its record while holding it
        if fresh and (run_dir / RECORD).exists():
            os.close(fd)
            return "taken"
        dfd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(identity()).encode(), 0)
    except BlockingIOError:
        os.close(fd)
        return "busy"
    except BaseException:
        for f in (fd, dfd):
            if f is not None:
                with contextlib.suppress(OSError):
                    os.close(f)
        raise
    _held[run_dir] = (fd, dfd)
    return ""


def acquire(run_dir: str | Path, fresh: bool = False) -> None:
    """`try_acquire`, or a one-line error: RunDirBusyError naming the process that holds the
    lock, or (`fresh`) RunDirTakenError when the dir already holds a run."""
    got = _take(run_dir, fresh)
    if got == "taken":
        raise RunDirTakenError(f"{Path(run_dir)} already holds a run; pick another directory or"
                              f" resume={Path(run_dir)}")
    if got == "busy":
        who = owner(run_dir)
        by = (f"a live rlrun process (PID {who['pid']} on {who.get('host', '?')})"
              if who.get("pid") else "another rlrun process, starting up")
        raise RunDirBusyError(f"{Path(run_dir)} is in use by {by}; wait for it to finish, stop"
                              " it, or pick another directory")


def release(run_dir: str | Path) -> None:
    fds = _held.pop(Path(run_dir).resolve(), None)
    for fd in fds or ():
        with contextlib.suppress(OSError):
            os.close(fd)  # closing the lock's fd drops the flock
