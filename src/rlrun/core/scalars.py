"""Every scalar of a run in one columnar file, `scalars.parquet`, beside its event files.

`rlrun-report` indexes thousands of runs; parsing a TensorBoard event file per run (protobuf
records, one at a time, behind a 1-2 s `tensorboard` import) is what made that slow. A run
therefore also writes its scalar history as Parquet (columns `tag`, `step`, `value`,
`wall_time`), which DuckDB reads for many runs in one query.

DuckDB writes the file (`COPY ... TO ... (FORMAT parquet)` over a dict of NumPy arrays): it
is already what reads it, it is one wheel without dependencies, and it imports in ~0.1 s.
pyarrow would add ~100 MB and a slower import for the same file. The import happens only
here, when there is something to write (at the end of a run), never at start-up.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from rlrun.core.errors import os_error_at

SCALARS_FILE = "scalars.parquet"


def write_scalars(run_dir: Path,
                  series: Mapping[str, tuple[Sequence[int], Sequence[float],
                                             Sequence[float] | None]]) -> Path | None:
    """Write `{tag: (steps, values, wall_times)}` to `<run_dir>/scalars.parquet` atomically.

    `wall_times` (Unix seconds, or None when unknown) lets the report plot against wall time.
    Returns the path, or None when there is nothing to write (no import, no file).
    """
    series = {t: s for t, s in series.items() if len(s[1])}
    if not series:
        return None
    import duckdb
    import numpy as np

    tags, steps, values, times = [], [], [], []
    for tag, (st, va, wt) in series.items():
        n = len(va)
        tags.append(np.full(n, tag, dtype=object))
        steps.append(np.asarray(st[:n], dtype=np.int64))
        values.append(np.asarray(va, dtype=np.float64))
        times.append(np.asarray(wt[:n], dtype=np.float64) if wt is not None and len(wt) >= n
                     else np.full(n, np.nan))
    value = np.concatenate(values)
    # DuckDB reads a NumPy NaN as NULL; a NaN value (a diverged run) travels as a flag
    columns = {"tag": np.concatenate(tags), "step": np.concatenate(steps),  # noqa: F841
               "value": value, "nan": np.isnan(value), "wall_time": np.concatenate(times)}
    run_dir = Path(run_dir)
    path = run_dir / SCALARS_FILE
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{SCALARS_FILE}.", suffix=".tmp")
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; keep ordinary permissions
        con = duckdb.connect()
        try:
            con.execute("SET threads = 1")
            # straight into our temp file (DuckDB's own temp file would be a second one)
            con.execute("COPY (SELECT tag, step, CASE WHEN nan THEN 'NaN'::DOUBLE ELSE value "
                        "END AS value, wall_time FROM columns) "
                        f"TO '{_quote(tmp)}' (FORMAT parquet, COMPRESSION zstd,"
                        " USE_TMP_FILE false)")
        finally:
            con.close()
        os.replace(tmp, path)
    except (OSError, duckdb.IOException) as e:
        # a full or read-only disk: DuckDB's IOException is no OSError and names our temp
        # file; as an OSError naming scalars.parquet, it ends the run in one line
        raise os_error_at(e, path) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def _quote(path: str) -> str:
    return path.replace("'", "''")
