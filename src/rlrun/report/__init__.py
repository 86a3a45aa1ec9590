"""`rlrun-report`: every run in one DuckDB index, statistics that hold up with few seeds.

    rlrun-report multirun/eps                       # tables, summary.md/.csv, PNGs
    rlrun-report outputs multirun --out report      # several roots, one summary
    rlrun-report multirun --sql "SELECT algo, avg(wall_time_s) FROM runs GROUP BY algo"

From Python (notebooks), the same tables as DuckDB relations:

    from rlrun.report import connect
    con = connect("multirun")                       # a duckdb.DuckDBPyConnection
    con.sql("SELECT * FROM runs WHERE status = 'failed'").fetchall()
    con.sql("SELECT * FROM scalars WHERE tag = 'eval/return'").df()   # pandas, if installed

Modules, one job each: `index` (finding run dirs, the DuckDB cache), `groups` (which runs
are seeds of one setting), `stats` (IQM, bootstrap CIs, profiles, probability of
improvement), `summary` (tables and summary.md), `plots` (PNGs), `cli` (the command).
See docs/report.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlrun.report.cli import main

__all__ = ["connect", "main"]


def connect(*roots: str | Path, cache: bool = True) -> Any:
    """Index the runs under `roots` (incrementally, cached in the user's cache dir, see
    `rlrun.report.index.cache_path`) and return an in-memory DuckDB connection holding the tables
    `runs`, `metrics` and `scalars` (docs/report.md). `con.sql(...)` gives a DuckDB
    relation; `.df()` / `.pl()` turn it into a pandas / polars frame when those are installed,
    `.fetchall()` and `.fetchnumpy()` need neither."""
    from rlrun.report.index import open_index

    return open_index([Path(r) for r in roots], cache=cache)
