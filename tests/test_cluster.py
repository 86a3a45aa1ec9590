"""A run as a SLURM job (rlrun.launch.cluster), without a cluster: SLURM's environment and
submitit's signal handler are stood in for. tests/test_slurm.py runs the real thing."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from rlrun.core.run import RunContext
from rlrun.launch.cluster import requeued_run, slurm_job
from rlrun.train import Interrupted, train
from tests.conftest import compose_cfg, interrupt, read_results, run_train

BANDIT = ["algo=ucb", "env.num_runs=50", "env.steps=400", "logger.progress=none"]


def _requeued(monkeypatch, restarts: int = 1) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_RESTART_COUNT", str(restarts))


def test_a_requeued_job_continues_its_own_interrupted_run(tmp_path, monkeypatch):
    ref = run_train(tmp_path, BANDIT, "ref")
    run_dir = interrupt(tmp_path, monkeypatch, BANDIT, stop=150)
    assert read_results(run_dir)["status"] == "interrupted"
    cfg = compose_cfg(BANDIT)

    assert not requeued_run(cfg, run_dir)  # not a SLURM job
    _requeued(monkeypatch, restarts=0)
    assert not requeued_run(cfg, run_dir)  # a SLURM job, but its first run
    _requeued(monkeypatch)
    assert not requeued_run(compose_cfg([*BANDIT, "seed=1"]), run_dir)  # another config
    assert requeued_run(cfg, run_dir)
    rec = read_results(run_dir)  # killed on another node a moment ago: not yet `stale`
    (run_dir / "results.json").write_text(json.dumps(
        {**rec, "status": "running", "host": "node-b", "pid": 1, "heartbeat": time.time()}))
    assert requeued_run(cfg, run_dir)

    with slurm_job(cfg, run_dir) as job_cfg:
        assert job_cfg.resume == str(run_dir)
        out = train(job_cfg)
    assert out["status"] == "completed" and out["steps"] == ref["steps"]
    assert out["metrics"] == ref["metrics"]
    assert not requeued_run(cfg, run_dir)  # completed: nothing left to continue


class SignalHandler:
    """Stands in for submitit's handler (same class name): records the call, then exits as
    submitit does after requeueing the job."""

    calls: list[int] = []

    def checkpoint_and_try_requeue(self, signum, frame=None):
        self.calls.append(signum)
        raise SystemExit(-1)


def test_submitits_requeue_signal_saves_a_checkpoint_before_submitit_requeues(
        tmp_path, monkeypatch):
    ref = run_train(tmp_path, BANDIT, "ref")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    original = RunContext.tick

    def usr2_at_200(self, step, value, state_fn=None):
        if step == 200:
            os.kill(os.getpid(), signal.SIGUSR2)  # submitit's --signal=USR2@<delay>
        return original(self, step, value, state_fn)

    monkeypatch.setattr(RunContext, "tick", usr2_at_200)
    fake = SignalHandler()
    old = signal.signal(signal.SIGUSR2, fake.checkpoint_and_try_requeue)
    run_dir = tmp_path / "b"
    try:
        cfg = compose_cfg(BANDIT)
        with pytest.raises(SystemExit), slurm_job(cfg, run_dir) as job_cfg:
            train(job_cfg, run_dir=run_dir)
        assert signal.getsignal(signal.SIGUSR2) == fake.checkpoint_and_try_requeue
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert fake.calls == [signal.SIGUSR2]
    rec = read_results(run_dir)
    assert rec["status"] == "interrupted" and 200 <= rec["steps"] < ref["steps"]

    monkeypatch.setattr(RunContext, "tick", original)
    _requeued(monkeypatch)
    with slurm_job(cfg, run_dir) as job_cfg:
        out = train(job_cfg)
    assert out["status"] == "completed" and out["metrics"] == ref["metrics"]


def test_outside_slurm_the_config_and_signals_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    cfg = compose_cfg(BANDIT)
    before = signal.getsignal(signal.SIGUSR2)
    with slurm_job(cfg, tmp_path) as job_cfg:
        assert job_cfg is cfg
        assert signal.getsignal(signal.SIGUSR2) == before
    with pytest.raises(Interrupted), slurm_job(cfg, tmp_path):
        raise Interrupted(tmp_path, 3)


def test_the_slurm_launcher_defaults_fit_a_small_node(monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rlrun.core.config import config_dir

    def launcher():
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            cfg = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
        return cfg.hydra.launcher

    monkeypatch.delenv("RLRUN_SLURM_PARTITION", raising=False)
    got = launcher()
    assert got.partition is None  # the cluster's default partition
    assert got.cpus_per_task == 1 and got.mem_gb is None and got.tasks_per_node == 1
    assert got.max_num_timeout > 0  # a job past its time limit is requeued from its checkpoint
    monkeypatch.setenv("RLRUN_SLURM_PARTITION", "gpu")
    assert launcher().partition == "gpu"
