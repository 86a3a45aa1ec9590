"""Sweeps past the basic launcher: joblib, submitit, the Optuna sweeper with resumable
storage, failed jobs isolated and counted."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from rlrun.core.config import config_dir

from .conftest import read_results, rlrun_cli

SMALL = ["env.num_runs=20", "env.steps=30", "logger.progress=none", "threads=1"]


@pytest.mark.parametrize("overrides", [
    ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    ["hydra/launcher=submitit_local"],
    ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu"],
    ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=1"],
    ["hparams_search=q_learning_cliff"],
])
def test_launcher_and_sweeper_configs_compose(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    hydra = cfg.hydra
    if "hparams_search=q_learning_cliff" in overrides:
        assert "optuna" in hydra.sweeper._target_.lower()
        assert hydra.sweeper.direction == "maximize" and hydra.sweeper.params
        assert cfg.objective.metric == "charts/episodic_return"
        assert cfg.objective.stat == "tail_mean"
        assert cfg.algo.name == "q_learning" and cfg.env.name == "cliff_walking_book"
    else:
        assert hydra.launcher._target_.startswith("hydra_plugins.")
    if "hydra/launcher=slurm" in overrides:
        assert hydra.launcher.gpus_per_node == 1 and hydra.launcher.timeout_min == 120


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_joblib_sweep_with_a_failing_job(tmp_path):
    sweep = tmp_path / "sweep"
    out = rlrun_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "algo.epsilon=0.1,1.5", "seed=0,1", *SMALL, f"hydra.sweep.dir={sweep}"],
                    cwd=tmp_path, timeout=300)
    # the others finish, the summary names the failed jobs, and the sweep exits 1
    assert out.returncode == 1, out.stderr
    assert "sweep done: 4 jobs, 2 failed" in out.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    results = {j.name: read_results(j) for j in jobs}
    assert len(results) == 4
    failed = [n for n, r in results.items() if r["status"] == "failed"]
    assert len(failed) == 2 and all("epsilon=1.5" in n for n in failed)
    assert all("must be in [0, 1]" in results[n]["error"] for n in failed)
    assert sum(r["status"] == "completed" for r in results.values()) == 2
    assert "sweep done: 4 jobs, 2 failed:" in out.stderr + out.stdout


@pytest.mark.slow  # tens of seconds: the slow tier (.ci/run runs it)
def test_optuna_study_runs_and_resumes_from_storage(tmp_path):
    optuna = pytest.importorskip("optuna")
    args = ["-m", "hparams_search=q_learning_cliff", "algo.episodes=20", "env.num_runs=2",
            "logger.progress=none"]
    first = rlrun_cli([*args, "hydra.sweeper.n_trials=2"], cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    db = tmp_path / "multirun" / "optuna" / "q_learning_cliff.db"
    assert db.is_file()
    second = rlrun_cli([*args, "hydra.sweeper.n_trials=1"], cwd=tmp_path, timeout=300)
    assert second.returncode == 0, second.stderr
    study = optuna.load_study(study_name="q_learning_cliff", storage=f"sqlite:///{db}")
    assert len(study.trials) == 3  # the second invocation continued the same study
    # Each trial's value is the objective the run wrote: the tail mean of the return.
    runs = sorted(p for p in (tmp_path / "multirun").glob("*/*") if (p / "results.json").exists())
    objectives = sorted(read_results(r)["metrics"]["charts/episodic_return"]["tail_mean"]
                        for r in runs)
    assert sorted(t.value for t in study.trials) == pytest.approx(objectives)
    assert all(math.isfinite(v) for v in objectives)


def _hparam_names(run: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run))
    acc.Reload()
    exp = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
    return {h.name for h in exp.hparam_infos}


def test_sweep_job_names_and_hparams_show_what_varies(tmp_path):
    sweep = tmp_path / "sweep"
    out = rlrun_cli(["-m", "algo.epsilon=0,0.1", "seed=0,1", "algo.initial_value=0", *SMALL,
                     f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    # swept keys only (initial_value and env.* are the same in every job), seed included
    assert jobs == ["0_epsilon=0,seed=0", "1_epsilon=0,seed=1", "2_epsilon=0.1,seed=0",
                    "3_epsilon=0.1,seed=1"]
    overrides = (sweep / jobs[0] / ".hydra" / "overrides.yaml").read_text()
    assert "algo.initial_value=0" in overrides and "env.num_runs=20" in overrides
    assert _hparam_names(sweep / jobs[0]) == {"algo.name", "env.name", "algo.epsilon", "seed"}


def test_job_name_abbreviates_drops_and_hashes(monkeypatch):
    from rlrun.core.sweep import ENV_VAR, job_name

    monkeypatch.delenv(ENV_VAR, raising=False)
    task = ["algo=ppo", "algo.learning_rate=0.001", "network.hidden=[64,64]", "seed=2",
            "threads=1"]
    # not in a sweep: every override but the excluded ones, keys shortened
    assert job_name(None, task, ["threads"]) == \
        "algo=ppo,learning_rate=0.001,hidden=_64,64_,seed=2"
    monkeypatch.setenv(ENV_VAR, '["algo.learning_rate", "seed", "env.gamma"]')
    assert job_name(None, [*task, "env.gamma=0.9"]) == "learning_rate=0.001,seed=2,gamma=0.9"
    assert job_name("mine", task) == "mine,learning_rate=0.001,seed=2"
    # two swept keys with one last name keep enough of their path to tell them apart
    monkeypatch.setenv(ENV_VAR, '["algo.gamma", "env.gamma"]')
    assert job_name(None, ["algo.gamma=0.9", "env.gamma=0.5"]) == "algo.gamma=0.9,env.gamma=0.5"
    long = [f"k{i}=" + "v" * 20 for i in range(6)]
    monkeypatch.setenv(ENV_VAR, '["k0", "k1", "k2", "k3", "k4", "k5"]')
    a, b = job_name(None, long), job_name(None, [*long[:5], "k5=" + "w" * 20])
    assert len(a) <= 80 and len(b) <= 80 and a != b and a[:40] == b[:40]


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_a_sweep_over_algorithms_takes_their_shared_keys(tmp_path):
    """`rlrun -m algo=q_learning,sarsa algo.episodes=3` (issue 22): Hydra composes the sweep's
    base config with the default algorithm, which has no `episodes`; rlrun sets the swept
    group's keys with `++`, so each job gets its own algorithm with the key."""
    sweep = tmp_path / "sweep"
    out = rlrun_cli(["-m", "algo=q_learning,sarsa", "algo.episodes=3", "env.num_runs=2",
                     "logger.progress=none", f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                    timeout=300)
    assert out.returncode == 0, out.stderr
    results = [read_results(j) for j in sorted(sweep.iterdir()) if j.is_dir()]
    assert [(r["algo"], r["status"], r["steps"]) for r in results] == [
        ("q_learning", "completed", 3), ("sarsa", "completed", 3)]
