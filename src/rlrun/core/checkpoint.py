"""Checkpoints: written atomically, read back with `weights_only=True`.

A checkpoint is a nested dict of tensors and plain Python values. NumPy arrays are stored
as tensors (weights_only loading refuses arbitrary pickles) and come back as arrays.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.core.errors import CheckpointError

_ND = "__ndarray__"


def _pack(x: Any) -> Any:
    import torch

    if isinstance(x, np.ndarray):  # (ascontiguousarray makes a 0-d array 1-d: reshape back)
        return {_ND: torch.from_numpy(np.ascontiguousarray(x).reshape(x.shape))}
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {k: _pack(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        if all(type(v) in _PLAIN for v in x):  # the logger's series: thousands of floats
            return x
        return type(x)(_pack(v) for v in x)
    return x


_PLAIN = (float, int, str, bool)


def _unpack(x: Any) -> Any:
    if isinstance(x, dict):
        if set(x) == {_ND}:
            return x[_ND].numpy()
        return {k: _unpack(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_unpack(v) for v in x)
    return x


def atomic_write_bytes(path: Path, data: bytes, dir_fd: int | None = None) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`.

    A crash or Ctrl-C mid-write leaves the previous file intact, never a truncated one.
    `dir_fd`: an open descriptor of `path`'s folder, which names the file instead of its
    path (results.json: it still reaches a run dir that was mounted over read-only mid-run,
    see `rlrun.core.runlock.dir_fd`). An OSError always names `path`.
    """
    path = Path(path)
    tmp = None
    try:
        if dir_fd is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; keep ordinary permissions
        else:  # the umask applies to os.open's mode
            tmp = f".{path.name}.{secrets.token_hex(4)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path.name if dir_fd is not None else path, src_dir_fd=dir_fd,
                   dst_dir_fd=dir_fd)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
        if isinstance(e, OSError) and (not e.filename or dir_fd is not None or Path(
                os.fsdecode(e.filename)).name.startswith(f".{path.name}.")):  # our temp file
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise


def atomic_write_json(path: Path, obj: Any, dir_fd: int | None = None) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode(),
                       dir_fd=dir_fd)


def remove_stray_temp_files(path: Path) -> None:
    """Delete `.<name>.*.tmp` files beside `path`: what a kill in mid-save leaves behind
    (the run dir is locked by this process, so no other writer owns them)."""
    path = Path(path)
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save `state` (tensors, arrays, plain values) atomically to `path`."""
    import io

    import torch

    remove_stray_temp_files(Path(path))
    buf = io.BytesIO()
    torch.save(_pack(state), buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Path, map_location: str = "cpu",
                    data: bytes | None = None) -> dict[str, Any]:
    """Load a checkpoint safely (`weights_only=True`); a corrupt file is a `CheckpointError`.
    `data`: the file's bytes, already read (so that a hash of them describes what loads)."""
    import io

    import torch

    path = Path(path)
    if data is None and not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(io.BytesIO(data) if data is not None else path,
                           map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated/garbage files
        if "Weights only load failed" in str(e):  # not torch's advice to load it unsafely
            raise CheckpointError(
                f"checkpoint {path} is unreadable: it holds objects other than tensors and plain"
                " values, which rlrun never loads (unpickling them could run code); it is corrupt,"
                " was not written by rlrun, or was tampered with: delete it to start afresh"
            ) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({first[:120]}); it may be corrupt or truncated:"
            " delete it to start the run afresh"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold an rlrun state dict")
    return _unpack(state)
