"""Data-parallel runs under torchrun (gloo on the CPU, 2 processes; docs/scaling.md).

Each torchrun launch starts three Python processes (the agent and two ranks, each importing
torch), so there are few of them: two in the default run (the DDP-equals-doubled-batch check,
which also checks what rank 0 alone writes and the world-size refusal; and a crashing rank),
the rest `slow`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from rlrun.core.config import _now
from rlrun.core.distributed import Dist
from rlrun.data import text

from .conftest import read_results, rlrun_cli, run_train

TINY_LM = ["algo=lm", "threads=1", "checkpoint_every_s=0", "network.d_model=32",
           "network.n_layers=1", "network.n_heads=2", "network.block_size=16",
           "network.d_ff=64", "env.max_chars=20000", "algo.eval_every=0",
           "algo.eval_batches=1", "algo.sample_chars=0", "algo.attention_stats=false",
           "algo.log_every=1", "logger.progress=none"]


def torchrun(args: list[str], cwd: Path, timeout: float = 120,
             **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 -m rlrun ARGS` (the module form of torchrun,
    which needs no console script on PATH)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "rlrun", *args]
    env = dict(kw.pop("env", None) or {**os.environ, "PYTHONUNBUFFERED": "1"})
    env.pop("HYDRA_FULL_ERROR", None)
    if kw.pop("background", False):
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout, **kw)
    fresh = not any(a.startswith("resume=") for a in args)
    before_abort = out.stderr.split(GLOO_EXIT_ABORT)[0]
    if fresh and out.returncode != 0 and GLOO_EXIT_ABORT in out.stderr and \
            "Traceback (most" not in before_abort:
        # gloo's threads abort a rank at process exit now and then on a loaded machine (seen
        # once in CI, never in 30 loaded runs here; torch's open issue): a fresh run gets one
        # more try in a clean dir; a resumed one never does (its first try changed the dir)
        shutil.rmtree(cwd / "outputs", ignore_errors=True)
        out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=timeout, **kw)
    return out


GLOO_EXIT_ABORT = "terminate called without an active exception"


def rank_seed(stream: str, rank: int, seed: int = 0) -> int:
    """`ctx.seed_of(stream)` on `rank` of a run with this seed, as rlrun.core.run documents
    it: the child of SeedSequence(seed) with spawn key (crc32(stream), rank)."""
    ss = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(stream.encode()), rank))
    return int(ss.generate_state(1, np.uint32)[0])


def params(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return ckpt["loop"]["model"]


def both_ranks_reference(tmp_path: Path, monkeypatch, args: list[str], steps: int,
                         batch: int) -> dict[str, torch.Tensor]:
    """What a 2-rank LM run (seed 0, `batch` per rank) must hold after `steps`: the parameters
    of one process whose batches of 2 x `batch` are rank 0's draw followed by rank 1's."""
    gens = [torch.Generator().manual_seed(rank_seed("batches", r)) for r in (0, 1)]
    draw = text.random_batch

    def both_ranks(data, b, block, gen):
        parts = [draw(data, b // 2, block, g) for g in gens]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    with monkeypatch.context() as m:
        m.setattr("rlrun.data.lm_data.random_batch", both_ranks)
        run_train(tmp_path, [*args, f"algo.total_steps={steps}", f"algo.batch_size={2 * batch}",
                             "seed=0"], "single")
    return params(tmp_path / "single")


def assert_close_params(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    assert ref.keys() == got.keys()
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_ddp_on_two_ranks_equals_one_process_with_both_ranks_batches(tmp_path, monkeypatch):
    """After K steps, 2 ranks x batch 4 (DDP averages the gradients) hold the parameters of
    one process with batch 8 made of the two ranks' batches. Rank 0 alone writes, into one
    run dir named the same by both ranks; a different world size cannot resume it."""
    steps, batch = 3, 4
    out = torchrun([*TINY_LM, f"algo.total_steps={steps}", f"algo.batch_size={batch}"],
                   tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "lm" / "stdlib_docs").iterdir())
    assert len(runs) == 1  # both ranks named the same dir (rank 0's clock)
    ddp_dir = runs[0]
    rec = read_results(ddp_dir)
    assert rec["status"] == "completed" and rec["world_size"] == 2 and rec["steps"] == steps
    assert rec["metrics"]["charts/tokens"]["last"] == steps * 2 * batch * 16
    assert len(list(ddp_dir.glob("events.out.tfevents.*"))) == 1  # one TensorBoard writer
    assert sorted(p.name for p in (ddp_dir / ".hydra").iterdir()) == \
        ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert len(list(ddp_dir.glob("*.log"))) == 1

    # The reference: one process, batch 8 = rank 0's 4 sequences then rank 1's 4.
    got = params(ddp_dir)
    assert_close_params(got, both_ranks_reference(tmp_path, monkeypatch, TINY_LM, steps, batch))
    # ... and not by accident: a step on rank 0's batch alone lands elsewhere
    draw, gen0 = text.random_batch, torch.Generator().manual_seed(rank_seed("batches", 0))
    monkeypatch.setattr("rlrun.data.lm_data.random_batch",
                        lambda data, b, block, gen: draw(data, b // 2, block, gen0))
    run_train(tmp_path, [*TINY_LM, f"algo.total_steps={steps}",
                         f"algo.batch_size={2 * batch}"], "rank0_only")
    assert any(not torch.allclose(params(tmp_path / "rank0_only")[k], got[k], atol=1e-5)
               for k in got)

    # A plain rlrun (world size 1) may not continue a 2-process run: one line, exit 2.
    bad = rlrun_cli([f"resume={ddp_dir}", "algo.total_steps=5"], tmp_path)
    assert bad.returncode == 2, bad.stderr[-2000:]
    line = bad.stderr.strip().splitlines()[-1]
    assert "trained by 2 process(es) and this launch has 1" in line
    assert "Traceback" not in bad.stderr
    assert read_results(ddp_dir)["status"] == "completed"  # untouched


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_a_submitit_job_with_two_tasks_is_one_data_parallel_run(tmp_path, monkeypatch):
    """`hydra.launcher.tasks_per_node=2`: submitit's two tasks are the two ranks of one run,
    as under torchrun (submitit_local here; tests/test_slurm.py does it under SLURM): the
    same parameters as one process with both ranks' batches, and rank 0 alone writes."""
    steps, batch = 3, 4
    sweep = tmp_path / "sweep"
    out = rlrun_cli(["-m", "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2",
                     f"hydra.sweep.dir={sweep}", *TINY_LM, f"algo.total_steps={steps}",
                     f"algo.batch_size={batch}"], tmp_path, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sweep done: 1 jobs, 0 failed" in out.stdout, out.stdout[-2000:]
    (run_dir,) = [p for p in sweep.iterdir() if (p / "results.json").is_file()]
    rec = read_results(run_dir)
    assert rec["status"] == "completed" and rec["world_size"] == 2 and rec["steps"] == steps
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    (log,) = run_dir.glob("*.log")
    assert log.read_text().count("run lm on") == 1  # rank 1 leaves the run's log to rank 0
    assert_close_params(params(run_dir),
                        both_ranks_reference(tmp_path, monkeypatch, TINY_LM, steps, batch))


def test_ranks_come_from_torchrun_or_else_from_a_submitit_jobs_tasks(monkeypatch):
    from rlrun.core.distributed import env_world, submitit_tasks

    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert env_world() == (0, 0, 1)  # a SLURM step outside submitit: not rlrun's ranks
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    assert env_world() == (3, 1, 4) and submitit_tasks()
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert env_world() == (0, 0, 1) and not submitit_tasks()
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_LOCAL_GLOBALID", "1")
    monkeypatch.setenv("SUBMITIT_LOCAL_LOCALID", "1")
    monkeypatch.setenv("SUBMITIT_LOCAL_NTASKS", "2")
    assert env_world() == (1, 1, 2)
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "2")):
        monkeypatch.setenv(name, value)  # torchrun inside a job: torchrun's ranks
    assert env_world() == (0, 0, 2) and not submitit_tasks()


def test_the_run_dir_timestamp_follows_the_shared_start_time(monkeypatch):
    import rlrun.core.config as config

    monkeypatch.setattr(config, "shared_start_time", 86400.0 * 365)
    assert _now("%Y-%m-%d_%H-%M-%S") == _now("%Y-%m-%d_%H-%M-%S")
    assert _now("%Y").startswith("1971")


def test_rank_seeds_are_distinct_and_the_seed_itself_on_one_process():
    assert Dist().seed(7) == 7
    seeds = {Dist(r, r, 2).seed(s) for r in (0, 1) for s in (0, 1)}
    assert len(seeds) == 4


def _wait_for_steps(run_dir_parent: Path, proc: subprocess.Popen, timeout: float = 60) -> Path:
    """The run dir once rank 0 has logged a few training steps."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        for res in run_dir_parent.glob("*/*/*/results.json"):
            try:
                if json.loads(res.read_text())["metrics"].get("losses/train"):
                    return res.parent
            except (ValueError, KeyError):
                pass
        time.sleep(0.2)
    raise AssertionError("the run did not start")


@pytest.mark.slow
def test_sigint_to_torchrun_stops_both_ranks_at_one_step_and_resume_is_exact(tmp_path):
    """Ctrl-C to the torchrun agent: every rank stops at the same step, one checkpoint, status
    interrupted; `torchrun ... rlrun resume=DIR` then ends where an uninterrupted run does
    (an MoE LM: its router losses are part of each rank's loss)."""
    # 2500 steps (~25 s): room for the signal to land mid-training on a loaded machine (with
    # 1000, CI once saw the run complete before the agent's SIGINT reached the ranks)
    args = [*TINY_LM, "algo.total_steps=2500", "algo.batch_size=4", "algo.log_every=5",
            "checkpoint_every_s=0.5", "network.ffn=mixtral", "network.n_experts=4"]  # MoE
    (tmp_path / "a").mkdir()
    proc = torchrun(args, tmp_path / "a", background=True)
    run_dir = _wait_for_steps(tmp_path / "a" / "outputs", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode != 0
    rec = read_results(run_dir)
    assert rec["status"] == "interrupted", err[-3000:]
    assert 0 < rec["steps"] < 2500
    assert err.count("rlrun: interrupted at step") == 1, err[-3000:]  # rank 0 says it
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == rec["steps"]
    # each rank saved its own batch stream and counters, at the same step
    assert [r["loop"]["counters"]["tokens"] for r in ckpt["ranks"]] == [ckpt["step"] * 128] * 2
    assert not torch.equal(*(torch.as_tensor(r["loop"]["batches"]) for r in ckpt["ranks"]))

    out = torchrun([f"resume={run_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr[:3000] + out.stderr[-1500:]
    assert read_results(run_dir)["status"] == "completed"
    (tmp_path / "b").mkdir()
    full = torchrun(args, tmp_path / "b")
    assert full.returncode == 0, full.stderr[-3000:]
    full_dir = next((tmp_path / "b" / "outputs").glob("*/*/*"))
    ref, got = params(full_dir), params(run_dir)
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    a, b = read_results(run_dir), read_results(full_dir)
    assert a["metrics"]["losses/train"]["last"] == b["metrics"]["losses/train"]["last"]


@pytest.mark.slow
def test_token_shards_train_on_two_ranks_with_per_rank_windows(tmp_path, monkeypatch):
    """`env=tokens` under torchrun: each rank draws its windows from its own `batches`
    stream (`ctx.rng`, the rank in the spawn key), so after K steps the two ranks hold the
    parameters of one process whose batches are rank 0's windows followed by rank 1's."""
    from rlrun.data import lm_data
    from rlrun.prepare import pipeline
    from rlrun.prepare.settings import Settings

    from .test_prepare import extra_docs, write_corpus

    shards = tmp_path / "shards"
    pipeline.prepare([str(write_corpus(tmp_path / "corpus", extra_docs(12)))],
                     Settings(out=str(shards), tokenizer="char", progress=False),
                     echo=lambda s: None)
    args = [*[a for a in TINY_LM if not a.startswith("env.")], "env=tokens",
            f"env.path={shards}"]
    steps, batch = 3, 4
    out = torchrun([*args, f"algo.total_steps={steps}", f"algo.batch_size={batch}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (ddp_dir,) = (tmp_path / "outputs" / "lm" / "tokens").iterdir()
    rec = read_results(ddp_dir)
    assert rec["status"] == "completed" and rec["world_size"] == 2
    ckpt = torch.load(ddp_dir / "checkpoints" / "last.pt", weights_only=True)
    assert len(ckpt["ranks"]) == 2 and "batches" in ckpt["ranks"][1]["loop"]  # per rank

    streams = [np.random.default_rng(np.random.SeedSequence(
        0, spawn_key=(zlib.crc32(b"batches"), r))) for r in (0, 1)]

    def both_ranks(self, n):
        w = np.concatenate([self.shards.windows("train", n // 2, self.block, g)
                            for g in streams])
        w = torch.from_numpy(w)
        return w[:, :-1], w[:, 1:]

    monkeypatch.setattr(lm_data.ShardData, "batch", both_ranks)
    run_train(tmp_path, [*args, f"algo.total_steps={steps}", f"algo.batch_size={2 * batch}"],
              "single")
    assert_close_params(params(ddp_dir), params(tmp_path / "single"))


@pytest.mark.slow
def test_ddpm_runs_on_two_ranks_with_one_ema_and_rank0_writing(tmp_path):
    out = torchrun(["experiment=ddpm/digits", "threads=1", "algo.total_steps=4",
                    "algo.batch_size=8", "algo.log_every=2", "algo.eval_samples=0",
                    "algo.grid_samples=4", "algo.strip_rows=2", "algo.strip_columns=2",
                    "algo.timesteps=20", "algo.sample_every=0", "logger.progress=none",
                    "checkpoint_every_s=0"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("*/*/*")
    rec = read_results(run_dir)
    assert rec["status"] == "completed" and rec["world_size"] == 2
    assert (run_dir / "samples.png").is_file()
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    ema = ckpt["loop"]["ema"]
    assert int(ema["n_averaged"]) == 4


def crash_on_rank1(tmp_path: Path, rank_var: str = "RANK") -> dict[str, str]:
    """The environment for a run whose rank 1 raises at its third batch (a bug): a
    sitecustomize that only the process with `rank_var` == 1 obeys."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(f"""
import os
if os.environ.get("{rank_var}") == "1":
    import rlrun.data.text as text
    draw, calls = text.random_batch, []

    def random_batch(*args):
        calls.append(1)
        if len(calls) > 2:
            raise ValueError("boom on rank 1")
        return draw(*args)

    text.random_batch = random_batch
""")
    path = os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_a_crashing_rank_fails_the_run_in_one_line_naming_it(tmp_path):
    """Rank 1 raises at its third batch (a bug, through a sitecustomize that only rank 1
    obeys): rank 1 says so in one line, rank 0 (whose collective then loses its peer) says
    nothing more, and results.json records rank 1's error."""
    out = torchrun([*TINY_LM, "algo.total_steps=50", "algo.batch_size=4"], tmp_path,
                   env=crash_on_rank1(tmp_path))
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("rlrun: ")]
    assert lines == ["rlrun: error: rank 1: ValueError: boom on rank 1"], out.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("*/*/*")
    rec = read_results(run_dir)
    assert rec["status"] == "failed" and rec["error"] == "rank 1: ValueError: boom on rank 1"


def test_the_resume_hint_of_a_data_parallel_run_keeps_its_number_of_processes(monkeypatch):
    from rlrun.cli import _resume_hint

    msg = "interrupted at step 5; continue with: rlrun resume=/runs/a"
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    assert _resume_hint(msg) == msg
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")  # a SLURM job: 2 nodes x 4 tasks
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    assert _resume_hint(msg).endswith(
        "continue with: torchrun --nnodes=2 --nproc_per_node=4 -m rlrun resume=/runs/a")
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun: its variables
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert _resume_hint(msg).endswith("continue with: torchrun --nproc_per_node=2 -m rlrun"
                                      " resume=/runs/a")
