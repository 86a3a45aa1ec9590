"""rlrun-report on roots from elsewhere (issue 22): a crafted index file runs no SQL, user
SQL cannot change the cache, text from run dirs is inert in terminals and spreadsheets, and
one damaged run is reported without hiding the others."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import duckdb
import pytest

from rlrun.report import main
from rlrun.report.index import INDEX_FILE, cache_path

REPO = Path(__file__).resolve().parent.parent


def _make_runs(root: Path, n: int = 6) -> list[Path]:
    spec = importlib.util.spec_from_file_location("bench_report",
                                                  REPO / "scripts" / "bench_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_runs(root, n, points=5)


def _plant_view(db: Path, secret: Path) -> None:
    """A DuckDB file whose `run_info` is a VIEW that reads a file outside the root (the
    attack of issue 22), with every column rlrun's table has."""
    con = duckdb.connect(str(db))
    cols = ["root", "rel", "algo", "env", "seed", "raw_status", "steps", "wall_time_s",
            "headline", "objective", "objective_tag", "label", "overrides", "pid", "pid_start",
            "host", "heartbeat", "heartbeat_s", "minimize", "problem"]
    con.execute("CREATE VIEW run_info AS SELECT filename AS run_dir, content AS error, "
                + ", ".join(f"NULL AS {c}" for c in cols)
                + f" FROM read_text('{secret}')")
    con.execute("CREATE TABLE meta (version INTEGER); INSERT INTO meta VALUES (3)")
    assert "TOP-SECRET" in str(con.execute("SELECT error FROM run_info").fetchall())  # live
    con.close()


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-TOKEN")
    return path


def test_a_crafted_index_in_the_root_is_never_opened(tmp_path, secret, capsys):
    root = tmp_path / "root"
    _make_runs(root)
    _plant_view(root / INDEX_FILE, secret)
    assert main([str(root)]) == 0
    out = capsys.readouterr().out
    assert "6 runs" in out and "TOP-SECRET" not in out
    assert "TOP-SECRET" not in (root / "summary.md").read_text()
    assert main([str(root), "--sql", "SELECT * FROM run_info", "--format", "json"]) == 0
    assert "TOP-SECRET" not in capsys.readouterr().out


def test_a_tampered_cache_file_is_rebuilt(tmp_path, secret, capsys):
    """Even the cache dir's file (only rlrun writes there) is checked before use."""
    root = tmp_path / "root"
    _make_runs(root)
    path = cache_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    _plant_view(path, secret)
    assert main([str(root), "--sql", "SELECT count(*) AS n FROM runs", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [{"n": 6}] and "TOP-SECRET" not in captured.out
    assert "not a plain rlrun index" in captured.err
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone()[0] \
        == 0


@pytest.mark.parametrize("query", ["DELETE FROM run_info", "DELETE FROM r0.run_info",
                                   "DROP TABLE r0.scalars", "UPDATE r0.run_info SET algo='x'"])
def test_user_sql_cannot_change_the_cache(tmp_path, capsys, query):
    root = tmp_path / "root"
    _make_runs(root)
    assert main([str(root), "--sql", "SELECT 1"]) == 0
    code = main([str(root), "--sql", query])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert main([str(root), "--sql", "SELECT count(*) AS n FROM runs", "--format",
                 "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 6}]


def _edit_config(run: Path, edit) -> None:
    import yaml

    path = run / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg))


def test_odd_config_keys_and_values_are_inert(tmp_path, capsys):
    root = tmp_path / "root"
    runs = _make_runs(root)
    _edit_config(runs[0], lambda c: c.update({"": 1, '"': 2, "Status": 3}))
    _edit_config(runs[1], lambda c: c["algo"].update(lr="\x1b[31mRED\x1b]0;title\x07"))
    _edit_config(runs[2], lambda c: c.update(label='=HYPERLINK("http://x","y")'))
    assert main([str(root), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[31mRED" in out
    assert "\x1b" not in (tmp_path / "out" / "summary.md").read_text()
    with open(tmp_path / "out" / "summary.csv", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert "'=HYPERLINK(\"http://x\",\"y\")" in cells
    assert not any(c.startswith("=") for c in cells)
    assert main([str(root), "--sql", 'SELECT "algo.lr", label FROM runs', "--format",
                 "csv"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "'=HYPERLINK" in out


def test_one_damaged_run_is_reported_and_the_others_indexed(tmp_path, capsys):
    root = tmp_path / "root"
    runs = _make_runs(root)
    (runs[0] / "scalars.parquet").write_bytes(b"PAR1 not really parquet")
    (runs[1] / "results.json").write_text(json.dumps({**json.loads(
        (runs[1] / "results.json").read_text()), "metrics": [1, 2]}))
    (runs[2] / "results.json").write_text("[1, 2, 3]")
    assert main([str(root)]) == 0
    out = capsys.readouterr().out
    assert "6 runs" in out and "2 failed" in out
    md = (root / "summary.md").read_text()
    assert "scalars.parquet unreadable" in md and "not an rlrun results file" in md
    assert main([str(root), "--sql", "SELECT count(DISTINCT run_dir) AS n FROM scalars",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 5}]


def _one_error(capsys, args: list[str]) -> str:
    assert main(args) == 2, args
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlrun-report: error: "), err
    return err[0]


def test_report_faults_are_one_line(tmp_path, capsys, monkeypatch):
    root = tmp_path / "root"
    _make_runs(root)
    (tmp_path / "afile").write_text("x")
    assert "is a file" in _one_error(capsys, [str(root), "--out", str(tmp_path / "afile")])
    (tmp_path / "bin.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    assert "not a text file" in _one_error(capsys, [str(root), "--scores",
                                                     str(tmp_path / "bin.yaml")])
    assert "empty" in _one_error(capsys, [str(root), "--sql", " ; "])

    from rlrun.core import checkpoint

    def read_only(path, data):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", read_only)
    msg = _one_error(capsys, [str(root), "--no-plot"])
    assert "summary.md" in msg and "EROFS" in msg


def test_cache_lives_outside_the_root(tmp_path):
    root = tmp_path / "root"
    _make_runs(root, 3)
    assert main([str(root), "--no-plot"]) == 0
    assert not (root / INDEX_FILE).exists() and cache_path(root).is_file()
    assert str(cache_path(root)).startswith(os.environ["RLRUN_CACHE_DIR"])
