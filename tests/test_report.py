"""`rlrun-report` on a mixed root of real runs: bandits, TD, PPO, the LM, DDPM, a failed job
and a stale one (tiny budgets, made once per module), plus synthetic sweeps for what needs
many runs (cross-task statistics) and the index's bookkeeping.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats as sps

from rlrun.report import connect, main
from rlrun.report.index import INDEX_FILE, event_scalars, sync

from .conftest import read_results, rlrun_cli, run_train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parent.parent
FAST = ["threads=1", "checkpoint_every_s=0"]
BANDIT = ["algo=epsilon_greedy", "env.num_runs=20", "env.steps=50"]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("mixed")
    root = tmp / "root"
    for name, eps, seed in (("eps0_s0", "0", 0), ("eps0_s1", "0", 1), ("eps0.0_s2", "0.0", 2),
                            ("eps0.1_s0", "0.1", 0)):
        run_train(root / "bandit", [*BANDIT, f"algo.epsilon={eps}", f"seed={seed}"], name)
    run_train(root / "td", ["algo=q_learning", "env=cliff_walking_book", "env.num_runs=2",
                            "algo.episodes=20"], "q")
    for seed in range(3):
        run_train(root / "ppo", [*FAST, "algo=ppo", "env=CartPole-v1", "algo.total_steps=512",
                                 "algo.eval_episodes=1", f"seed={seed}"], f"s{seed}")
    run_train(root / "lm", [*FAST, "algo=lm", "network.d_model=32", "network.n_layers=1",
                            "network.n_heads=2", "network.block_size=16", "network.d_ff=64",
                            "env.max_chars=20000", "algo.batch_size=8", "algo.eval_batches=2",
                            "algo.sample_chars=10", "algo.total_steps=12"], "a")
    run_train(root / "ddpm", [*FAST, "algo=ddpm", "algo.timesteps=20", "algo.batch_size=32",
                              "algo.log_every=10", "algo.grid_samples=4", "algo.strip_rows=1",
                              "algo.strip_columns=2", "algo.eval_samples=32",
                              "algo.fid_classifier_steps=20", f"algo.fid_cache_dir={tmp}",
                              "network.ch=8", "network.groups=4", "network.ch_mult=[1,2]",
                              "network.num_res_blocks=1", "network.attn_resolutions=[]",
                              "algo.total_steps=20"], "a")
    # a job that failed: kept as a `failed` record in a sweep (a single run that fails its
    # preflight leaves no run dir at all)
    out = rlrun_cli(["-m", *BANDIT, "algo.epsilon=1.5", "logger.progress=none",
                     f"hydra.sweep.dir={root}", "hydra.sweep.subdir=failed"], cwd=tmp)
    assert out.returncode == 1, out.stderr
    # a run killed without clean-up: results.json still says running, its PID is gone
    shutil.copytree(root / "bandit" / "eps0_s0", root / "stale")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    res = read_results(root / "stale")
    res.update(status="running", pid=dead.pid, pid_start=None, host=socket.gethostname(),
               heartbeat=0.0, heartbeat_s=60.0)
    (root / "stale" / "results.json").write_text(json.dumps(res))
    return root


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _sql(root: Path, query: str, capsys, *extra: str) -> list[dict]:
    capsys.readouterr()
    assert main([str(root), "--sql", query, "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_runs_write_scalars_parquet_matching_results(mixed):
    import duckdb

    run = mixed / "ppo" / "s0"
    res = read_results(run)
    rows = duckdb.sql(f"SELECT tag, count(*), arg_max(value, step), max(step) FROM "
                      f"'{run / 'scalars.parquet'}' GROUP BY tag").fetchall()
    assert {r[0] for r in rows} == set(res["metrics"])
    for tag, count, last, step in rows:
        m = res["metrics"][tag]
        assert (count, step) == (m["count"], m["step"]) and last == pytest.approx(m["last"])


def test_runs_declare_the_direction_of_their_objective(mixed, capsys):
    """The report reads the direction each algorithm declares; it guesses none by name."""
    modes = {r["algo"]: (r["objective_mode"], r["minimize"]) for r in
             (read_results(p.parent) for p in mixed.rglob("results.json")) if "minimize" in r}
    assert modes["lm"][0] == "min" and "moe/dropped_fraction*" in modes["lm"][1]
    assert modes["ddpm"][0] == "min" and modes["ppo"][0] == "max"
    rows = _sql(mixed, "SELECT algo, minimize FROM runs WHERE algo = 'lm'", capsys)
    assert "eval/val_ppl" in json.loads(rows[0]["minimize"])


def test_mixed_root_summary_tables_and_pngs(mixed, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(mixed), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = _csv(out / "summary.csv")
    metrics = {r["metric"] for r in rows}
    # each algorithm's declared objective, one summary for all
    assert {"bandit/average_reward_all_steps", "eval/return", "eval/val_ppl",
            "eval/fid"} <= metrics
    bandit = {r["setting"]: r for r in rows if r["metric"] == "bandit/average_reward_all_steps"}
    # algo.epsilon=0 and 0.0 are one group of three seeds; the stale copy is counted as stale
    zero = bandit["epsilon_greedy algo.epsilon=0"]
    assert (zero["n"], zero["stale"], zero["failed"]) == ("3", "1", "0")
    values = [read_results(mixed / "bandit" / d)["objective"]
              for d in ("eps0_s0", "eps0_s1", "eps0.0_s2")]
    assert float(zero["iqm"]) == pytest.approx(sps.trim_mean(values, 0.25))
    assert float(zero["iqm_ci_low"]) >= min(values) and float(zero["iqm_ci_high"]) <= max(values)
    single = bandit["epsilon_greedy algo.epsilon=0.1"]
    assert (single["n"], single["std"], single["iqm_ci_low"]) == ("1", "", "")
    failed = bandit["epsilon_greedy algo.epsilon=1.5"]
    assert (failed["n"], failed["failed"]) == ("0", "1")
    fid = next(r for r in rows if r["metric"] == "eval/fid")
    assert (fid["env"], fid["higher_is_better"], fid["n"]) == ("digits", "False", "1")
    ppo = next(r for r in rows if r["metric"] == "eval/return" and r["env"] == "CartPole-v1")
    assert ppo["n"] == "3" and ppo["iqm_ci_low"] != ""

    md = (out / "summary.md").read_text()
    assert "no clear winner" in md or "best:" in md
    assert "n=1 < 3: no CI" in md and "## Failed and stale runs" in md
    assert "must be in [0, 1]" in md and "`stale` (stale)" in md
    embedded = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", md)
    assert "curves_eval_return.png" in embedded and "final_eval_fid.png" in embedded
    for name in embedded:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert printed.strip().splitlines()[-1] == (
        "12 runs in 7 groups: 10 completed, 1 failed (failed), 1 stale, 0 still running")


def test_repeated_metric_adds_sections(mixed, tmp_path, capsys):
    assert main([str(mixed), "--metric", "bandit/optimal_action", "--metric",
                 "bandit/average_reward,losses/value", "--stat", "tail_mean", "--out",
                 str(tmp_path), "--no-plot"]) == 0
    md = (tmp_path / "summary.md").read_text()
    heads = [ln for ln in md.splitlines() if ln.startswith("## ") and "(" in ln]
    assert [h.split()[1] for h in heads] == ["bandit/optimal_action", "bandit/average_reward",
                                            "losses/value"]
    assert "lower is better" in heads[2] and not list(tmp_path.glob("*.png"))
    assert main([str(mixed), "--metric", "charts/nope", "--no-plot"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "charts/nope" in err[0]


def test_sql_over_runs_and_scalars(mixed, capsys):
    status = _sql(mixed, "SELECT status, count(*) AS n FROM runs GROUP BY status ORDER BY 1",
                  capsys)
    assert status == [{"status": "completed", "n": 10}, {"status": "failed", "n": 1},
                      {"status": "stale", "n": 1}]
    eps = _sql(mixed, 'SELECT DISTINCT "algo.epsilon" AS e FROM runs WHERE algo = '
                      "'epsilon_greedy' ORDER BY e", capsys)
    assert [r["e"] for r in eps] == [0.0, 0.1, 1.5]  # a number column: 0 and 0.0 are one
    # every logged point is in `scalars`: counts agree with results.json's
    mismatch = _sql(mixed, "SELECT m.run_dir, m.tag FROM metrics m LEFT JOIN (SELECT run_dir, "
                           "tag, count(*) AS c FROM scalars GROUP BY ALL) s USING (run_dir, tag)"
                           " WHERE s.c IS DISTINCT FROM m.count", capsys)
    assert mismatch == []
    for fmt, check in (("csv", lambda t: t.splitlines()[0] == "algo,n"),
                       ("md", lambda t: t.splitlines()[1].startswith("|--")),
                       ("table", lambda t: t.strip().endswith("(5 rows)"))):
        assert main([str(mixed), "--sql", "SELECT algo, count(*) AS n FROM runs WHERE "
                     "status = 'completed' GROUP BY algo", "--format", fmt]) == 0
        assert check(capsys.readouterr().out), fmt
    assert main([str(mixed), "--sql", "SELECT nope FROM runs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlrun-report: error: --sql:")


def _doc_queries() -> list[str]:
    text = (REPO / "docs" / "report.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text, flags=re.S)


def test_the_five_documented_queries(mixed, capsys):
    queries = _doc_queries()
    assert len(queries) == 5
    best, curves, problems, wall, one_key = queries
    rows = {r["env"]: r for r in _sql(mixed, best, capsys)}
    assert rows["digits"]["setting"] == "ddpm" and rows["CartPole-v1"]["seeds"] == 3
    bandit = [read_results(mixed / "bandit" / d)["objective"]
              for d in ("eps0_s0", "eps0_s1", "eps0.0_s2")]
    single = read_results(mixed / "bandit" / "eps0.1_s0")["objective"]
    assert rows["bandit_testbed"]["setting"] == (
        "epsilon_greedy algo.epsilon=0" if sum(bandit) / 3 > single
        else "epsilon_greedy algo.epsilon=0.1")

    pts = _sql(mixed, curves, capsys)
    assert pts and {(r["env"], r["setting"]) for r in pts} == {("CartPole-v1", "ppo")}
    assert [r["step"] for r in pts] == sorted(r["step"] for r in pts)
    assert max(r["seeds"] for r in pts) == 3

    assert [(r["rel"], r["status"]) for r in _sql(mixed, problems, capsys)] == [
        ("failed", "failed"), ("stale", "stale")]
    assert "must be in [0, 1]" in _sql(mixed, problems, capsys)[0]["error"]

    algos = {r["algo"]: r for r in _sql(mixed, wall, capsys)}
    assert set(algos) == {"epsilon_greedy", "q_learning", "ppo", "lm", "ddpm"}
    assert algos["ppo"]["runs"] == 3

    diff = _sql(mixed, one_key.replace("PATH/TO/RUN", "bandit/eps0_s0"), capsys)
    assert [(r["rel"], r["differs_in"]) for r in diff] == [("bandit/eps0.1_s0", "algo.epsilon"),
                                                           ("failed", "algo.epsilon")]


def test_index_is_cached_and_incremental(mixed, tmp_path):
    import duckdb

    root = tmp_path / "root"
    shutil.copytree(mixed, root, ignore=shutil.ignore_patterns(INDEX_FILE + "*"))
    con = duckdb.connect(str(root / INDEX_FILE))
    assert sync(con, root) == {"runs": 12, "read": 12, "dropped": 0}
    assert sync(con, root) == {"runs": 12, "read": 0, "dropped": 0}
    res = root / "ppo" / "s1" / "results.json"
    st = res.stat()
    os.utime(res, (st.st_atime, st.st_mtime + 5))
    shutil.rmtree(root / "td")
    assert sync(con, root) == {"runs": 11, "read": 1, "dropped": 1}
    n = con.execute("SELECT count(DISTINCT run_dir) FROM scalars").fetchall()[0][0]
    assert n == 10  # the failed job logged nothing; the rest kept their points, once
    con.close()
    (root / "lm" / "a" / "results.json").unlink()  # a job Hydra has made, not yet started
    c = connect(root)
    assert c.sql("SELECT count(*) FROM runs").fetchall()[0][0] == 11
    assert c.sql("SELECT status FROM runs WHERE rel = 'lm/a'").fetchall() == [("pending",)]


def test_event_files_are_the_fallback_for_older_runs(mixed, tmp_path):
    import duckdb

    run = tmp_path / "old"
    shutil.copytree(mixed / "ppo" / "s0", run)
    (run / "scalars.parquet").unlink()
    parquet = sorted(duckdb.sql(f"SELECT tag, step, value FROM "
                                f"'{mixed / 'ppo' / 's0' / 'scalars.parquet'}'").fetchall())
    events = sorted((t, s, v) for t, s, v, _ in event_scalars(run))
    assert [(t, s) for t, s, _ in events] == [(t, s) for t, s, _ in parquet]
    for (_, _, a), (_, _, b) in zip(events, parquet, strict=True):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-6)  # event files hold float32
    con = connect(tmp_path, cache=False)
    assert con.sql("SELECT count(*) FROM scalars").fetchall()[0][0] == len(parquet)


def _bench():
    spec = importlib.util.spec_from_file_location("bench_report",
                                                  REPO / "scripts" / "bench_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cross_task_statistics_on_a_synthetic_sweep(tmp_path, capsys):
    import numpy as np

    from rlrun.report.cli import load_scores
    from rlrun.report.stats import iqm

    root = tmp_path / "runs"
    _bench().make_runs(root, 16, points=20, envs=("Pendulum-v1", "CartPole-v1"),
                       algos=("ppo", "sac"), lrs=(1e-3,), seeds=4, shift={"sac": 0.3})
    assert main([str(root), "--x", "wall", "--mean"]) == 0
    md = (root / "summary.md").read_text()
    assert "### Across tasks: normalised eval/return" in md
    scores = load_scores(None)
    per = {}
    for res in map(json.loads, (p.read_text() for p in root.glob("*/*/results.json"))):
        s = scores[res["env"]]
        per.setdefault(res["algo"], []).append(
            (res["objective"] - s["random"]) / (s["reference"] - s["random"]))
    table = [ln for ln in md.splitlines() if ln.startswith("| sac ") or ln.startswith("| ppo ")]
    agg = {ln.split("|")[1].strip(): float(ln.split("|")[2]) for ln in table
           if re.match(r"\| (sac|ppo) +\| +[-\d.]+ +\| \[", ln)}
    for algo, vals in per.items():
        assert agg[algo] == pytest.approx(float(iqm(np.array(vals))), rel=1e-3)
    assert re.search(r"\| sac +\| ppo +\| +[\d.]+ +\| \[", md)  # P(sac > ppo), with a CI
    for kind in ("curves", "final", "aggregate", "profile", "improvement"):
        assert (root / f"{kind}_eval_return.png").read_bytes()[:8] == PNG_MAGIC
        assert f"]({kind}_eval_return.png)" in md


def test_user_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for args in ([str(tmp_path / "nowhere")], [str(tmp_path / "empty")],
                 [str(tmp_path / "empty"), "--format", "csv"],
                 [str(tmp_path), str(tmp_path / "empty")]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("rlrun-report: error: "), args


def test_no_heavy_imports_at_start():
    code = ("import sys, rlrun.report, rlrun.report.cli, rlrun.train; "
            "print(sorted(m for m in ('duckdb', 'matplotlib', 'tensorboard') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_without_matplotlib_tables_still_written(mixed, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main([str(mixed), "--out", str(tmp_path)]) == 0
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert (tmp_path / "summary.csv").is_file() and not list(tmp_path.glob("*.png"))


def test_nan_stays_nan_and_nothing_to_write_writes_nothing(tmp_path):
    """A diverged seed's NaN must show as NaN, not vanish as a missing value."""
    import math

    import duckdb

    from rlrun.core.scalars import write_scalars

    assert write_scalars(tmp_path, {"a": ([], [], None)}) is None
    assert not (tmp_path / "scalars.parquet").exists()
    (run,) = _bench().make_runs(tmp_path / "r", 1, points=5)
    write_scalars(run, {"eval/return": ([1, 2], [1.0, float("nan")], None)})
    res = read_results(run)
    res["metrics"]["eval/return"]["last"] = float("nan")
    (run / "results.json").write_text(json.dumps(res))
    values = duckdb.sql(f"SELECT value, wall_time FROM '{run / 'scalars.parquet'}' "
                        "ORDER BY step").fetchall()
    assert values[0] == (1.0, None) and math.isnan(values[1][0])
    con = connect(tmp_path / "r", cache=False)
    (last,), = con.sql("SELECT last FROM metrics WHERE tag = 'eval/return'").fetchall()
    assert math.isnan(last)
