"""`rlrun-bench` (docs/benchmark.md): the verdict rule at the band's edges, the references
file, the error battery, the outputs from synthetic runs; the slow tier runs the whole suite
for a few hundred steps a pair, and every command docs/benchmark.md shows."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import struct
from pathlib import Path

import pytest

from rlrun.bench import cli, references, runner, suite
from rlrun.bench.verdict import FAIL, PASS, SMOKE, UNSURE, judge, judge_exact
from rlrun.report.stats import summarise

ROOT = Path(__file__).resolve().parents[1]
BAND = (475.0, 500.0)


# ---- the verdict -------------------------------------------------------------------------
@pytest.mark.parametrize("values, verdict", [
    ([475.0] * 5, PASS),                         # the whole CI on the edge: PASS (inclusive)
    ([500.0, 490.0, 480.0, 476.0, 500.0], PASS),
    ([474.9] * 5, FAIL),                          # just below, every resample below
    ([100.0, 200.0, 300.0, 150.0, 474.0], FAIL),
    ([500.0, 500.0, 454.0, 152.0, 500.0], UNSURE),  # today's DQN seeds: the CI straddles 475
    ([400.0, 450.0, 480.0, 500.0, 500.0], UNSURE),
    ([500.0, 500.0], UNSURE),                     # two seeds: no CI
])
def test_verdict_at_the_band_edges(values, verdict):
    j = judge(values, BAND)
    assert j.verdict == verdict, j.why
    s = summarise(values)  # the report's IQM and CI, not a copy
    assert (j.summary.iqm, j.summary.iqm_ci) == (s.iqm, s.iqm_ci)


def test_verdict_ci_edges_decide_not_the_iqm():
    values = [460.0, 470.0, 476.0, 480.0, 490.0]
    j = judge(values, BAND)
    lo, hi = j.summary.iqm_ci
    assert lo < 475.0 <= hi and j.verdict == UNSURE
    assert judge(values, (lo, 500.0)).verdict == PASS  # the CI's low end exactly on the edge
    assert judge(values, (hi + 1e-9, 500.0)).verdict == FAIL


def test_failed_runs_and_smoke():
    assert judge([500.0] * 4, BAND, failed=1).verdict == FAIL
    assert judge([10.0] * 5, BAND, smoke=True).verdict == SMOKE
    checks = [{"what": "x", "value": 1.0, "range": [0.9, 1.15]}]
    assert judge_exact(checks).verdict == PASS
    assert judge_exact([{**checks[0], "value": 1.16}]).verdict == FAIL
    assert judge_exact([{**checks[0], "value": None}]).verdict == FAIL
    assert judge_exact([{**checks[0], "value": 1.16}], smoke=True).verdict == SMOKE


# ---- the references ----------------------------------------------------------------------
def test_every_pair_has_its_reference_and_budget():
    rl, exact = references.load()
    assert set(rl) | set(exact) == set(suite.NAMES)
    for p in suite.SUITE:
        if p.kind == "rl":
            ref = rl[p.name]
            assert f"algo.total_steps={ref.budget}" in p.overrides  # the reference's budget
            assert ref.episodes > 0 and ref.band[0] <= ref.value <= ref.band[1]
            assert "0088472b8cb622732bdbc4aa3d0d0abde86c67ed" in ref.source
    # rl-zoo's numbers at the precision benchmark.md prints them
    assert (rl["sac/Pendulum-v1"].value, rl["td3/Pendulum-v1"].value,
            rl["ddpg/Pendulum-v1"].value) == (-156.995, -151.855, -152.099)
    assert (rl["ppo/Acrobot-v1"].value, rl["ppo/LunarLander-v3"].value) == (-73.506, 242.119)
    assert len(exact["sutton_barto/fig2_2"].checks) == 4


def test_references_file_is_read_as_data_only(tmp_path):
    bad = tmp_path / "refs.yaml"
    bad.write_text("pairs: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(references.ConfigError, match="not plain YAML data"):
        references.load(bad)
    assert not (tmp_path / "pwned").exists()
    bad.write_text("pairs: {x: {value: 1}}\nexact: {}\n")
    with pytest.raises(references.ConfigError, match="malformed reference entry"):
        references.load(bad)


# ---- bad input: one line, exit 2 ---------------------------------------------------------
def bench(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def no_box2d(monkeypatch):
    real = suite.installed
    monkeypatch.setattr(suite, "installed", lambda p: p.extra != "box2d" and real(p))


@pytest.mark.parametrize("argv, named", [
    (["--only", "ppo/CartPol-v1"], "did you mean ppo/CartPole-v1 or"),
    (["--only", "ppo/Nope-v0"], "pairs: ppo/CartPole-v1, a2c/CartPole-v1"),
    (["--seeds", "0"], "--seeds 0"),
    (["--seeds", "-3"], "--seeds -3"),
    (["--seeds", "x"], "'x'"),
    (["--vs", "cleanrl"], "'cleanrl'"),
    (["--vs", "sb3", "hydra/launcher=joblib"], "drop hydra/launcher=joblib"),
    (["--only", "ppo/LunarLander-v3"], "the box2d extra"),
    (["--vs", "sb3"], "pip install 'rlrun[bench]'"),
    (["--only", "ppo/CartPole-v1", "seed=3"], "seed=3: rlrun-bench sets seed itself; use --seeds"),
    (["hydra.sweep.dir=x"], "use --out DIR"),
])
def test_bad_input_is_one_line_exit_2(argv, named, capsys, monkeypatch, tmp_path):
    no_box2d(monkeypatch)
    if argv == ["--vs", "sb3"]:
        real = importlib.util.find_spec
        monkeypatch.setattr(cli.importlib.util, "find_spec",
                            lambda n, *a: None if n == "stable_baselines3" else real(n, *a))
    code, out, err = bench([*argv, "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("rlrun-bench: error: ") and named in err, err
    assert not (tmp_path / "b").exists()  # nothing ran


def test_an_out_dir_with_earlier_runs_is_refused(capsys, tmp_path):
    (tmp_path / "runs" / "dqn_CartPole-v1" / "0_seed=0").mkdir(parents=True)
    code, out, err = bench(["--only", "dqn/CartPole-v1", "--out", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "holds the runs of an earlier" in err
    assert str(tmp_path / "runs" / "dqn_CartPole-v1") in err


@pytest.mark.slow  # Hydra composes twice (the did-you-mean): seconds on a loaded machine
def test_a_bad_override_is_rlruns_one_line(capsys, tmp_path):
    code, out, err = bench(["--only", "sutton_barto/fig6_5", "algo.nope=1", "--out",
                            str(tmp_path / "b")], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("rlrun: error: algo.nope"), err
    assert not (tmp_path / "b" / "bench.md").exists()


def test_without_box2d_the_suite_skips_lunarlander_with_a_note(monkeypatch):
    no_box2d(monkeypatch)
    pairs, notes = suite.select(None)
    assert "ppo/LunarLander-v3" not in [p.name for p in pairs] and len(pairs) == 10
    assert notes == ["skipped ppo/LunarLander-v3 needs the box2d extra (Box2D is not"
                     " installed): pip install 'rlrun[box2d]'"]


# ---- outputs from synthetic runs ---------------------------------------------------------
def synthetic(pair, out, seeds, overrides, smoke, vs_sb3, log=print):
    """What runner.run_pair returns, without training: PASS for PPO, FAIL for DQN, UNSURE
    for A2C, the book's values for fig2_2."""
    finals = {"ppo/CartPole-v1": [500.0] * seeds, "dqn/CartPole-v1": [20.0, 30.0, 25.0],
              "a2c/CartPole-v1": [500.0, 500.0, 454.0, 152.0, 500.0]}
    if pair.kind == "exact":
        runs = [runner.Run(f"{out}/{e}", 0, "completed", 1000, 2.0, None, None,
                           {"bandit/average_reward": {"tail_mean": r},
                            "bandit/optimal_action": {"tail_mean": o}},
                           {"algo.epsilon": e}) for e, r, o in ((0.0, 1.005, 0.34),
                                                                (0.01, 1.29, 0.575),
                                                                (0.1, 1.355, 0.782))]
        return runner.PairResult(pair, runs, 3.0, 0)
    runs = [runner.Run(f"{out}/{i}", i, "completed", 1000, 4.0, v,
                       ([0.0, 500.0, 1000.0], [10.0, v / 2, v]), eval_s=1.0 if vs_sb3 else 0.0,
                       sb3_steps_per_s=100.0 if vs_sb3 else None)
            for i, v in enumerate(finals[pair.name])]
    return runner.PairResult(pair, runs, 12.0, 0)


def test_outputs_from_synthetic_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_pair", synthetic)
    code, out, err = bench(["--only", "ppo/CartPole-v1", "dqn/CartPole-v1", "a2c/CartPole-v1",
                            "sutton_barto/fig2_2", "--seeds", "5", "--out", str(tmp_path)],
                           capsys)
    assert code == 1  # dqn FAILs
    md = (tmp_path / "bench.md").read_text()
    rows = {r.split("|")[1].strip(): r for r in md.splitlines() if r.startswith("| ")}
    assert "**PASS**" in rows["ppo/CartPole-v1"] and "| 500.0 | [500.0, 500.0] | 5 |" in rows[
        "ppo/CartPole-v1"]
    assert "**FAIL**" in rows["dqn/CartPole-v1"] and "**UNSURE**" in rows["a2c/CartPole-v1"]
    assert "**PASS**" in rows["sutton_barto/fig2_2"]
    assert "rl-zoo 0088472" in rows["ppo/CartPole-v1"] and "250" in rows["ppo/CartPole-v1"]
    assert "ratio" not in md and "commit: " in md and "![" in md
    data = json.loads((tmp_path / "bench.json").read_text())
    a2c = next(p for p in data["pairs"] if p["pair"] == "a2c/CartPole-v1")
    s = summarise([500.0, 500.0, 454.0, 152.0, 500.0])
    assert a2c["iqm"] == s.iqm and a2c["ci95"] == list(s.iqm_ci) and a2c["n"] == 5
    assert data["machine"]["cores"] and data["seeds"] == 5 and "--seeds 5" in data["command"]
    assert out.startswith("| pair |")  # the table is printed too
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] > 500


def test_failed_jobs_fail_the_pair_even_in_a_smoke_run(tmp_path, monkeypatch, capsys):
    """A sweep whose jobs failed (here: left no run dir, exit code 1) is a FAIL and exit
    code 1, smoke run or not: a CI's `rlrun-bench --smoke` must not pass on broken runs."""
    monkeypatch.setattr(runner, "rlrun_sweep", lambda argv: 1)
    code, out, err = bench(["--smoke", "--only", "dqn/CartPole-v1", "sutton_barto/fig6_4",
                            "--seeds", "3", "--out", str(tmp_path)], capsys)
    assert code == 1, err
    rows = {r.split("|")[1].strip(): r for r in out.splitlines() if r.startswith("| ")}
    assert "**FAIL**" in rows["dqn/CartPole-v1"] and "3 of 3 runs did not complete" in err
    assert "**FAIL**" in rows["sutton_barto/fig6_4"]


def test_a_relative_out_reaches_the_launchers_workers_as_an_absolute_path(tmp_path,
                                                                         monkeypatch):
    """joblib's workers keep the cwd they started in across sweeps of one process."""
    seen = []
    monkeypatch.setattr(runner, "rlrun_sweep", lambda argv: seen.append(argv) or 0)
    monkeypatch.chdir(tmp_path)
    (pair,) = suite.select(["ppo/CartPole-v1"])[0]
    runner.run_pair(pair, Path("bench"), 1, [], smoke=True, vs_sb3=False)
    assert f"hydra.sweep.dir={tmp_path}/bench/runs/ppo_CartPole-v1" in seen[0]


def test_vs_sb3_adds_the_ratio(tmp_path, monkeypatch, capsys):
    if importlib.util.find_spec("stable_baselines3") is None:  # not imported: seconds
        pytest.skip("the bench extra (stable-baselines3) is not installed")
    monkeypatch.setattr(runner, "run_pair", synthetic)
    code, _, _ = bench(["--only", "ppo/CartPole-v1", "--vs", "sb3", "--out", str(tmp_path)],
                       capsys)
    assert code == 0
    md = (tmp_path / "bench.md").read_text()
    assert "| SB3 steps/s | ratio to SB3 |" in md
    # rlrun: 1000 steps in 4 s of which 1 s evaluating -> 333 steps/s; SB3 100
    assert "| 333 | 100 | 3.33x |" in md
    assert json.loads((tmp_path / "bench.json").read_text())["pairs"][0]["ratio_to_sb3"] == \
        pytest.approx(10 / 3)


# ---- the slow tier: the real suite, a few hundred steps a pair ---------------------------
@pytest.mark.slow
def test_smoke_suite_runs_every_pair(tmp_path, capsys):
    code, out, err = bench(["--smoke", "--seeds", "3", "--out", str(tmp_path)], capsys)
    assert code == 0, err[-3000:]
    md = (tmp_path / "bench.md").read_text()
    rows = [r for r in md.splitlines() if r.startswith("| ") and "**" in r]
    ran = [p.name for p in suite.SUITE if suite.installed(p)]
    assert [r.split("|")[1].strip() for r in rows] == ran
    assert all("**SMOKE**" in r for r in rows)
    if "ppo/LunarLander-v3" not in ran:
        assert "skipped ppo/LunarLander-v3 needs the box2d extra" in md
    data = json.loads((tmp_path / "bench.json").read_text())
    for p in data["pairs"]:
        assert p["wall_s"] > 0
        if p["kind"] == "rl":
            assert p["steps_per_s"] > 0
            assert p["n"] == 3 and len(p["ci95"]) == 2
            assert all(r["status"] == "completed" for r in p["runs"])
        else:
            assert all(c["value"] is not None for c in p["checks"])
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def doc_commands(path: Path) -> list[str]:
    """Every `rlrun-bench ...` line of the page's code blocks and inline code."""
    found, in_block = [], False
    for line in path.read_text().splitlines():
        if line.strip().startswith("```"):
            in_block = not in_block
        elif in_block and line.strip().startswith("rlrun-bench"):
            found.append(line.strip())
        elif not in_block:
            found += re.findall(r"`(rlrun-bench(?: [^`]*)?)`", line)
    return found


@pytest.mark.slow
def test_docs_commands_run(tmp_path, capsys, monkeypatch):
    """docs/benchmark.md's and the README's commands, each as --smoke on one quick pair
    (unless it names its own), 3 seeds: the options, overrides and outputs they show."""
    commands = doc_commands(ROOT / "docs" / "benchmark.md") + doc_commands(ROOT / "README.md")
    assert len(commands) >= 5 and "rlrun-bench" in commands
    for i, command in enumerate(dict.fromkeys(commands)):
        (tmp_path / str(i)).mkdir()
        monkeypatch.chdir(tmp_path / str(i))  # each its own bench/
        args = shlex.split(command, comments=True)[1:]
        if "--vs" in args and importlib.util.find_spec("stable_baselines3") is None:
            continue  # the bench extra: installed by the test extra
        if "--only" not in args:
            args = ["--only", "dqn/CartPole-v1", *args]
        args = [a for a in args if a != "--smoke"]
        seeds = args.index("--seeds") if "--seeds" in args else None
        if seeds is not None:
            del args[seeds:seeds + 2]
        code, out, err = bench(["--smoke", "--seeds", "3", *args], capsys)
        needs = [p for p in suite.SUITE if p.name in args and not suite.installed(p)]
        if needs:  # e.g. LunarLander without the box2d extra: the documented one-line error
            assert code == 2 and err.strip().endswith(suite.missing_extra(needs[0])), command
            continue
        assert code == 0, (command, err[-2000:])
        if "--list" in args:
            assert out.split() == list(suite.NAMES)
            continue
        where = Path(args[args.index("--out") + 1]) if "--out" in args else Path("bench")
        assert "| pair |" in (where / "bench.md").read_text(), command


def test_pairs_run_as_rlrun_sweeps_with_the_overrides(tmp_path, monkeypatch):
    """Each pair is one `rlrun -m` sweep over the seeds; Hydra overrides (a launcher) pass
    through, after the pair's own, so they win; --only's `=` items are overrides."""
    seen = []
    monkeypatch.setattr(runner, "rlrun_sweep", lambda argv: seen.append(argv) or 0)
    args = cli.parse(["--only", "ppo/CartPole-v1", "hydra/launcher=joblib", "--seeds", "3",
                      "threads=1"])
    assert args.only == ["ppo/CartPole-v1"]
    assert args.overrides == ["hydra/launcher=joblib", "threads=1"]
    (pair,) = suite.select(args.only)[0]
    runner.run_pair(pair, tmp_path, 3, args.overrides, smoke=False, vs_sb3=False)
    assert seen == [["-m", "algo=ppo", "env=CartPole-v1", "algo.total_steps=100000",
                     "seed=0,1,2", f"hydra.sweep.dir={tmp_path}/runs/ppo_CartPole-v1",
                     "logger.progress=none", "hydra/launcher=joblib", "threads=1"]]
    fig = next(p for p in suite.SUITE if p.name == "sutton_barto/fig6_4")
    runner.run_pair(fig, tmp_path, 3, [], smoke=True, vs_sb3=False)
    assert seen[-1] == ["-m", "experiment=sutton_barto/fig6_4",
                        f"hydra.sweep.dir={tmp_path}/runs/sutton_barto_fig6_4",
                        "logger.progress=none", "env.num_runs=5", "algo.episodes=20"]


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None,
                    reason="the sweep extra (joblib launcher) is not installed")
def test_seeds_run_in_parallel_unless_a_launcher_or_threads_is_given(monkeypatch):
    """By default a pair's seeds share the cores (joblib, one thread each); the user's
    launcher or threads win, and --vs sb3 (which times in this process) adds nothing."""
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    assert cli.parse([]).overrides == ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                       "threads=1"]
    assert cli.parse(["--seeds", "1"]).overrides[1] == "hydra.launcher.n_jobs=1"
    assert cli.parse(["threads=2"]).overrides == ["hydra/launcher=joblib",
                                                  "hydra.launcher.n_jobs=2", "threads=2"]
    assert cli.parse(["hydra/launcher=basic"]).overrides == ["hydra/launcher=basic"]
    if importlib.util.find_spec("stable_baselines3") is not None:
        assert cli.parse(["--vs", "sb3"]).overrides == []
