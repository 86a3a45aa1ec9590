"""`hydra/launcher=slurm` against a real SLURM: `scripts/slurm_local.sh start` (as root), then
`pytest -m slurm`. Skipped when no cluster answers (`sinfo` fails); .ci/run starts one and
fails loudly when it cannot."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import read_results, rlrun_cli, run_train
from tests.test_distributed import (
    TINY_LM,
    assert_close_params,
    both_ranks_reference,
    crash_on_rank1,
    params,
)


def _cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


NO_CLUSTER = "no SLURM cluster: sinfo fails (start one with: sudo scripts/slurm_local.sh start)"
if os.environ.get("RLRUN_SLURM_REQUIRED") == "1" and not _cluster_up():  # CI: fail, loudly
    raise RuntimeError(NO_CLUSTER)
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(not _cluster_up(), reason=NO_CLUSTER)]

# Long enough (~6 s) to be stopped in the middle, deterministic, CPU only.
LONG = ["algo=ucb", "env.num_runs=500", "env.steps=20000", "seed=0", "logger.progress=none"]


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> dict:
    """`LONG` run here, never stopped: what a stopped and requeued job must end with."""
    return run_train(tmp_path_factory.mktemp("ref"), LONG)


def _sacct(job_id: str) -> dict[str, str]:
    """State of each job (array element) of `job_id`, from SLURM's accounting."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", job_id],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return dict(line.split("|")[:2] for line in out.splitlines() if line)


def _job_ids(sweep: Path) -> list[str]:
    names = (p.name.split("_")[0] for p in (sweep / ".submitit").iterdir() if p.is_dir())
    return sorted({n for n in names if n.isdigit()})


def _wait(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sweep_runs_as_slurm_jobs_with_the_default_launcher_settings(tmp_path):
    sweep = tmp_path / "sweep"
    proc = rlrun_cli(["-m", "hydra/launcher=slurm", "algo=ucb", "seed=0,1,2",
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sweep done: 3 jobs, 0 failed" in proc.stdout
    jobs = sorted(p for p in sweep.iterdir() if (p / "results.json").is_file())
    assert [read_results(j)["status"] for j in jobs] == ["completed"] * 3
    assert sorted(read_results(j)["seed"] for j in jobs) == [0, 1, 2]
    (job_id,) = _job_ids(sweep)  # one job array
    # submitit returns once each job wrote its result; SLURM records the end a moment later.
    _wait(lambda: sorted(_sacct(job_id).values()) == ["COMPLETED"] * 3, 60,
          f"sacct to show the 3 jobs of {job_id} COMPLETED (now {_sacct(job_id)})")


def _loop_started(sweep: Path, says: str = "run ucb on bandit_testbed") -> str | None:
    """The SLURM job id once the job's training loop has started (its log says so)."""
    for log in glob.glob(str(sweep / ".submitit" / "*" / "*_log.out")):
        if says in Path(log).read_text():
            return Path(log).parent.name
    return None


def _stopped_and_requeued(tmp_path: Path, args: list[str], stop: list[str], says: str,
                          after_s: float, timeout: float) -> tuple[str, Path]:
    """Sweep `args` as one job, `stop` it `after_s` into its loop (its log `says` so), wait
    for the sweep command to end, and check that the job was requeued and continued its
    run. Returns the job id and the run dir.

    Now and then (3 of 31 tries of the data-parallel test on this machine, one in CI) the
    local cluster cancels the job step for `scontrol requeue` (slurmd.log says so, and both
    tasks log submitit's "Bypassing signal SIGCONT") but no SIGTERM reaches the tasks: rlrun
    never hears of a stop, the run completes, and SLURM requeues the job after the sweep
    command has returned. Such a try shows nothing of rlrun's stop and requeue; it is tried
    once more, and a second one fails the test."""
    try:
        return _stop_and_requeue(tmp_path / "sweep", args, stop, says, after_s, timeout)
    except _NoStopArrived:
        pass
    try:
        return _stop_and_requeue(tmp_path / "again", args, stop, says, after_s, timeout)
    except _NoStopArrived as e:
        pytest.fail(f"{' '.join(stop)} reached neither try's job (rlrun saw no stop): {e}")


class _NoStopArrived(Exception):
    pass


def _stop_and_requeue(sweep: Path, args: list[str], stop: list[str], says: str,
                      after_s: float, timeout: float) -> tuple[str, Path]:
    tmp_path = sweep.parent
    cli = subprocess.Popen([sys.executable, "-m", "rlrun", "-m", *args,
                            f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    job_id = None
    try:
        job_id = _wait(lambda: _loop_started(sweep, says), 120, "the job's loop to start")
        time.sleep(after_s)
        subprocess.run([*stop, job_id], check=True, timeout=30)
        out, _ = cli.communicate(timeout=timeout)
    finally:
        if cli.poll() is None:
            cli.kill()
            if job_id:
                subprocess.run(["scancel", "--full", job_id], timeout=30)
    assert cli.returncode == 0, out[-3000:]
    (run_dir,) = [p for p in sweep.iterdir() if (p / "results.json").is_file()]
    logs = "".join(Path(p).read_text() for p in glob.glob(str(sweep / ".submitit/*/*_log.*")))
    if "rlrun: interrupted at step" not in logs and "requeued SLURM job" not in logs:
        raise _NoStopArrived(logs[-3000:])
    assert f"requeued SLURM job {job_id} (restart 1)" in logs, logs[-3000:]
    return job_id, run_dir


@pytest.mark.parametrize("stop", [
    ["scontrol", "requeue"],          # SIGTERM, as on preemption; SLURM requeues it
    ["scancel", "--signal=USR2"],     # submitit's time-limit warning; submitit requeues it
])
def test_a_job_stopped_by_slurm_is_requeued_and_ends_with_the_same_numbers(tmp_path, stop, ref):
    job_id, run_dir = _stopped_and_requeued(tmp_path, ["hydra/launcher=slurm", *LONG], stop,
                                            "run ucb on bandit_testbed", 1.0, 240)
    rec = read_results(run_dir)
    assert rec["status"] == "completed" and rec["steps"] == ref["steps"]
    assert rec["metrics"] == ref["metrics"]
    _wait(lambda: _sacct(job_id) == {job_id: "COMPLETED"}, 60,
          f"sacct to show job {job_id} COMPLETED (now {_sacct(job_id)})")


def test_a_job_cancelled_with_sigterm_says_so_in_one_line_and_continues_when_requeued(
        tmp_path, ref):
    sweep = tmp_path / "sweep"
    cli = subprocess.Popen([sys.executable, "-m", "rlrun", "-m", "hydra/launcher=slurm", *LONG,
                            f"hydra.sweep.dir={sweep}"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        job_id = _wait(lambda: _loop_started(sweep), 120, "the job's loop to start")
        time.sleep(1.0)
        subprocess.run(["scancel", "--signal=TERM", job_id], check=True, timeout=30)
        _, err = cli.communicate(timeout=180)  # not requeued: the sweep command gives up
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 1 and err.count("\n") == 1, err[-3000:]
    assert "(state: FAILED); the job said: interrupted at step" in err
    (run_dir,) = [p for p in sweep.iterdir() if (p / "results.json").is_file()]
    assert read_results(run_dir)["status"] == "interrupted"

    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
    _wait(lambda: _sacct(job_id) == {job_id: "COMPLETED"}, 120,
          f"the requeued job {job_id} to complete")
    rec = read_results(run_dir)
    assert rec["status"] == "completed" and rec["metrics"] == ref["metrics"]


# Part 1's data-parallel LM as one SLURM job with 2 tasks (docs/scaling.md); an MoE LM, whose
# router losses are part of each rank's loss.
DDP = ["hydra/launcher=slurm", "hydra.launcher.tasks_per_node=2"]
MOE_LM = [*TINY_LM, "algo.batch_size=4", "network.ffn=mixtral", "network.n_experts=4"]


def _sweep(tmp_path: Path, args: list[str], name: str = "sweep", **kw):
    sweep = tmp_path / name
    cmd = [sys.executable, "-m", "rlrun", "-m", *args, f"hydra.sweep.dir={sweep}"]
    return sweep, subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, **kw)


def _one_run(sweep: Path) -> Path:
    (run_dir,) = [p for p in sweep.iterdir() if (p / "results.json").is_file()]
    return run_dir


def test_a_job_with_two_tasks_is_one_data_parallel_run(tmp_path, monkeypatch):
    """The tasks of the job are the ranks of one DDP run: the parameters of one process with
    both ranks' batches; one run dir, written by rank 0; and an algorithm that does not
    train data-parallel is refused in one line."""
    steps, batch = 3, 4
    sweep, out = _sweep(tmp_path, [*DDP, *TINY_LM, f"algo.total_steps={steps}",
                                   f"algo.batch_size={batch}"], timeout=240)
    assert out.returncode == 0 and "sweep done: 1 jobs, 0 failed" in out.stdout, \
        out.stdout[-2000:] + out.stderr[-2000:]
    run_dir = _one_run(sweep)
    rec = read_results(run_dir)
    assert rec["status"] == "completed" and rec["world_size"] == 2 and rec["steps"] == steps
    (job_id,) = _job_ids(sweep)
    assert {p.name for p in (sweep / ".submitit" / job_id).glob("*_result.pkl")} == \
        {f"{job_id}_0_result.pkl", f"{job_id}_1_result.pkl"}  # two SLURM tasks
    assert_close_params(params(run_dir),
                        both_ranks_reference(tmp_path, monkeypatch, TINY_LM, steps, batch))

    sweep, out = _sweep(tmp_path, [*DDP, "algo=ucb"], "bandit", timeout=240)
    assert "sweep done: 1 jobs, 1 failed" in out.stdout + out.stderr, out.stderr[-2000:]
    assert read_results(_one_run(sweep))["error"].startswith(
        "algo=ucb does not train data-parallel: run it as one process")


@pytest.fixture(scope="module")
def ddp_ref(tmp_path_factory) -> Path:
    """The 2-task MoE LM job, never stopped: what a stopped and requeued one must end with."""
    tmp = tmp_path_factory.mktemp("ddp_ref")
    sweep, out = _sweep(tmp, [*DDP, *MOE_LM, "algo.total_steps=600"], timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return _one_run(sweep)


@pytest.mark.parametrize("stop", [
    ["scontrol", "requeue"],          # SIGTERM to both tasks, as on preemption
    ["scancel", "--signal=USR2"],     # submitit's time-limit warning; task 0 requeues
])
def test_a_data_parallel_job_stopped_by_slurm_is_requeued_and_ends_exactly(
        tmp_path, stop, ddp_ref):
    _, run_dir = _stopped_and_requeued(
        tmp_path, [*DDP, *MOE_LM, "algo.total_steps=600", "checkpoint_every_s=0.5"], stop,
        "run lm on stdlib_docs", 2.0, 300)
    rec, ref = read_results(run_dir), read_results(ddp_ref)
    assert rec["status"] == "completed" and rec["world_size"] == 2 and rec["steps"] == 600
    assert rec["metrics"]["losses/train"]["last"] == ref["metrics"]["losses/train"]["last"]
    got, want = params(run_dir), params(ddp_ref)
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_a_task_that_crashes_fails_the_job_in_one_line_naming_its_rank(tmp_path):
    """Task 1 raises at its third batch (a bug, through a sitecustomize only task 1 obeys):
    task 0, whose collective loses its peer, fails at once instead of waiting on it, and the
    sweep says rank 1's error in one line, which results.json records too."""
    sweep, out = _sweep(tmp_path, [*DDP, *TINY_LM, "algo.total_steps=50", "algo.batch_size=4"],
                        env=crash_on_rank1(tmp_path, "SLURM_PROCID"), timeout=240)
    assert out.returncode == 1, out.stderr[-3000:]
    assert out.stderr.splitlines()[-1] == "rlrun: error: rank 1: ValueError: boom on rank 1"
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    rec = read_results(_one_run(sweep))
    assert rec["status"] == "failed" and rec["error"] == "rank 1: ValueError: boom on rank 1"
