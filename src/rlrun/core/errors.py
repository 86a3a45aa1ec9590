"""User-facing errors.

Everything a user can fix (a bad option, an impossible pairing, a missing file, no GPU)
raises an `RlrunError`; `rlrun.cli` prints it as one line and exits with code 2. Anything
else is a bug and keeps its traceback.
"""


class RlrunError(Exception):
    """Base class: a problem the user can fix; its message says how."""


class ConfigError(RlrunError):
    """A value is of the wrong type or out of range."""


class PairingError(RlrunError):
    """The algorithm cannot learn from the chosen task."""


class DeviceError(RlrunError):
    """The requested device is not available."""


class CheckpointError(RlrunError):
    """A checkpoint or run directory cannot be read or resumed."""


class DataError(RlrunError):
    """A data file is missing or malformed."""


class NonFiniteError(RlrunError):
    """A loss became NaN or infinite; a checkpoint saved before it stays as it was."""


class RunDirBusyError(RlrunError):
    """Another live process owns the run directory."""


class RunDirTakenError(CheckpointError):
    """A new run was aimed at a directory that already holds another run."""


class RunIOError(RlrunError):
    """The disk refused a read or write (full, read-only, permissions, missing file)."""


def describe_os_error(e: OSError, writable_hint: str = "hydra.run.dir=...") -> str:
    """One line naming the path and the OS error, e.g. for ENOSPC while saving a checkpoint.
    `writable_hint`: how this command picks another place to write, for EROFS (a fresh run:
    hydra.run.dir=...; rlrun-eval and resume= write into the run dir: copy it elsewhere)."""
    import errno as _errno
    import os as _os

    what = e.strerror or type(e).__name__
    code = _errno.errorcode.get(e.errno or 0)
    # TensorBoard's file layer names its files as bytes: print them as paths, not b'...'
    where = f" {_os.fsdecode(e.filename)}" if e.filename else ""
    if e.filename2:
        where += f" -> {_os.fsdecode(e.filename2)}"
    fix = {"ENOSPC": "free some space", "EDQUOT": "free some space",
           "EROFS": f"pick a writable directory ({writable_hint})",
           "EACCES": "check the permissions", "EPERM": "check the permissions",
           "ENOENT": "check the path"}.get(code or "", "")
    return (f"I/O error on{where}: {what}" + (f" ({code})" if code else "")
            + (f"; {fix}" if fix else ""))


def os_error_at(e: BaseException, path: object) -> OSError:
    """`e` (an OSError, or a library's I/O error carrying an errno) as an OSError that names
    `path` when `e` names no file: `write()` and `fsync()` failures, TensorBoard's writer
    thread and DuckDB's `IOException` do not say which file the disk refused."""
    import errno as _errno
    import os as _os
    import re

    if isinstance(e, OSError) and e.errno:
        name = _os.fsdecode(e.filename) if e.filename else str(path)
        if _os.path.basename(name).startswith(f".{_os.path.basename(str(path))}."):
            name = str(path)  # our temp file beside it: name the file the user knows
        return OSError(e.errno, e.strerror or _os.strerror(e.errno), name)
    text = str(e)
    found = re.search(r'"errno"\s*:\s*"?(\d+)', text)  # DuckDB: {"errno":"28", ...}
    if found:
        code = int(found.group(1))
    else:  # "Cannot open file ...: Not a directory": the longest strerror the text names
        named = [c for c in _errno.errorcode if _os.strerror(c) in text]
        code = max(named, key=lambda c: len(_os.strerror(c))) if named else _errno.EIO
    return OSError(code, _os.strerror(code), str(path))


class Interrupted(Exception):  # noqa: N818 - a stop the user asked for, not an error
    """The run stopped on SIGINT/SIGTERM; `resumable` when a checkpoint holds its state."""

    def __init__(self, run_dir: object, step: int, resumable: bool = True):
        if resumable:
            msg = f"interrupted at step {step}; continue with: rlrun resume={run_dir}"
        else:
            msg = (f"interrupted at step {step}, before any checkpoint was saved: nothing to"
                   " resume, start it afresh")
        super().__init__(msg)
        self.run_dir, self.step, self.resumable = run_dir, step, resumable
