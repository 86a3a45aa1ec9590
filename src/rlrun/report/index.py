"""The run index: every run dir under the roots as rows of a DuckDB database.

Tables (what `rlrun-report --sql` and `rlrun.report.connect()` see):

- `runs`: one row per run dir: `run_dir`, `root`, `rel`, `algo`, `env`, `setting` and
  `group_id` (its group of seeds, see groups.py), `seed`, `status`
  (`completed`, `failed`, `interrupted`, `running`, `stale` for a `running` run whose process
  is gone, `pending` for a job dir without results.json yet), `steps`, `wall_time_s`,
  `headline`, `objective` (value), `objective_tag`, `error`, `label`, `overrides`, and one
  column per resolved config key (`"algo.learning_rate"`, `"env.name"`, ...; quote them).
- `metrics`: `run_dir`, `tag`, `last`, `tail_mean`, `best`, `count`: results.json's
  summaries of every scalar.
- `scalars`: `run_dir`, `tag`, `step`, `value`, `wall_time` (Unix s): every logged point.
- `config`: `run_dir`, `key`, `num`, `text`: the resolved config in long form (`num` for
  numbers, `text` for the rest), for questions across keys.

Each root keeps its index in `<root>/.rlrun-index.duckdb`; a run is read again only when the
newest modification time of its dir, results.json or scalars.parquet changed, and rows of run
dirs that are gone are dropped. Scalars come from `scalars.parquet` (many files in one
DuckDB scan) and, for runs made before rlrun wrote that file, from the event files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rlrun.core.scalars import SCALARS_FILE

INDEX_FILE = ".rlrun-index.duckdb"
SCHEMA_VERSION = 2  # 2: `minimize` (the tags a run declares lower-is-better)

# Columns of `runs` that come from results.json; config keys of the same name are left out.
RUN_COLUMNS = ("run_dir", "root", "rel", "algo", "env", "seed", "status", "steps",
               "wall_time_s", "headline", "objective", "objective_tag", "error", "label",
               "overrides", "minimize")

_DDL = """
CREATE TABLE IF NOT EXISTS meta (version INTEGER);
CREATE TABLE IF NOT EXISTS run_files (run_dir VARCHAR, mtime DOUBLE);
CREATE TABLE IF NOT EXISTS run_info (
    run_dir VARCHAR, root VARCHAR, rel VARCHAR, algo VARCHAR, env VARCHAR, seed BIGINT,
    raw_status VARCHAR, steps BIGINT, wall_time_s DOUBLE, headline VARCHAR, objective DOUBLE,
    objective_tag VARCHAR, error VARCHAR, label VARCHAR, overrides VARCHAR, pid BIGINT,
    pid_start BIGINT, host VARCHAR, heartbeat DOUBLE, heartbeat_s DOUBLE, minimize VARCHAR);
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


def natural_key(path: Path | str) -> list[Any]:
    """Sort `10_x` after `9_x` (Hydra's job numbers are not zero-padded)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


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
    error = None
    try:
        with open(run_dir / "results.json") as f:
            loaded = json.load(f)
        results = loaded if isinstance(loaded, dict) else {}
        status = str(results.get("status", "pending"))
        error = results.get("error")
    except FileNotFoundError:
        status = "pending"  # Hydra made the job dir; train() has not written results yet
    except (OSError, ValueError) as e:
        status, error = "failed", f"results.json unreadable: {e}"
    cfg = _load_yaml(run_dir / ".hydra" / "config.yaml")
    cfg = cfg if isinstance(cfg, dict) else {}
    overrides = _load_yaml(run_dir / ".hydra" / "overrides.yaml")
    overrides = [str(o) for o in overrides] if isinstance(overrides, list) else None
    algo = results.get("algo") or (cfg.get("algo") or {}).get("name")
    env = results.get("env") or (cfg.get("env") or {}).get("name")
    objective_metric = results.get("objective_metric")
    # the tag of the algorithm's declared objective, recorded once the run has a value
    objective_tag = str(objective_metric).rsplit(" (", 1)[0] if objective_metric else None
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
        "headline": results.get("headline"), "objective": _float(results.get("objective")),
        "objective_tag": objective_tag, "error": None if error is None else str(error),
        "label": None if label in (None, "", "None", "null") else str(label),
        "overrides": None if overrides is None else json.dumps(overrides),
        "pid": _int(results.get("pid")), "pid_start": _int(results.get("pid_start")),
        "host": results.get("host"), "heartbeat": _float(results.get("heartbeat")),
        "heartbeat_s": _float(results.get("heartbeat_s")),
        # the run's declared lower-is-better tags (JSON list; null for runs of older rlrun)
        "minimize": json.dumps(results["minimize"]) if isinstance(results.get("minimize"), list)
        else None,
        "_config": flat, "_metrics": results.get("metrics") or {},
    }


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) \
        and math.isfinite(v) else None


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

    Returns counts: runs found, re-read, dropped."""
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
    con.execute("BEGIN TRANSACTION")
    try:
        if drop:
            dropped_df = {"run_dir": _arr(drop)}  # noqa: F841 (scanned by DuckDB)
            for t in _TABLES:
                con.execute(f"DELETE FROM {t} WHERE run_dir IN (SELECT run_dir FROM dropped_df)")
        if changed:
            _insert(con, [read_run(d, root) for d in changed], now)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
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

    parquet = [r["run_dir"] for r in rows if os.path.isfile(
        os.path.join(r["run_dir"], SCALARS_FILE))]
    _insert_parquet(con, parquet)
    with_parquet = set(parquet)
    for r in rows:
        if r["run_dir"] not in with_parquet and r["raw_status"] != "pending" and any(
                n.startswith("events.out.tfevents") for n in os.listdir(r["run_dir"])):
            points = event_scalars(Path(r["run_dir"]))
            if points:
                cols = list(zip(*points, strict=True))
                ev_df = {"run_dir": _arr([r["run_dir"]] * len(points)),  # noqa: F841
                         "tag": _arr(cols[0]), "step": np.array(cols[1], dtype=np.int64),
                         "value": np.array(cols[2], dtype=float),
                         "wall_time": np.array(cols[3], dtype=float)}
                con.execute("INSERT INTO scalars SELECT * FROM ev_df")


def _insert_parquet(con: Any, run_dirs: list[str]) -> None:
    """All scalars.parquet files in one scan; a damaged file is skipped on its own."""
    if not run_dirs:
        return
    files = [os.path.join(d, SCALARS_FILE) for d in run_dirs]
    owner_df = {"file": _arr(files), "run_dir": _arr(run_dirs)}  # noqa: F841
    sql = ("INSERT INTO scalars SELECT o.run_dir, p.tag, p.step, p.value, p.wall_time "
           "FROM read_parquet($files, filename = true) p JOIN owner_df o ON p.filename = o.file")
    try:
        con.execute(sql, {"files": files})
    except Exception:
        for f, d in zip(files, run_dirs, strict=True):
            owner_df = {"file": _arr([f]), "run_dir": _arr([d])}  # noqa: F841
            try:
                con.execute(sql, {"files": [f]})
            except Exception:  # noqa: S112 (an unreadable file: that run has no curves)
                continue


# ---- the query connection ---------------------------------------------------------------------
def open_index(roots: Sequence[Path], cache: bool = True, quiet: bool = True) -> Any:
    """Sync each root's index and return an in-memory DuckDB connection with the views
    `runs`, `metrics` and `scalars` over all roots."""
    import duckdb

    con = duckdb.connect()
    parts = []
    for i, root in enumerate(roots):
        root = Path(root).resolve()
        if not root.is_dir():
            raise IndexError_(f"{root} is not a directory" if root.exists()
                              else f"{root} does not exist")
        alias = f"r{i}"
        path = root / INDEX_FILE
        attached = False
        if cache and not (root / "results.json").exists():
            try:
                con.execute(f"ATTACH '{_q(str(path))}' AS {alias}")
                attached = True
            except (duckdb.IOException, duckdb.Error) as e:
                if not quiet:  # stderr: --sql output on stdout stays machine-readable
                    print(f"note: index {path} not usable ({str(e).splitlines()[0]}); "
                          "indexing in memory", file=sys.stderr)
        if not attached:
            con.execute(f"ATTACH ':memory:' AS {alias}")
        con.execute(f"USE {alias}")
        sync(con, root)
        con.execute("USE memory")
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

    from rlrun.report.groups import group_runs, load_runs

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
    cols = []
    for key, numeric in keys:
        if key in RUN_COLUMNS:
            continue
        k = _q(key)
        expr = (f"any_value(num) FILTER (WHERE key = '{k}')" if numeric
                else f"any_value(coalesce(text, CAST(num AS VARCHAR))) "
                     f"FILTER (WHERE key = '{k}')")
        cols.append(f'{expr} AS "{key.replace(chr(34), "")}"')
    pivot = ("SELECT run_dir" + "".join(f", {c}" for c in cols) +
             " FROM config GROUP BY run_dir")
    select = [("CASE WHEN i.run_dir IN (SELECT run_dir FROM stale_dirs) THEN 'stale' "
               "ELSE i.raw_status END AS status") if c == "status" else f"i.{c}"
              for c in RUN_COLUMNS]
    select += [f'c."{k.replace(chr(34), "")}"' for k, _ in keys if k not in RUN_COLUMNS]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE runs AS
        SELECT {", ".join(select)}
        FROM run_info i LEFT JOIN ({pivot}) c ON c.run_dir = i.run_dir
        ORDER BY i.root, i.rel""")
