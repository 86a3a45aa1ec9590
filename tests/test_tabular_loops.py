"""The chapter 3-7 loops through `train` (rlrun.algos.dp, .mc, .n_step_td) and the chapter 6
loops' exact references: each figure preset holds the book's numbers (or the reference
scripts', where the book prints only a plot; tests/test_dp.py and tests/test_mc.py say which
script printed each), resumes exactly, and reads and writes values.json.

Figures are switched off (algo.figures=false) except where a test looks at them: drawing is
most of a short run's time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular import GridworldEnv, model_from_env
from rlrun.rl import dp
from rlrun.rl.tabular_report import ExactReference
from rlrun.testing import assert_same_state, interrupt, resume, run

from .test_dp import (
    FIG_3_2,
    FIG_3_5,
    FIG_4_1,
    FIG_4_1_INF,
    FIG_4_1_POLICY,
    REF_FIXED_POLICY,
    REF_GAMBLER_POLICY,
    REF_GAMBLER_SWEEPS,
    book_round,
)
from .test_mc import REF_FIG_7_2

QUIET = ["algo.figures=false"]


def values_of(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "values.json").read_text())


def metric(res: dict, tag: str) -> float:
    return res["metrics"][tag]["last"]


def series(run_dir: Path, tag: str) -> dict[int, float]:
    """{step: value} of one tag, from the run's scalars.parquet."""
    import duckdb

    rows = duckdb.sql(f"SELECT step, value FROM '{Path(run_dir) / 'scalars.parquet'}'"
                      f" WHERE tag = '{tag}' ORDER BY step").fetchall()
    return {int(step): float(value) for step, value in rows}


# ---- chapter 3 -----------------------------------------------------------------------------
def test_figure_3_2_preset(tmp_path):
    res = run(tmp_path, ["experiment=sutton_barto/fig3_2", *QUIET])
    out = values_of(tmp_path / "run")
    book_round(np.array(out["values"]).reshape(5, 5), FIG_3_2)
    assert out["iterations"] == 1 and out["gamma"] == 0.9 and out["converged"]
    assert metric(res, "dp/delta") < 1e-12  # the exact solve's Bellman residual
    # a uniform start: the value of the start distribution is the mean of v
    assert metric(res, "eval/start_value") == pytest.approx(np.mean(out["values"]))
    assert out["state_labels"][0] == "(0,0)" and out["action_labels"][0] == "up"


def test_figure_3_5_preset(tmp_path):
    res = run(tmp_path, ["experiment=sutton_barto/fig3_5", *QUIET])
    out = values_of(tmp_path / "run")
    book_round(np.array(out["values"]).reshape(5, 5), FIG_3_5)
    # pi*: every action from A; up and right tie in the bottom-left corner
    assert out["policy"][GridworldEnv.A] == [0, 1, 2, 3] and out["policy"][20] == [0, 1]
    assert out["actions"][20] == 0  # the lowest-numbered greedy action
    assert metric(res, "dp/delta") < 1e-10 and res["status"] == "completed"
    q = np.array(out["q"], dtype=float)
    np.testing.assert_allclose(q.max(axis=1), out["values"], atol=1e-8)


# ---- chapter 4 -----------------------------------------------------------------------------
def test_figure_4_1_preset(tmp_path):
    run(tmp_path, ["experiment=sutton_barto/fig4_1", *QUIET])
    out = values_of(tmp_path / "run")
    assert sorted(out["snapshots"], key=int) == ["0", "1", "2", "3", "10"]
    assert out["snapshots"]["0"] == [0.0] * 16
    for k, expected in FIG_4_1.items():
        book_round(np.array(out["snapshots"][str(k)]).reshape(4, 4), np.array(expected))
    np.testing.assert_allclose(np.array(out["values"]).reshape(4, 4), FIG_4_1_INF, atol=1e-7)
    for s, arrows in FIG_4_1_POLICY.items():
        assert out["policy"][s] == arrows, s
    assert out["policy"][0] == [] and out["policy"][15] == []  # terminal corners


@pytest.mark.parametrize("poisson", [True, False])
def test_figure_4_2_preset(tmp_path, poisson):
    """Both return models: pi_0 .. pi_4 (exact evaluation), as the book's figure."""
    res = run(tmp_path, ["experiment=sutton_barto/fig4_2",
                         f"env.poisson_returns={str(poisson).lower()}", *QUIET])
    out = values_of(tmp_path / "run")
    policies = np.array(out["policies"])
    assert policies.shape == (5, 441) and out["iterations"] == 5 and out["converged"]
    assert (policies[0] == 5).all()  # pi_0 moves no car
    final = np.array(out["actions"]).reshape(21, 21) - 5
    assert final.max() == 5 and final.min() == -4 and final[10, 10] == 0
    assert (np.array(out["policies"][-1]) == out["actions"]).all()  # pi_4 is stable
    v = np.array(out["values"])
    assert 420 < v.min() < 435 and 630 < v.max() < 650
    assert metric(res, "dp/policy_changes") == 0


def test_figure_4_2_reference_replica(tmp_path):
    """The reference's own algorithm: fixed returns, truncation at 10, in-place evaluation
    to 1e-4 from the previous values; its sweeps, changes and final policy
    (chapter04/car_rental.py, instrumented)."""
    run(tmp_path, ["experiment=sutton_barto/fig4_2", "env.poisson_returns=false",
                   "env.max_poisson=10", "algo.evaluation=sweep", "algo.theta=1e-4", *QUIET])
    sweeps = list(series(tmp_path / "run", "dp/eval_sweeps").values())
    changes = list(series(tmp_path / "run", "dp/policy_changes").values())
    assert sweeps == [86, 58, 52, 17, 11] and changes == [332, 286, 83, 19, 0]
    expected = np.array([row.split() for row in REF_FIXED_POLICY.split("\n") if row], int)
    final = np.array(values_of(tmp_path / "run")["actions"][:441]).reshape(21, 21) - 5
    np.testing.assert_array_equal(final[::-1], expected)


def test_figure_4_3_preset(tmp_path):
    run(tmp_path, ["experiment=sutton_barto/fig4_3", *QUIET])
    out = values_of(tmp_path / "run")
    assert out["iterations"] == 40 and out["actions"][1:100] == REF_GAMBLER_POLICY
    sweep1 = np.array(out["snapshots"]["1"])[1:100]  # one bet from 50 on reaches the goal
    np.testing.assert_allclose(sweep1, np.where(np.arange(1, 100) >= 50, 0.4, 0.0))
    np.testing.assert_allclose(out["snapshots"]["32"], out["values"], atol=1e-8)
    # the greedy stakes tie: at $13 the smallest (12, drawn) and bold play (13) are optimal
    assert {12, 13} <= set(out["policy"][13]) and out["actions"][13] == 12


def test_figure_4_3_reference_replica(tmp_path):
    """gamblers_problem.py's value iteration, in place to 1e-9: its sweeps' values."""
    run(tmp_path, ["experiment=sutton_barto/fig4_3", "algo.in_place=true", "algo.theta=1e-9",
                   "algo.snapshots=[1,2,3,17]", *QUIET])
    out = values_of(tmp_path / "run")
    assert out["iterations"] == 17 and out["actions"][1:100] == REF_GAMBLER_POLICY
    capitals = [1, 10, 25, 40, 50, 60, 75, 90, 99]
    for k, expected in REF_GAMBLER_SWEEPS.items():
        np.testing.assert_allclose(np.array(out["snapshots"][str(k)])[capitals], expected,
                                   atol=1e-9)


def test_policy_iteration_and_value_iteration_agree_and_files_round_trip(tmp_path):
    """values.json of one run is another's policy: greedy on v*'s q, or the greedy actions
    listed, evaluate to v* exactly."""
    run(tmp_path, ["algo=value_iteration", "algo.theta=1e-12", *QUIET], name="vi")
    run(tmp_path, ["algo=policy_iteration", "env=gridworld_3_5", *QUIET], name="pi")
    vi, pi = values_of(tmp_path / "vi"), values_of(tmp_path / "pi")
    np.testing.assert_allclose(vi["values"], pi["values"], atol=1e-9)
    assert pi["policies"][0] is None  # pi_0: the uniform random policy
    for kind in ("greedy", "file"):
        run(tmp_path, ["algo=policy_evaluation", f"algo.policy={kind}",
                       f"algo.policy_file={tmp_path / 'vi' / 'values.json'}", *QUIET], name=kind)
        np.testing.assert_allclose(values_of(tmp_path / kind)["values"], vi["values"],
                                   atol=1e-8)
    np.save(tmp_path / "actions.npy", np.array(pi["actions"]))
    run(tmp_path, ["algo=policy_evaluation", "algo.policy=file",
                   f"algo.policy_file={tmp_path / 'actions.npy'}", *QUIET], name="npy")
    np.testing.assert_allclose(values_of(tmp_path / "npy")["values"], vi["values"], atol=1e-8)


def test_dp_on_gymnasium_tables(tmp_path):
    """Any task with a P table: FrozenLake's v* at the start (about 0.82 with gamma 0.99)
    and Taxi's, whose 96 states no episode reaches keep 0."""
    res = run(tmp_path, ["algo=value_iteration", "env=FrozenLake-v1", "algo.gamma=0.99",
                         "algo.theta=1e-10", *QUIET], name="lake")
    assert 0.5 < metric(res, "eval/start_value") < 0.6
    res = run(tmp_path, ["algo=policy_iteration", "env=Taxi-v4", "algo.gamma=1", *QUIET],
              name="taxi")
    assert 7.5 < metric(res, "eval/start_value") < 8.5


# ---- figures -------------------------------------------------------------------------------
def test_figures_are_written_and_logged(tmp_path):
    """PNGs in the run dir and the same pictures as TensorBoard images."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(tmp_path, ["experiment=sutton_barto/fig3_5", "algo.figures=true"])
    figs = tmp_path / "run" / "figures"
    assert {p.name for p in figs.iterdir()} == {"values.png", "mu.png"}
    acc = EventAccumulator(str(tmp_path / "run"), size_guidance={"images": 0})
    acc.Reload()
    assert {"dp/values", "dp/on_policy_distribution"} <= set(acc.Tags()["images"])
    png = (figs / "values.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_figures_true_without_matplotlib_is_refused(monkeypatch):
    from rlrun.preflight import preflight
    from rlrun.testing import compose

    monkeypatch.setattr("rlrun.schemas.dp.matplotlib_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"algo.figures=true needs matplotlib.*rlrun\[plot\]"):
        preflight(compose(["algo=value_iteration", "algo.figures=true"]))
    preflight(compose(["algo=value_iteration"]))  # null: drawn only where it can be


# ---- chapter 5 -----------------------------------------------------------------------------
def test_mc_prediction_converges_to_the_exact_values(tmp_path):
    res = run(tmp_path, ["algo=mc_prediction", "algo.episodes=40000", "algo.batch=8000",
                         "algo.snapshots=[4000]", *QUIET])
    out = values_of(tmp_path / "run")
    early = np.array(out["snapshots"]["4000"]) - out["true_values"]
    late = np.array(out["values"]) - out["true_values"]
    assert np.sqrt((late[:200] ** 2).mean()) < 0.7 * np.sqrt((early[:200] ** 2).mean())
    assert metric(res, "mc/rms_error") < 0.12
    assert sum(out["visits"]) > 40000  # every episode visits at least one decision state


def test_mc_control_es_improves_towards_the_exact_optimum(tmp_path):
    res = run(tmp_path, ["algo=mc_control_es", "algo.episodes=40000", *QUIET])
    assert metric(res, "eval/policy_agreement") > 0.85
    out = values_of(tmp_path / "run")
    assert len(out["not_optimal"]) == round(210 * (1 - metric(res, "eval/policy_agreement")))
    assert -0.10 < metric(res, "eval/start_value") < -0.041  # v* of the deal: about -0.043


def test_mc_off_policy_weighted_beats_ordinary_early(tmp_path):
    res = run(tmp_path, ["experiment=sutton_barto/fig5_3", "env.num_runs=30",
                         "algo.episodes=1000", *QUIET])
    o = series(tmp_path / "run", "mc/ordinary_mse")
    w = series(tmp_path / "run", "mc/weighted_mse")
    assert list(o)[:3] == [1, 2, 3] and list(o)[-1] == 1000
    early = [k for k in o if k <= 10]
    assert np.mean([w[k] for k in early]) < np.mean([o[k] for k in early])
    assert metric(res, "mc/weighted_mse") < 0.02


def test_mc_on_a_model_task(tmp_path):
    """Tasks other than blackjack sample their model: the random walk's values."""
    run(tmp_path, ["algo=mc_prediction", "env=random_walk", "env.num_runs=1",
                   "algo.episodes=3000", *QUIET])
    out = values_of(tmp_path / "run")
    np.testing.assert_allclose(out["values"][1:6], np.arange(1, 6) / 6, atol=0.05)
    res = run(tmp_path, ["algo=mc_control_es", "env=gamblers_problem", "env.goal=10",
                         "algo.episodes=20000", *QUIET], name="es")
    assert metric(res, "eval/policy_agreement") > 0.8


@pytest.mark.slow
def test_figure_5_1_preset(tmp_path):
    res = run(tmp_path, ["experiment=sutton_barto/fig5_1", "algo.figures=true"])
    out = values_of(tmp_path / "run")
    err_10k = np.array(out["snapshots"]["10000"])[:200] - np.array(out["true_values"])[:200]
    assert metric(res, "mc/rms_error") < 0.035 < np.sqrt((err_10k**2).mean())
    assert (tmp_path / "run" / "figures" / "blackjack_values.png").is_file()


@pytest.mark.slow
def test_figure_5_2_preset(tmp_path):
    res = run(tmp_path, ["experiment=sutton_barto/fig5_2", "algo.figures=true"])
    assert metric(res, "eval/policy_agreement") >= 0.97
    assert metric(res, "mc/value_rms") < 0.03
    assert -0.047 < metric(res, "eval/start_value") < -0.041


# chapter05/blackjack.py's figure_5_3 (np.random.seed(0), 100 runs x 10,000 episodes, true
# value -0.27726), instrumented to print its mean squared errors (ordinary, weighted) after
# 100, 1,000 and 10,000 episodes
REF_FIG_5_3 = {100: (0.1086, 0.0873), 1000: (0.0070, 0.0067), 10000: (0.0011, 0.0011)}


@pytest.mark.slow
def test_figure_5_3_preset(tmp_path):
    """The book's setting; errors within a factor 2 of the reference script's (100 runs of
    a heavy-tailed estimator: its error after one episode ranges from 5 to 50 by seed)."""
    run(tmp_path, ["experiment=sutton_barto/fig5_3", "algo.figures=true"])
    for name, i in (("ordinary", 0), ("weighted", 1)):
        mse = series(tmp_path / "run", f"mc/{name}_mse")
        assert {1, 10, 100, 1000, 10000} <= set(mse)  # 10 points a decade
        for k, ref in REF_FIG_5_3.items():
            assert ref[i] / 2 < mse[k] < 2 * ref[i], (name, k)


# ---- chapter 7 -----------------------------------------------------------------------------
def test_figure_7_2_preset(tmp_path):
    """All 110 settings in one run: the reference script's surface within the noise of 100
    runs (at most 0.027 apart measured), n = 4 with alpha about 0.4 best."""
    res = run(tmp_path, ["experiment=sutton_barto/fig7_2", *QUIET])
    study = json.loads((tmp_path / "run" / "study.json").read_text())
    errors = np.array(study["rms"])
    assert errors.shape == (10, 11) and study["runs"] == 100 and study["episodes"] == 10
    np.testing.assert_allclose(errors[:, 0], np.sqrt(0.3))  # alpha = 0: v stays 0
    assert np.abs(errors - REF_FIG_7_2).max() < 0.04
    assert np.abs(errors - REF_FIG_7_2).mean() < 0.01
    assert metric(res, "td/study_best_n") in (4, 8)
    assert 0.24 < metric(res, "td/study_best_rms") < 0.29


def test_n_step_td_one_setting(tmp_path):
    res = run(tmp_path, ["algo=n_step_td", "algo.n=1", "algo.step_size=0.1",
                         "algo.episodes=100", *QUIET])
    assert metric(res, "td/rms_error") < 0.25
    assert res["metrics"]["td/rms_error"]["count"] == 101  # before learning, then each episode


# ---- resume ---------------------------------------------------------------------------------
RESUMABLE = [
    ("value_iteration", ["algo=value_iteration", "algo.snapshots=[3,30]"], 20),
    ("policy_evaluation", ["algo=policy_evaluation", "algo.method=sweep",
                           "algo.in_place=true"], 20),
    ("policy_iteration", ["algo=policy_iteration", "env=small_gridworld_4_1",
                          "algo.evaluation=sweep"], 2),
    ("mc_prediction", ["algo=mc_prediction", "algo.episodes=6000", "algo.batch=1000",
                       "algo.snapshots=[2500]"], 3000),
    ("mc_control_es", ["algo=mc_control_es", "algo.episodes=3000", "env.num_runs=2"], 1500),
    ("mc_off_policy", ["algo=mc_off_policy", "algo.episodes=300", "env.num_runs=3"], 40),
    ("n_step_td", ["algo=n_step_td", "algo.study_n=[1,4]", "algo.study_step_size=[0.2,0.6]",
                   "env.num_runs=20"], 4),
]


@pytest.mark.parametrize("name, overrides, stop", RESUMABLE, ids=[r[0] for r in RESUMABLE])
def test_resume_is_exact(tmp_path, name, overrides, stop):
    overrides = [*overrides, *QUIET]
    whole = run(tmp_path, overrides, name="whole")
    stopped = interrupt(tmp_path, overrides, stop=stop)
    resumed = resume(stopped)
    assert resumed["status"] == "completed" and resumed["steps"] == whole["steps"]
    assert_same_state(tmp_path / "whole", stopped)
    assert values_of(stopped) == values_of(tmp_path / "whole")
    assert resumed["metrics"] == whole["metrics"]


# ---- chapter 6's link ----------------------------------------------------------------------
def test_exact_reference_by_hand():
    mdp = dp.MDP(model_from_env(GridworldEnv()), 0.9)
    ref = ExactReference(mdp, horizon=100)
    q_star = mdp.q(ref.v_star)
    gap, rms = ref.measure(np.stack([q_star, np.zeros_like(q_star)]))
    assert gap[0] == pytest.approx(0.0, abs=1e-9) and rms[0] == pytest.approx(0.0, abs=1e-9)
    # all-zero Q: every action ties, the greedy policy is the uniform random one
    assert gap[1] == pytest.approx(ref.start - mdp.initial @ mdp.evaluate(
        dp.uniform_policy(mdp.valid)))
    assert rms[1] == pytest.approx(np.sqrt((ref.v_star**2).mean()))
    # a greedy policy that never ends (gamma = 1): its first `horizon` steps' return
    small = dp.MDP(model_from_env(__import__("gymnasium").make("rlrun/SmallGridworld-v0")), 1.0)
    up = ExactReference(small, horizon=50).policy_value(dp.deterministic(np.zeros(16, int), 4))
    assert up[1] == -50.0


def test_td_control_logs_its_distance_to_the_optimum(tmp_path):
    res = run(tmp_path, ["algo=q_learning", "algo.episodes=300", "env.num_runs=10",
                         "algo.figures=true"])
    assert metric(res, "eval/optimality_gap") == pytest.approx(0.0, abs=1e-9)  # path of -13
    assert 0 < metric(res, "eval/value_rms") < 5
    assert (tmp_path / "run" / "figures" / "mu.png").is_file()
    # a continuing task with gamma = 1 has no v*: learning goes on, the two are not logged
    res = run(tmp_path, ["algo=q_learning", "env=gridworld_3_5", "algo.episodes=3",
                         "env.max_steps=50", "algo.figures=false"], name="continuing")
    assert "eval/return" in res["metrics"] and "eval/optimality_gap" not in res["metrics"]


@pytest.mark.slow
def test_benchmark_times_the_figure_commands(capsys):
    """scripts/bench_sutton_barto.py's command column: `rlrun experiment=...` in a fresh
    process, its run's own time, the core, and the run's objective as a check."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_sutton_barto.py"
    spec = importlib.util.spec_from_file_location("bench_sutton_barto_cmd", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--figures", "3.2", "4.3", "--repeat", "1", "--no-drawing"])
    out = capsys.readouterr().out
    assert "command s" in out and "eval/start_value (last) 0.9045" in out
    assert "eval/start_value (last) 0.3991" in out


@pytest.mark.parametrize("algo", ["value_iteration", "mc_control_es", "n_step_td"])
def test_rlrun_eval_says_a_tabular_run_has_no_policy_to_replay(tmp_path, capsys, algo):
    """Their results are values.json and the figures; rlrun-eval refuses in one line (a
    loop module whose names looked like eval's hooks would be replayed instead)."""
    from rlrun.eval import main

    run(tmp_path, [f"algo={algo}", "algo.figures=false", *(
        ["algo.episodes=2000"] if algo == "mc_control_es" else [])])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert f"algo={algo} has no policy to replay" in err
