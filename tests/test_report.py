"""`rlrun-report`: its numbers against the runs' own results.json, on real rlrun outputs.

One real sweep (epsilon 0 and 0.1 with three seeds each, plus an out-of-range epsilon whose
jobs fail) is made once per module with the console script; the other cases copy or reshape
it, or make single runs with `train()` directly.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlrun import report
from rlrun.core.status import identity
from rlrun.report import Group, Run, main, make_rows, mean_curve, t_critical

from .conftest import read_results, rlrun_cli, run_train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HEADLINE = "bandit/average_reward"
EPSILONS = ("0", "0.1")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    out = rlrun_cli(["-m", "algo=epsilon_greedy", "algo.epsilon=0,0.1,1.5", "seed=0,1,2",
                     "env.num_runs=50", "env.steps=100", "logger.progress=none",
                     f"hydra.sweep.dir={tmp / 'sweep'}"], cwd=tmp)
    assert out.returncode == 0, out.stderr
    return tmp / "sweep"


def _jobs(sweep: Path) -> dict[str, list[dict]]:
    """results.json of every job by its epsilon override, read without rlrun.report."""
    by_eps: dict[str, list[dict]] = {}
    for job in sweep.iterdir():
        if (job / ".hydra" / "overrides.yaml").is_file():
            overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
            eps = next(o.split("=")[1] for o in overrides if o.startswith("algo.epsilon="))
            by_eps.setdefault(eps, []).append(read_results(job))
    return by_eps


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _expected(values: list[float]) -> tuple[float, float, float]:
    from scipy.stats import t

    mean, std = statistics.fmean(values), statistics.stdev(values)
    return mean, std, t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values))


def test_sweep_numbers_order_files_and_png(sweep, tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main([str(sweep), "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    jobs = _jobs(sweep)
    assert sorted(jobs) == ["0", "0.1", "1.5"]
    assert all(r["status"] == "failed" and r["error"] for r in jobs["1.5"])

    rows = _csv(out_dir / "summary.csv")
    assert [r["metric"] for r in rows] == [HEADLINE] * 3
    by_group = {r["group"]: r for r in rows}
    assert set(by_group) == {"algo.epsilon=0", "algo.epsilon=0.1", "algo.epsilon=1.5"}
    for eps in EPSILONS:
        values = [r["metrics"][HEADLINE]["last"] for r in jobs[eps]]
        mean, std, half = _expected(values)
        row = by_group[f"algo.epsilon={eps}"]
        assert float(row["mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(row["std"]) == pytest.approx(std, rel=1e-9)
        assert float(row["ci95_low"]) == pytest.approx(mean - half, rel=1e-9)
        assert float(row["ci95_high"]) == pytest.approx(mean + half, rel=1e-9)
        assert (row["seeds"], row["failed"], row["running"]) == ("3", "0", "0")
    failed = by_group["algo.epsilon=1.5"]
    assert (failed["mean"], failed["seeds"], failed["failed"]) == ("", "0", "3")

    # The better mean first (average reward: higher wins), the failed group last.
    means = {eps: statistics.fmean(r["metrics"][HEADLINE]["last"] for r in jobs[eps])
             for eps in EPSILONS}
    winner = max(means, key=means.get)
    assert [r["group"] for r in rows] == [f"algo.epsilon={winner}",
                                          f"algo.epsilon={min(means, key=means.get)}",
                                          "algo.epsilon=1.5"]
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert f"best: algo.epsilon={winner}" in printed

    md = (out_dir / "summary.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table) == 2 + 3 and all(ln.count("|") == 8 for ln in table)
    assert table[2].split("|")[1].strip() == f"algo.epsilon={winner}"
    assert f"best: algo.epsilon={winner}" in md and "## Failed runs" in md
    assert "must be in [0, 1]" in md
    assert not (sweep / "summary.csv").exists()  # --out was honoured

    png = out_dir / "curves_bandit_average_reward.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    from matplotlib.image import imread

    assert imread(png).shape[0] > 100

    last = printed.strip().splitlines()[-1]
    assert last.startswith("9 runs in 3 groups: 6 completed, 3 failed (")
    assert last.endswith("0 still running")
    for job in sweep.iterdir():
        if job.is_dir() and "algo.epsilon=1.5" in job.name:
            assert job.name in last


def test_two_metrics_and_tail_mean(sweep, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = main([str(sweep), "--metric", "bandit/optimal_action,bandit/average_reward",
                 "--metric", "bandit/optimal_action", "--stat", "tail_mean",
                 "--out", str(out_dir), "--no-plot"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.index("## bandit/optimal_action") < printed.index("## bandit/average_reward")
    rows = _csv(out_dir / "summary.csv")
    assert len(rows) == 6 and {r["stat"] for r in rows} == {"tail_mean"}
    jobs = _jobs(sweep)
    for row in rows:
        eps = row["group"].split("=")[1]
        if eps == "1.5":
            continue
        values = [r["metrics"][row["metric"]]["tail_mean"] for r in jobs[eps]]
        assert float(row["mean"]) == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert row["seeds"] == "3"
    assert not list(out_dir.glob("*.png"))  # --no-plot


def test_unknown_metric_is_one_line_error(sweep, capsys):
    assert main([str(sweep), "--metric", "charts/nope", "--no-plot"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "charts/nope" in err[0] and HEADLINE in err[0]


def test_sweep_in_progress(sweep, tmp_path, capsys):
    """A running job, one with only .hydra/ and one that failed before .hydra/ existed."""
    live = tmp_path / "live"
    shutil.copytree(sweep, live)
    jobs = sorted((p for p in live.iterdir() if p.is_dir()), key=lambda p: int(p.name[0]))
    running = read_results(jobs[0])
    running.update(status="running", **identity())  # this live process runs it
    (jobs[0] / "results.json").write_text(json.dumps(running))
    (jobs[1] / "results.json").unlink()  # started: Hydra wrote .hydra/, train() nothing yet
    for f in jobs[1].glob("events.out.tfevents.*"):
        f.unlink()
    shutil.rmtree(jobs[8] / ".hydra")  # a failed job with results.json only
    assert main([str(live)]) == 0
    printed = capsys.readouterr().out
    rows = {r["group"]: r for r in _csv(live / "summary.csv")}
    assert sum(int(r["running"]) for r in rows.values()) == 2
    assert sum(int(r["seeds"]) for r in rows.values()) == 4
    assert sum(int(r["failed"]) for r in rows.values()) == 3
    assert rows["algo=epsilon_greedy env=bandit_testbed"]["failed"] == "1"
    assert rows["algo.epsilon=1.5"]["failed"] == "2"
    last = printed.strip().splitlines()[-1]
    # The job without .hydra/ cannot be told apart from other configs: its own group.
    assert last.startswith("9 runs in 4 groups: 4 completed, 3 failed (")
    assert last.endswith("), 2 still running") and jobs[8].name in last
    assert (live / "curves_bandit_average_reward.png").read_bytes()[:8] == PNG_MAGIC


def test_directory_of_single_runs(tmp_path, small, capsys):
    outputs = tmp_path / "outputs"
    for algo, seed, name in (("ucb", 0, "2026-01-01_00-00-00"),
                             ("ucb", 1, "2026-01-01_00-00-01"),
                             ("epsilon_greedy", 0, "2026-01-01_00-00-02")):
        run_train(outputs / algo / "bandit_testbed", [f"algo={algo}", f"seed={seed}", *small],
                  name=name)
    assert main([str(outputs), "--stat", "best"]) == 0
    printed = capsys.readouterr().out
    rows = {r["group"]: r for r in _csv(outputs / "summary.csv")}
    assert set(rows) == {"algo=ucb", "algo=epsilon_greedy"}
    assert rows["algo=ucb"]["key"] == "algo=ucb env=bandit_testbed"
    ucb = [read_results(p)["metrics"][HEADLINE]["best"]
           for p in (outputs / "ucb" / "bandit_testbed").iterdir()]
    assert float(rows["algo=ucb"]["mean"]) == pytest.approx(statistics.fmean(ucb))
    assert float(rows["algo=ucb"]["std"]) == pytest.approx(statistics.stdev(ucb))
    single = rows["algo=epsilon_greedy"]
    assert (single["seeds"], single["std"], single["ci95_low"]) == ("1", "0.0", "")
    assert printed.strip().splitlines()[-1] == \
        "3 runs in 2 groups: 3 completed, 0 failed, 0 still running"
    assert (outputs / "curves_bandit_average_reward.png").is_file()


def test_without_matplotlib_tables_still_written(sweep, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main([str(sweep), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert sum("matplotlib is not installed" in ln for ln in printed.splitlines()) == 1
    assert (tmp_path / "summary.csv").is_file() and not list(tmp_path.glob("*.png"))


def test_missing_or_empty_dir_exit_2(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    for target in (tmp_path / "empty", tmp_path / "nowhere"):
        out = subprocess.run([sys.executable, "-m", "rlrun.report", str(target)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rlrun-report: error: ")
        assert str(target) in lines[0]


# ---- the pieces, on synthetic inputs ---------------------------------------------------------
def _run(key: tuple[str, ...], value: float | None, status: str = "completed",
         tag: str = "losses/td") -> Run:
    metrics = {} if value is None else {tag: {"last": value, "tail_mean": value, "best": value}}
    return Run(path=Path("."), rel=".", status=status, results={"metrics": metrics}, key=key)


def test_lower_is_better_metric_puts_smallest_mean_first():
    groups = [Group(("a=1",), [_run(("a=1",), 3.0), _run(("a=1",), 5.0)], name="a=1"),
              Group(("a=2",), [_run(("a=2",), 1.0), _run(("a=2",), None, "failed")],
                    name="a=2"),
              Group(("a=3",), [_run(("a=3",), None, "pending")], name="a=3")]
    rows = make_rows(groups, "losses/td", "last")
    assert [r.group.name for r in rows] == ["a=2", "a=1", "a=3"]
    assert [r.n for r in rows] == [1, 2, 0]
    assert rows[1].mean == 4.0 and rows[1].std == pytest.approx(math.sqrt(2))
    assert (len(rows[0].group.failed), len(rows[2].group.running)) == (1, 1)


def test_group_key_drops_seed_hydra_logger_resume():
    key = report.group_key(["algo.epsilon=0.1", "seed=3", "hydra.verbose=true",
                            "logger.progress=none", "resume=/x", "+label=a"], "ucb", "bt")
    assert key == ("algo.epsilon=0.1", "algo=ucb", "env=bt", "label=a")
    assert report.group_key(["algo=sarsa"], "sarsa", "x") == ("algo=sarsa", "env=x")


def test_t_table_matches_scipy(monkeypatch):
    from scipy.stats import t

    for df in range(1, 31):
        assert report._T975[df - 1] == pytest.approx(t.ppf(0.975, df), abs=6e-4)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # the fallback without scipy
    assert t_critical(4) == 2.776 and t_critical(200) == 1.96


def test_mean_curve_interpolates_onto_first_runs_steps():
    x, mean, low, high = mean_curve([([0, 2, 4], [0.0, 2.0, 4.0]),
                                     ([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0])])
    assert list(x) == [0, 2, 4]
    assert list(mean[:2]) == [0.5, 2.5] and mean[2] == 4.0  # step 4: only the first run
    assert low[0] < 0.5 < high[0] and math.isnan(low[2])
