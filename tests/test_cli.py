"""The `rlrun` command as a user meets it: run layout, results.json, TensorBoard, errors,
interrupt and resume. These run the real console entry in subprocesses."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlrun.core.errors import CheckpointError

from .conftest import read_results, rlrun_cli, run_train

QUICK = ["env.num_runs=100", "env.steps=120", "logger.progress=none"]
_RAY = importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None


def test_single_run_layout_results_and_tensorboard(tmp_path):
    out = rlrun_cli(["algo=ucb", *QUICK], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    runs = list((tmp_path / "outputs" / "ucb" / "bandit_testbed").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert len(run.name) == len("2026-01-31_12-00-00") and run.name[10] == "_"
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "checkpoints/last.pt").is_file()
    res = read_results(run)
    assert {"algo", "env", "seed", "status", "steps", "wall_time_s", "metrics"} <= set(res)
    assert (res["algo"], res["env"], res["seed"], res["status"], res["steps"]) == (
        "ucb", "bandit_testbed", 0, "completed", 120)
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    # Every scalar logged to TensorBoard appears in results.json, and the other way round.
    assert tags == set(res["metrics"]) >= {"bandit/average_reward", "bandit/optimal_action",
                                           "bandit/average_reward_all_steps"}
    for tag in tags:
        values = [e.value for e in acc.Scalars(tag)]
        m = res["metrics"][tag]
        n_tail = max(1, -(-len(values) // 10))
        assert m["last"] == pytest.approx(values[-1], rel=1e-6)
        assert m["best"] == pytest.approx(max(values), rel=1e-6)
        assert m["tail_mean"] == pytest.approx(sum(values[-n_tail:]) / n_tail, rel=1e-6)
    assert [e.step for e in acc.Scalars("bandit/average_reward")] == list(range(1, 121))
    assert "config/text_summary" in acc.Tags()["tensors"]
    from tensorboard.plugins.hparams import plugin_data_pb2

    hp = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
    # a single run: the keys it overrode (logger.* aside), with algo and env; not 50 constants
    assert {h.name for h in hp.hparam_infos} == {"algo.name", "env.name", "env.num_runs",
                                                 "env.steps"}
    assert [m.name.tag for m in hp.metric_infos] == ["bandit/average_reward",
                                                     "bandit/average_reward_all_steps"]
    assert [p for p in run.iterdir() if p.is_dir()] != []  # .hydra, checkpoints
    assert not [p for p in run.iterdir() if p.is_dir() and p.name[0].isdigit()], \
        "hparams must stay in the run folder, not a timestamped subfolder"


def test_sweep_layout(tmp_path):
    out = rlrun_cli(["-m", "algo.epsilon=0,0.1", "seed=0,1", *QUICK], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (sweep,) = list((tmp_path / "multirun").iterdir())
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4
    results = [read_results(j) for j in jobs]
    assert {(r["seed"], r["status"]) for r in results} == {(0, "completed"), (1, "completed")}
    greedy = [r for j, r in zip(jobs, results, strict=True) if "epsilon=0," in j.name]
    assert len(greedy) == 2


@pytest.mark.parametrize("args, message", [
    (["algo=foo"], "Could not find 'algo/foo'. Available options in 'algo': a2c, ddpg,"),
    (["env=nope"], "Could not find 'env/nope'"),
    (["algo.epsilonn=0.2"], "algo.epsilonn is not an option of algo=epsilon_greedy; did you"),
    (["+algo.epsilonn=0.2"], "algo.epsilonn"),
    (["algo.epsilon=1.5"], "algo.epsilon=1.5 must be in [0, 1]"),
    (["algo.epsilon=abc"], "algo.epsilon=abc must be a number"),
    (["algo.step_size=-0.1"], "algo.step_size=-0.1 must be > 0"),
    (["algo=gradient_bandit", "algo.step_size=0"], "algo.step_size=0 must be > 0"),
    (["algo=ucb", "algo.c=-1"], "algo.c=-1 must be >= 0"),
    (["env.k=0"], "env.k=0 must be >= 1"),
    (["env.num_runs=-3"], "env.num_runs=-3 must be >= 1"),
    (["env=CartPole-v1"], "algo=epsilon_greedy needs a bandit testbed (env=bandit_testbed,"),
    (["network=mlp"], "uses no network"),
    (["algo=q_learning", "env=Pendulum-v1"], "algo=q_learning needs a tabular task"),
    (["algo=sarsa", "algo.epsilon=2"], "algo.epsilon=2 must be in [0, 1]"),
    (["algo=td0", "algo.method=td2"], "algo.method='td2' must be one of td0, mc"),
    (["resume=/nonexistent/run"], "resume=/nonexistent/run: no run there"),
    (["experiment=nope"], "sutton_barto/ex6_2, sutton_barto/fig2_2"),
    (["algo.epsilon=[1,"], "no viable alternative"),
    (["algo=lm", "env.path=~/corpus.txt"],  # Hydra's grammar refuses an unquoted ~
     """cannot parse the override 'env.path=~/corpus.txt' at '~': quote the value for Hydra,"""
     """ in the shell: 'env.path="~/corpus.txt"'"""),
    (["seed=abc"], "seed='abc' must be an integer in [0, 2**32)"),
    pytest.param(["-m", "hydra/launcher=ray"], "Install it with: pip install 'rlrun[ray]'",
                 marks=pytest.mark.skipif(_RAY, reason="the ray extra is installed")),
    (["objective.stat=median"], "objective.stat='median' must be last, tail_mean or best"),
    (["checkpoint_every_s=-1"], "checkpoint_every_s=-1 must be a number >= 0"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    out = rlrun_cli([*args, "logger.progress=none"], cwd=tmp_path)  # fails before running
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr  # one line, no traceback
    assert out.stderr.startswith("rlrun: error: ")
    assert message in out.stderr
    for results in tmp_path.glob("outputs/*/*/*/results.json"):  # the run dir says why
        record = json.loads(results.read_text())
        assert record["status"] == "failed" and message.split(". ")[0] in record["error"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_an_error(tmp_path):
    out = rlrun_cli(["device=cuda", *QUICK], cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "device=cuda requested but" in out.stderr
    assert not (tmp_path / "outputs").exists()  # found by the preflight: no run dir


def test_same_seed_same_numbers(tmp_path):
    a = run_train(tmp_path, ["algo=gradient_bandit", "env.num_runs=50", "env.steps=200"], "a")
    b = run_train(tmp_path, ["algo=gradient_bandit", "env.num_runs=50", "env.steps=200"], "b")
    c = run_train(tmp_path, ["algo=gradient_bandit", "env.num_runs=50", "env.steps=200",
                             "seed=1"], "c")
    assert a["metrics"] == b["metrics"]
    assert a["metrics"] != c["metrics"]


def _start_and_signal(tmp_path: Path, run_dir: Path, args: list[str], sig: int):
    """Start a long run, wait until it is stepping, send `sig`; return the process result."""
    cmd = [sys.executable, "-m", "rlrun", *args, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # the progress line says stepping has begun
        line = proc.stdout.readline()
        if "step " in line or not line:
            break
    time.sleep(0.3)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


@pytest.mark.parametrize("algo, sig", [("epsilon_greedy", signal.SIGINT),
                                       ("gradient_bandit", signal.SIGTERM)])
@pytest.mark.slow  # tens of seconds: the slow tier (.ci/run runs it)
def test_interrupt_then_resume_matches_uninterrupted_run(tmp_path, algo, sig):
    args = [f"algo={algo}", "env=contextual_bandit", "env.num_runs=300", "env.steps=5000",
            "logger.progress=lines", "logger.print_every_s=0.2", "deterministic=true"]
    run_dir = tmp_path / "interrupted"
    rc, stderr = _start_and_signal(tmp_path, run_dir, args, sig)
    assert rc == 130, stderr
    assert f"rlrun resume={run_dir}" in stderr
    stopped = read_results(run_dir)
    assert stopped["status"] == "interrupted" and 0 < stopped["steps"] < 5000

    out = rlrun_cli([f"resume={run_dir}", "logger.progress=none"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    resumed = read_results(run_dir)
    assert resumed["status"] == "completed" and resumed["steps"] == 5000

    full = run_train(tmp_path, args[:-2] + ["logger.progress=none"], "full")
    assert resumed["metrics"] == full["metrics"]  # exactly the same numbers

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    steps = [e.step for e in acc.Scalars("bandit/average_reward")]
    assert steps == list(range(1, 5001)), "no gap or duplicate around the resume point"

    again = rlrun_cli([f"resume={run_dir}"], cwd=tmp_path)
    assert again.returncode == 2 and "already completed" in again.stderr


@pytest.mark.slow  # tens of seconds: the slow tier (.ci/run runs it)
def test_resume_refuses_other_overrides_and_corrupt_checkpoints(tmp_path):
    run_dir = tmp_path / "r"
    rc, _ = _start_and_signal(tmp_path, run_dir, [
        "env.num_runs=300", "env.steps=50000", "logger.progress=lines",
        "logger.print_every_s=0.2"], signal.SIGINT)
    assert rc == 130
    out = rlrun_cli([f"resume={run_dir}", "algo.epsilon=0.2"], cwd=tmp_path)
    assert out.returncode == 2 and "only these keys may change" in out.stderr
    assert "(got algo.epsilon=0.2)" in out.stderr and "+" not in out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"\x00garbage")
    out = rlrun_cli([f"resume={run_dir}"], cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "unreadable" in out.stderr and "corrupt" in out.stderr


def test_fresh_run_refuses_a_used_dir(tmp_path):
    run_train(tmp_path, ["env.num_runs=10", "env.steps=10"], "x")
    with pytest.raises(CheckpointError, match="already holds a run"):
        run_train(tmp_path, ["env.num_runs=10", "env.steps=10"], "x")


def test_results_json_is_valid_json_with_status_running_while_running(tmp_path):
    run_dir = tmp_path / "live"
    cmd = [sys.executable, "-m", "rlrun", "env.num_runs=300", "env.steps=50000",
           "logger.progress=lines", "logger.print_every_s=0.2", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.PIPE)
    try:
        while "step " not in proc.stdout.readline():
            pass
        assert json.loads((run_dir / "results.json").read_text())["status"] == "running"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
