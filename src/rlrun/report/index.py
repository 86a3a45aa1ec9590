"""The run index: every run dir under the roots as rows of a DuckDB database.

Tables (what `rlrun-report --sql` and `rlrun.report.connect()` see):

- `runs`: one row per run dir: `run_dir`, `root`, `rel`, `algo`, `env`, `setting` and
  `group_id` (its group of seeds, see groups.py), `seed`, `status`
  (`completed`, `failed`, `interrupted`, `running`, `stale` for a `running` run whose process
  is gone, `pending` for a job dir without results.json yet), `steps`, `wall_time_s`,
  `headline`, `objective` (value), `objective_tag`, `error`, `label`, `overrides`,
  `minimize` and `objectives` (JSON lists: the tags its algorithm declares lower-is-better,
  and those the summary reports by default, the objective first), `problem`, and one
  column per resolved config key (`"algo.learning_rate"`, `"env.name"`, ...; quote them).
- `metrics`: `run_dir`, `tag`, `last`, `tail_mean`, `best`, `count`: results.json's
  summaries of every scalar.
- `scalars`: `run_dir`, `tag`, `step`, `value`, `wall_time` (Unix s): every logged point.
- `config`: `run_dir`, `key`, `num`, `text`: the resolved config in long form (`num` for
  numbers, `text` for the rest), for questions across keys.

The index of a root is cached in the user's cache dir (`$RLRUN_CACHE_DIR/index/`, else
`$XDG_CACHE_HOME/rlrun/index/`, else `~/.cache/rlrun/index/`), one file per root named by a
hash of the root's path; a run is read again only when the newest modification time of its
dir, results.json or scalars.parquet changed, and rows of run dirs that are gone are dropped.
Scalars come from `scalars.parquet` (many files in one DuckDB scan) and, for runs made before
rlrun wrote that file, from the event files.

Why the cache is not in the root: a root is data from anywhere (a colleague's sweep, an
archive), and a DuckDB file is more than data: a view, a macro, a column default or a CHECK
constraint in it runs SQL (`read_text('/etc/...')`) when rlrun reads or writes the table.
An index file found in a root (`.rlrun-index.duckdb`, as rlrun < 0.2 wrote) is never opened.
The file in the cache dir, which only rlrun writes, is also checked before use: its tables
must be exactly the ones rlrun creates, with no views, macros, sequences, constraints or
defaults (`_is_plain_index`); anything else is discarded and rebuilt. Queries (`--sql`,
`connect()`) then see it attached read-only: a `DELETE` cannot change the cache.

Nothing from a run dir is pasted into SQL: values travel as bound parameters or NumPy
columns, and config keys, which become column names of `runs`, are quoted identifiers
(`quote_ident`). One damaged run (an unreadable results.json or scalars.parquet) is indexed
with a `problem` and reported; the others are indexed as usual.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rlrun.core.scalars import SCALARS_FILE
from rlrun.report.groups import group_runs, load_runs, natural_key

INDEX_FILE = ".rlrun-index.duckdb"  # where rlrun < 0.2 kept it, in the root: never read now
# 2: `minimize` (the tags a run declares lower-is-better); 3: `problem`; 4: `objectives`
SCHEMA_VERSION = 4

# Columns of `runs` that come from results.json; config keys of the same name are left out.
RUN_COLUMNS = ("run_dir", "root", "rel", "algo", "env", "seed", "status", "steps",
               "wall_time_s", "headline", "objective", "objective_tag", "error", "label",
               "overrides", "minimize", "problem", "objectives")

_DDL = """
CREATE TABLE IF NOT EXISTS meta (version INTEGER);
CREATE TABLE IF NOT EXISTS run_files (run_dir VARCHAR, mtime DOUBLE);
CREATE TABLE IF NOT EXISTS run_info (
    run_dir VARCHAR, root VARCHAR, rel VARCHAR, algo VARCHAR, env VARCHAR, seed BIGINT,
    raw_status VARCHAR, steps BIGINT, wall_time_s DOUBLE, headline VARCHAR, objective DOUBLE,
    objective_tag VARCHAR, error VARCHAR, label VARCHAR, overrides VARCHAR, pid BIGINT,
    pid_start BIGINT, host VARCHAR, heartbeat DOUBLE, heartbeat_s DOUBLE, minimize VARCHAR,
    problem VARCHAR, objectives VARCHAR);
CREATE TABLE IF NOT EXISTS config (run_dir VARCHAR, key VARCHAR, num DOUBLE, text VARCHAR);
CREATE TABLE IF NOT EXISTS metrics (run_dir VARCHAR, tag VARCHAR, last DOUBLE,
    tail_mean DOUBLE, best DOUBLE, count DOUBLE);
CREATE TABLE IF NOT EXISTS scalars (run_dir VARCHAR, tag VARCHAR, step BIGINT, value DOUBLE,
    wall_time DOUBLE);
"""
_TABLES = ("run_files", "run_info", "config", "metrics", "scalars")


class IndexError_(Exception):
    """Raised for a root that cannot be indexed (missing, not a folder)."""


# ---- finding run dirs ------------------------------------------------------------------------
def find_run_dirs(root: Path) -> list[Path]:
    """Every folder below `root` (itself included) holding results.json or .hydra/config.yaml.

    Run folders are not searched further (their .hydra/ and checkpoints/ hold no runs), and
    hidden folders are skipped, so a big `outputs/` is walked once.
    """
    found = []
    stack = [str(root)]
    while stack:
        here = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue
        names = {e.name for e in entries}
        if "results.json" in names or os.path.isfile(os.path.join(here, ".hydra",
                                                                  "config.yaml")):
            found.append(Path(here))
            continue
        stack.extend(e.path for e in entries
                     if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    return sorted(found, key=natural_key)


def run_mtime(run_dir: Path) -> float:
    """Newest modification time of the files whose change means the run must be re-read."""
    newest = 0.0
    d = str(run_dir)
    for p in (d, os.path.join(d, "results.json"), os.path.join(d, SCALARS_FILE),
              os.path.join(d, ".hydra")):
        with contextlib.suppress(OSError):
            newest = max(newest, os.stat(p).st_mtime)
    return newest


# ---- reading one run -----------------------------------------------------------------------
def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        with open(path) as f:
            return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return None


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """`{"algo": {"lr": 1e-3}}` -> `{"algo.lr": 1e-3}`; lists stay values."""
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v
    return out


def config_value(v: Any) -> tuple[float | None, str | None]:
    """(number, text) of a config value: numbers (not bools) as floats, so `0` and `0.0`
    are one value; everything else as text (JSON for lists and dicts)."""
    if isinstance(v, bool):
        return None, str(v).lower()
    if isinstance(v, int | float):
        return float(v), None
    if v is None:
        return None, None
    if isinstance(v, str):
        return None, v
    return None, json.dumps(v, sort_keys=True)


def read_run(run_dir: Path, root: Path) -> dict[str, Any]:
    """results.json, the resolved config and the overrides of one run dir, as plain data."""
    results: dict[str, Any] = {}
    error = problem = None
    try:
        with open(run_dir / "results.json", "rb") as f:
            loaded = json.loads(f.read(_MAX_RESULTS_BYTES + 1)[:_MAX_RESULTS_BYTES])
        problem = _results_problem(loaded)
        results = loaded if problem is None else {}
        status = str(results.get("status", "pending")) if problem is None else "failed"
        error = results.get("error") if problem is None else problem
    except FileNotFoundError:
        status = "pending"  # Hydra made the job dir; train() has not written results yet
    except (OSError, ValueError) as e:
        problem = f"results.json unreadable: {' '.join(str(e).split())[:200]}"
        status, error = "failed", problem
    cfg = _load_yaml(run_dir / ".hydra" / "config.yaml")
    cfg = cfg if isinstance(cfg, dict) else {}
    overrides = _load_yaml(run_dir / ".hydra" / "overrides.yaml")
    overrides = [str(o) for o in overrides] if isinstance(overrides, list) else None
    algo = results.get("algo") or (cfg.get("algo") or {}).get("name")
    env = results.get("env") or (cfg.get("env") or {}).get("name")
    objective_metric = results.get("objective_metric")
    # the tag of the algorithm's declared objective, recorded once the run has a value
    objective_tag = (str(objective_metric).rsplit(" (", 1)[0]
                     if isinstance(objective_metric, str) else None)
    label = cfg.get("label")
    seed = results.get("seed", cfg.get("seed"))
    flat = flatten(cfg)
    for k in ("seed", "label"):  # already columns of their own
        flat.pop(k, None)
    return {
        "run_dir": str(run_dir), "root": str(root),
        "rel": "." if run_dir == root else str(run_dir.relative_to(root)),
        "algo": None if algo is None else str(algo), "env": None if env is None else str(env),
        "seed": int(seed) if isinstance(seed, int) else None, "raw_status": status,
        "steps": _int(results.get("steps")), "wall_time_s": _float(results.get("wall_time_s")),
        "headline": _str(results.get("headline")), "objective": _float(results.get("objective")),
        "objective_tag": objective_tag, "error": None if error is None else str(error),
        "label": None if label in (None, "", "None", "null") else str(label),
        "overrides": None if overrides is None else json.dumps(overrides),
        "pid": _int(results.get("pid")), "pid_start": _int(results.get("pid_start")),
        "host": _str(results.get("host")), "heartbeat": _float(results.get("heartbeat")),
        "heartbeat_s": _float(results.get("heartbeat_s")),
        # the run's declared lower-is-better tags (JSON list; null for runs of older rlrun)
        "minimize": json.dumps([str(t) for t in results["minimize"]])
        if isinstance(results.get("minimize"), list) else None,
        "problem": problem,
        # what the summary reports by default: the objective, then the spec's `also_report`
        "objectives": json.dumps([str(t) for t in results["objectives"]])
        if isinstance(results.get("objectives"), list) else None,
        "_config": flat, "_metrics": results.get("metrics") or {},
    }


_MAX_RESULTS_BYTES = 64 << 20  # a results.json is kilobytes; more is not rlrun's
_STATUSES = ("running", "completed", "interrupted", "failed")


def _results_problem(loaded: Any) -> str | None:
    """Why a parsed results.json is not rlrun's, or None: a JSON object whose `status` is one
    of rlrun's and whose `metrics`, when present, map tags to summaries."""
    if not isinstance(loaded, dict):
        return f"results.json is not an rlrun results file (a JSON {type(loaded).__name__})"
    if loaded.get("status") not in _STATUSES:
        return f"results.json is not an rlrun results file (status {loaded.get('status')!r:.40})"
    metrics = loaded.get("metrics")
    if metrics is not None and not (isinstance(metrics, dict) and all(
            isinstance(k, str) and isinstance(v, dict) for k, v in metrics.items())):
        return "results.json is not an rlrun results file (metrics is not {tag: {...}})"
    return None


def _str(v: Any) -> str | None:
    return None if v is None else str(v)[:10_000]


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return int(v) if -2**63 <= v < 2**63 else None


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def event_scalars(run_dir: Path) -> list[tuple[str, int, float, float]]:
    """(tag, step, value, wall_time) of every scalar in a run's event files: the fallback
    for runs without scalars.parquet. Every point is kept (a step can hold two, e.g. two
    episodes ending in one vector step), as scalars.parquet keeps them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    try:
        acc.Reload()
    except Exception:  # a truncated or foreign event file must not stop the report
        return []
    out = []
    for tag in acc.Tags().get("scalars", []):
        out += [(tag, int(e.step), float(e.value), float(e.wall_time)) for e in acc.Scalars(tag)]
    return out


def read_curve(run_dir: Path, tag: str) -> tuple[list[float], list[float]] | None:
    """(steps, values) of one tag of one run, from scalars.parquet or else its event files;
    None when the run never logged it. For scripts that look at a few runs; the report
    itself reads all runs at once through the index."""
    path = Path(run_dir) / SCALARS_FILE
    if path.is_file():
        import duckdb

        rows = duckdb.connect().execute(
            f"SELECT step, value FROM read_parquet('{_q(str(path))}') WHERE tag = ? "
            "ORDER BY step", [tag]).fetchall()
    else:
        rows = [(s, v) for t, s, v, _ in event_scalars(Path(run_dir)) if t == tag]
    if not rows:
        return None
    return [float(s) for s, _ in rows], [float(v) for _, v in rows]


# ---- the cache -------------------------------------------------------------------------------
def _columns(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    import numpy as np

    return {n: np.array([r[n] for r in rows], dtype=object) for n in names}


def sync(con: Any, root: Path) -> dict[str, int]:
    """Bring the index tables in `con` up to date with the run dirs under `root`.

    Everything that reads a run's files (results.json, config, scalars) runs before the
    transaction that writes the index, so one damaged run cannot abort it: that run is
    indexed with its `problem`, the others as usual. Returns counts: runs found, re-read,
    dropped."""
    con.execute(_DDL)
    if con.execute("SELECT count(*) FROM meta").fetchone()[0] == 0:
        con.execute("INSERT INTO meta VALUES (?)", [SCHEMA_VERSION])
    elif con.execute("SELECT max(version) FROM meta").fetchone()[0] != SCHEMA_VERSION:
        for t in _TABLES:
            con.execute(f"DELETE FROM {t}")
        con.execute("UPDATE meta SET version = ?", [SCHEMA_VERSION])
    dirs = find_run_dirs(root)
    now = {str(d): run_mtime(d) for d in dirs}
    known = dict(con.execute("SELECT run_dir, mtime FROM run_files").fetchall())
    changed = [d for d in dirs if known.get(str(d)) != now[str(d)]]
    gone = [k for k in known if k not in now]
    drop = gone + [str(d) for d in changed if str(d) in known]
    rows = [read_run(d, root) for d in changed]
    _stage_scalars(con, rows)  # temp.staged_scalars; sets `problem` of unreadable files
    con.execute("BEGIN TRANSACTION")
    try:
        if drop:
            dropped_df = {"run_dir": _arr(drop)}  # noqa: F841 (scanned by DuckDB)
            for t in _TABLES:
                con.execute(f"DELETE FROM {t} WHERE run_dir IN (SELECT run_dir FROM dropped_df)")
        if rows:
            _insert(con, rows, now)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS temp.staged_scalars")
    return {"runs": len(dirs), "read": len(changed), "dropped": len(gone)}


def _arr(values: Iterable[Any], dtype: Any = object) -> Any:
    import numpy as np

    return np.array(list(values), dtype=dtype)


def _insert(con: Any, rows: list[dict[str, Any]], mtimes: dict[str, float]) -> None:
    import numpy as np

    names = [n for n in rows[0] if not n.startswith("_")]
    info_df = _columns(rows, names)  # noqa: F841
    con.execute(f"INSERT INTO run_info ({', '.join(names)}) SELECT * FROM info_df")
    files_df = {"run_dir": _arr(r["run_dir"] for r in rows),  # noqa: F841
                "mtime": np.array([mtimes[r["run_dir"]] for r in rows], dtype=float)}
    con.execute("INSERT INTO run_files SELECT * FROM files_df")

    cfg_rows = [(r["run_dir"], k, *config_value(v)) for r in rows
                for k, v in r["_config"].items()]
    if cfg_rows:
        cols = list(zip(*cfg_rows, strict=True))
        config_df = {"run_dir": _arr(cols[0]), "key": _arr(cols[1]),  # noqa: F841
                     "num": np.array([np.nan if x is None else x for x in cols[2]],
                                     dtype=float),
                     "text": _arr(cols[3])}
        con.execute("INSERT INTO config SELECT run_dir, key, CASE WHEN isnan(num) THEN NULL "
                    "ELSE num END, text FROM config_df")
    met_rows = [(r["run_dir"], tag, *(_float((m or {}).get(s)) for s in
                                      ("last", "tail_mean", "best", "count")))
                for r in rows for tag, m in r["_metrics"].items() if isinstance(m, dict)]
    if met_rows:
        cols = list(zip(*met_rows, strict=True))
        stats = ("last", "tail_mean", "best", "count")
        metrics_df = {"run_dir": _arr(cols[0]), "tag": _arr(cols[1])}
        # A NaN (a diverged seed) must stay NaN, not become NULL (missing) as DuckDB's scan
        # of a NumPy NaN would make it: NaN travels as a flag.
        for name, c in zip(stats, cols[2:], strict=True):
            v = np.array([np.nan if x is None else x for x in c], dtype=float)
            metrics_df[name] = v
            metrics_df[f"{name}_nan"] = np.array([x is not None for x in c]) & np.isnan(v)
        con.execute("INSERT INTO metrics SELECT run_dir, tag, " + ", ".join(
            f"CASE WHEN {c}_nan THEN 'NaN'::DOUBLE ELSE {c} END" for c in stats)
            + " FROM metrics_df")
    con.execute("INSERT INTO scalars SELECT * FROM temp.staged_scalars")


_SCALARS_COLUMNS = "run_dir VARCHAR, tag VARCHAR, step BIGINT, value DOUBLE, wall_time DOUBLE"


def _stage_scalars(con: Any, rows: list[dict[str, Any]]) -> None:
    """Every point of the re-read runs into `temp.staged_scalars`, outside any transaction:
    all scalars.parquet files in one scan, or file by file when one is damaged (its run
    gets a `problem`); event files for runs made before rlrun wrote scalars.parquet."""
    import numpy as np

    con.execute(f"CREATE OR REPLACE TEMP TABLE staged_scalars ({_SCALARS_COLUMNS})")
    parquet = [r for r in rows if os.path.isfile(os.path.join(r["run_dir"], SCALARS_FILE))]
    if parquet and _stage_parquet(con, [r["run_dir"] for r in parquet]) is not None:
        for r in parquet:  # the one scan failed: file by file, to find the damaged ones
            error = _stage_parquet(con, [r["run_dir"]])
            if error is not None:
                r["problem"] = r["problem"] or f"{SCALARS_FILE} unreadable: {error}"
    with_parquet = {r["run_dir"] for r in parquet}
    for r in rows:
        if r["run_dir"] in with_parquet or r["raw_status"] == "pending":
            continue
        try:
            names = os.listdir(r["run_dir"])
        except OSError:
            continue
        if not any(n.startswith("events.out.tfevents") for n in names):
            continue
        points = event_scalars(Path(r["run_dir"]))
        if points:
            cols = list(zip(*points, strict=True))
            ev_df = {"run_dir": _arr([r["run_dir"]] * len(points)),  # noqa: F841
                     "tag": _arr(cols[0]), "step": np.array(cols[1], dtype=np.int64),
                     "value": np.array(cols[2], dtype=float),
                     "wall_time": np.array(cols[3], dtype=float)}
            con.execute("INSERT INTO temp.staged_scalars SELECT * FROM ev_df")


def _stage_parquet(con: Any, run_dirs: list[str]) -> str | None:
    """Stage the scalars.parquet files of `run_dirs` in one scan; the error, or None. A
    failed statement outside a transaction leaves nothing behind, so a retry file by file
    starts clean."""
    import duckdb

    files = [os.path.join(d, SCALARS_FILE) for d in run_dirs]
    owner_df = {"file": _arr(files), "run_dir": _arr(run_dirs)}  # noqa: F841
    try:
        con.execute("INSERT INTO temp.staged_scalars SELECT o.run_dir, p.tag::VARCHAR, "
                    "p.step::BIGINT, p.value::DOUBLE, p.wall_time::DOUBLE "
                    "FROM read_parquet($files, filename = true) p "
                    "JOIN owner_df o ON p.filename = o.file", {"files": files})
    except duckdb.Error as e:
        return " ".join(str(e).split())[:200] or type(e).__name__
    return None


# ---- the query connection ---------------------------------------------------------------------
def cache_path(root: Path) -> Path:
    """Where the index of `root` is cached: the user's cache dir, a file per root named by a
    hash of its resolved path (never inside the root: see the module docstring)."""
    import hashlib

    base = os.environ.get("RLRUN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "rlrun")
    digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:32]
    return Path(base) / "index" / f"{digest}.duckdb"


def _expected_columns() -> list[tuple[str, str, str]]:
    import duckdb

    con = duckdb.connect()
    con.execute(_DDL)
    return sorted(con.execute("SELECT table_name, column_name, data_type FROM duckdb_columns()"
                              " WHERE database_name = 'memory'").fetchall())


def _is_plain_index(con: Any, alias: str) -> bool:
    """Whether the attached database `alias` holds exactly the tables rlrun creates: their
    columns and types, and no view, macro, sequence, constraint, column default or type of
    its own, any of which could run SQL when rlrun reads or writes it."""
    q = {"alias": alias}
    columns = sorted(con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = $alias", q).fetchall())
    if columns and columns != _expected_columns():
        return False
    checks = (
        "SELECT count(*) FROM duckdb_views() WHERE database_name = $alias AND NOT internal",
        "SELECT count(*) FROM duckdb_functions() WHERE database_name = $alias "
        "AND function_type IN ('macro', 'table_macro')",
        "SELECT count(*) FROM duckdb_sequences() WHERE database_name = $alias",
        "SELECT count(*) FROM duckdb_constraints() WHERE database_name = $alias",
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = $alias "
        "AND column_default IS NOT NULL",
        "SELECT count(*) FROM duckdb_types() WHERE database_name = $alias AND NOT internal",
        "SELECT count(*) FROM duckdb_indexes() WHERE database_name = $alias",
    )
    return all(con.execute(sql, q).fetchone()[0] == 0 for sql in checks)


def _attach_cache(con: Any, path: Path, alias: str, quiet: bool) -> bool:
    """Attach the cached index at `path` (made if missing, rebuilt if it is not a plain rlrun
    index); False when it cannot be used (then the caller indexes in memory)."""
    import duckdb

    def note(what: str) -> None:
        if not quiet:  # stderr: --sql output on stdout stays machine-readable
            print(f"note: index {path} {what}", file=sys.stderr)

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        con.execute(f"ATTACH '{_q(str(path))}' AS {alias}")
    except (OSError, duckdb.Error) as e:
        note(f"not usable ({str(e).splitlines()[0] if str(e) else type(e).__name__});"
             " indexing in memory")
        return False
    if _is_plain_index(con, alias):
        return True
    con.execute(f"DETACH {alias}")
    note("is not a plain rlrun index (views, macros or foreign tables): rebuilt")
    try:
        path.unlink()
        con.execute(f"ATTACH '{_q(str(path))}' AS {alias}")
    except (OSError, duckdb.Error):
        return False
    return True


def open_index(roots: Sequence[Path], cache: bool = True, quiet: bool = True) -> Any:
    """Sync each root's index and return an in-memory DuckDB connection with the views
    `runs`, `metrics`, `scalars` and `config` over all roots; cached indexes are attached
    read-only once synced, so a query cannot change them."""
    import duckdb

    con = duckdb.connect()
    parts = []
    for i, root in enumerate(roots):
        root = Path(root).resolve()
        if not root.is_dir():
            raise IndexError_(f"{root} is not a directory" if root.exists()
                              else f"{root} does not exist")
        alias = f"r{i}"
        path = cache_path(root)
        attached = (cache and not (root / "results.json").exists()
                    and _attach_cache(con, path, alias, quiet))
        if not attached:
            con.execute(f"ATTACH ':memory:' AS {alias}")
        con.execute(f"USE {alias}")
        sync(con, root)
        con.execute("USE memory")
        if attached:  # queries see it read-only
            con.execute(f"DETACH {alias}")
            con.execute(f"ATTACH '{_q(str(path))}' AS {alias} (READ_ONLY)")
        parts.append(alias)
    for t in ("metrics", "scalars", "config", "run_info"):
        union = " UNION ALL ".join(f"SELECT * FROM {a}.{t}" for a in parts)
        con.execute(f"CREATE TEMP VIEW {t} AS {union}")
    build_runs(con)
    add_groups(con)
    return con


def add_groups(con: Any) -> None:
    """Columns `setting` (what sets a run's group apart, e.g. `algo.epsilon=0.1`) and
    `group_id` (a short hash of its resolved config without seed & co.) on `runs`, so SQL can
    group seeds of one configuration: `GROUP BY env, setting`."""
    import hashlib

    pairs = [(r.run_dir, g.setting, hashlib.sha1(repr(g.key).encode()).hexdigest()[:10])
             for g in group_runs(load_runs(con)) for r in g.runs]
    groups_df = {"run_dir": _arr([p[0] for p in pairs], str),  # noqa: F841
                 "setting": _arr([p[1] for p in pairs], str),
                 "group_id": _arr([p[2] for p in pairs], str)}
    con.execute("""
        CREATE OR REPLACE TEMP TABLE runs AS
        SELECT r.run_dir, r.root, r.rel, r.algo, r.env, g.setting::VARCHAR AS setting,
               g.group_id::VARCHAR AS group_id,
               r.* EXCLUDE (run_dir, root, rel, algo, env)
        FROM runs r LEFT JOIN groups_df g ON g.run_dir = r.run_dir
        ORDER BY r.root, r.rel""")


def _q(s: str) -> str:
    return s.replace("'", "''")


def build_runs(con: Any) -> None:
    """The wide `runs` table: run_info with live statuses plus one column per config key."""
    from rlrun.core.status import effective_status

    live = con.execute("SELECT run_dir, raw_status, pid, pid_start, host, heartbeat, "
                       "heartbeat_s FROM run_info WHERE raw_status = 'running'").fetchall()
    stale = [r[0] for r in live if effective_status(
        {"status": r[1], "pid": r[2], "pid_start": r[3], "host": r[4], "heartbeat": r[5],
         "heartbeat_s": r[6]}) == "stale"]
    stale_df = {"run_dir": _arr(stale, str)}  # noqa: F841
    con.execute("CREATE OR REPLACE TEMP TABLE stale_dirs AS SELECT run_dir::VARCHAR AS run_dir "
                "FROM stale_df")
    keys = con.execute("SELECT key, bool_and(text IS NULL) AND bool_or(num IS NOT NULL) "
                       "FROM config GROUP BY key ORDER BY key").fetchall()
    names = column_names([k for k, _ in keys])
    keys_df = {"key": _arr([k for k, _ in keys], str),  # noqa: F841
               "id": _arr(range(len(keys)), "int64")}
    con.execute("CREATE OR REPLACE TEMP TABLE config_keys AS SELECT * FROM keys_df")
    cols = []
    for i, ((_, numeric), name) in enumerate(zip(keys, names, strict=True)):
        if name is None:
            continue
        expr = ("any_value(c.num)" if numeric
                else "any_value(coalesce(c.text, CAST(c.num AS VARCHAR)))")
        cols.append(f"{expr} FILTER (WHERE k.id = {i}) AS {quote_ident(name)}")
    pivot = ("SELECT c.run_dir" + "".join(f", {c}" for c in cols) +
             " FROM config c JOIN config_keys k ON k.key = c.key GROUP BY c.run_dir")
    select = [("CASE WHEN i.run_dir IN (SELECT run_dir FROM stale_dirs) THEN 'stale' "
               "ELSE i.raw_status END AS status") if c == "status" else f"i.{c}"
              for c in RUN_COLUMNS]
    select += [f"c.{quote_ident(n)}" for n in names if n is not None]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE runs AS
        SELECT {", ".join(select)}
        FROM run_info i LEFT JOIN ({pivot}) c ON c.run_dir = i.run_dir
        ORDER BY i.root, i.rel""")


def quote_ident(name: str) -> str:
    """A SQL identifier for any text: in double quotes, inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def column_names(keys: Sequence[str]) -> list[str | None]:
    """The `runs` column of each config key, or None where it gets none: DuckDB names are
    case-insensitive and may not be empty, so a key that is empty, that matches a column of
    results.json (`status`) or that differs from an earlier one only by case, or that holds
    control characters, has no column (it stays in the `config` table)."""
    taken = {c.lower() for c in RUN_COLUMNS}
    out: list[str | None] = []
    for key in keys:
        if not key or key.lower() in taken or not key.isprintable():
            out.append(None)
            continue
        taken.add(key.lower())
        out.append(key)
    return out
