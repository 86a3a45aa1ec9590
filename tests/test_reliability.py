"""Faults a run must survive: a full disk, unwritable dirs, two processes in one run dir, a
SIGKILL, Ctrl-C in awkward places, and extending a finished run with a larger budget."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from rlrun.core import status as run_status
from rlrun.core.errors import CheckpointError, ConfigError, RunIOError
from rlrun.core.run import RunContext
from rlrun.train import Interrupted, train

from .conftest import compose_cfg, interrupt, read_results, rlrun_cli, run_train

BANDIT = ["env.num_runs=50", "env.steps=400"]


# ---- liveness: what readers call a run whose process is gone ----------------------------------
def test_stale_is_a_dead_pid_on_this_host_or_an_old_heartbeat():
    host, now = socket.gethostname(), time.time()
    me = run_status.identity()
    live = {"status": "running", **me, "heartbeat": now, "heartbeat_s": 60}
    assert run_status.effective_status(live) == "running"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert run_status.effective_status({**live, "pid": dead.pid, "pid_start": None}) == "stale"
    reused = {**live, "pid_start": (me["pid_start"] or 0) + 1}  # same PID, another process
    assert run_status.effective_status(reused) == "stale"
    away = {"status": "running", "pid": 1, "host": host + "-elsewhere", "heartbeat_s": 60}
    assert run_status.effective_status({**away, "heartbeat": now - 30}) == "running"
    assert run_status.effective_status({**away, "heartbeat": now - 400}) == "stale"
    assert run_status.effective_status({**live, "status": "completed"}) == "completed"


def _wait_for(cond, timeout=60.0):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.1)


def test_one_process_per_run_dir_and_a_killed_run_is_stale_then_resumes(tmp_path):
    run_dir = tmp_path / "live"
    cmd = [sys.executable, "-m", "rlrun", "env.num_runs=300", "env.steps=30000",
           "logger.progress=none", "checkpoint_every_s=0.3", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (read_results(run_dir)["steps"] if (run_dir / "results.json")
                           .is_file() else 0) > 0)  # refreshed at a periodic checkpoint
        config = (run_dir / ".hydra" / "config.yaml").read_bytes()
        second = rlrun_cli(["seed=5", "logger.progress=none", f"hydra.run.dir={run_dir}"],
                           cwd=tmp_path)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"PID {proc.pid}" in second.stderr and "in use" in second.stderr
        assert (run_dir / ".hydra" / "config.yaml").read_bytes() == config  # untouched
        busy = rlrun_cli([f"resume={run_dir}"], cwd=tmp_path)
        assert busy.returncode == 2 and f"PID {proc.pid}" in busy.stderr
    finally:
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait()
    rec = read_results(run_dir)
    assert rec["status"] == "running" and rec["pid"] == proc.pid and rec["steps"] > 0
    assert run_status.effective_status(rec) == "stale"
    cfg = compose_cfg([f"resume={run_dir}", "logger.progress=none"])
    done = train(cfg)  # the dead process's lock is taken over
    assert done["status"] == "completed" and done["steps"] == 30000


# ---- I/O faults -------------------------------------------------------------------------------
def test_disk_full_mid_run_is_one_line_and_marks_the_run_failed(tmp_path, monkeypatch):
    """ENOSPC from the first checkpoint write on: every atomic write fails as on a full disk."""
    real_fsync = os.fsync
    full = {"on": False}

    def fsync(fd):
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    original_tick = RunContext.tick

    def tick(self, step, value, state_fn=None):
        if step >= 100:
            full["on"] = True
            self.save(step)
        return original_tick(self, step, value, state_fn)

    monkeypatch.setattr("rlrun.core.checkpoint.os.fsync", fsync)
    monkeypatch.setattr(RunContext, "tick", tick)
    with pytest.raises(RunIOError) as e:
        run_train(tmp_path, BANDIT, "full")
    msg = str(e.value)
    assert "\n" not in msg and "No space left on device" in msg and "ENOSPC" in msg
    assert str(tmp_path / "full" / "checkpoints" / "last.pt") in msg
    rec = read_results(tmp_path / "full")  # written in place when the atomic write failed
    assert rec["status"] == "failed" and "No space left" in rec["error"]
    leftovers = [p.name for p in (tmp_path / "full").rglob("*.tmp")]
    assert leftovers == []


def test_an_unwritable_run_dir_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = rlrun_cli([*BANDIT, "logger.progress=none", f"hydra.run.dir={blocker}/run"],
                    cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "I/O error" in out.stderr and str(blocker) in out.stderr
    assert "Traceback" not in out.stderr


def test_a_read_only_run_dir_is_one_line(tmp_path, monkeypatch):
    real_open = os.open

    def ro_open(path, flags, *a, **k):
        if str(path).startswith(str(tmp_path / "ro")) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *a, **k)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", ro_open)
    with pytest.raises(RunIOError, match=r"Read-only file system \(EROFS\); pick a writable"):
        run_train(tmp_path, BANDIT, "ro")


def test_an_unreadable_data_file_is_one_line(tmp_path, monkeypatch):
    from pathlib import Path

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text " * 500)
    real = Path.read_text

    def denied(self, *a, **k):
        if self == corpus:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(RunIOError) as e:
        run_train(tmp_path, ["algo=lm", "env=text_file", f"env.path={corpus}",
                             "algo.total_steps=2"], "lm")
    assert str(corpus) in str(e.value) and "Permission denied" in str(e.value)
    assert read_results(tmp_path / "lm")["status"] == "failed"


def test_stray_temp_files_of_a_killed_save_are_removed_on_resume(tmp_path, monkeypatch):
    run_dir = interrupt(tmp_path, monkeypatch, ["logger.progress=none", *BANDIT], 150, "r")
    stray = run_dir / "checkpoints" / ".last.pt.k1ll3d.tmp"
    stray.write_bytes(b"half a checkpoint")
    train(compose_cfg([f"resume={run_dir}"]))
    assert not stray.exists()


def test_a_corrupt_saved_config_is_a_one_line_resume_error(tmp_path, monkeypatch):
    run_dir = interrupt(tmp_path, monkeypatch, ["logger.progress=none", *BANDIT], 150, "r")
    (run_dir / ".hydra" / "config.yaml").write_text("algo: [unclosed\n  - : :")
    with pytest.raises(CheckpointError, match="is not a readable rlrun config") as e:
        train(compose_cfg([f"resume={run_dir}"]))
    assert "\n" not in str(e.value)


# ---- Ctrl-C -----------------------------------------------------------------------------------
def test_ctrl_c_before_any_checkpoint_does_not_offer_a_resume(tmp_path, monkeypatch):
    def tick(self, step, value, state_fn=None):
        raise KeyboardInterrupt  # a second Ctrl-C: stop at once, nothing saved

    monkeypatch.setattr(RunContext, "tick", tick)
    with pytest.raises(Interrupted) as e:
        run_train(tmp_path, BANDIT, "r")
    assert not e.value.resumable and "continue with" not in str(e.value)
    assert "start it afresh" in str(e.value)
    assert read_results(tmp_path / "r")["status"] == "interrupted"


def test_ctrl_c_at_start_up_is_one_line(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "rlrun", *BANDIT], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.6)  # importing hydra and torch: seconds
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["rlrun: interrupted before the run started;"
                                        " nothing was saved"]


# ---- extending a run ----------------------------------------------------------------------------
def _extend(run_dir, *overrides):
    return train(compose_cfg([f"resume={run_dir}", "logger.progress=none"]),
                 overrides=list(overrides))


@pytest.mark.parametrize("family", ["bandit", "td", "sac"])
def test_extending_a_completed_run_equals_a_run_with_the_larger_budget(tmp_path, family):
    if family == "bandit":
        base, key, small, large = BANDIT[:1], "env.steps", 200, 400
    elif family == "td":
        base = ["algo=q_learning", "env=cliff_walking_book", "env.num_runs=20",
                "algo.eval_every=20"]
        key, small, large = "algo.episodes", 40, 80
    else:
        base = ["env=Pendulum-v1", "algo=sac", "threads=1", "algo.learning_starts=100",
                "algo.batch_size=16", "algo.log_every=20", "algo.eval_every=100",
                "algo.eval_episodes=1", "network.hidden_sizes=[16]"]
        key, small, large = "algo.total_steps", 200, 300
    args = ["deterministic=true", *base]
    full = run_train(tmp_path, [*args, f"{key}={large}"], "full")
    first = run_train(tmp_path, [*args, f"{key}={small}"], "ext")
    assert first["status"] == "completed"
    with pytest.raises(CheckpointError, match=rf"already completed.*raise its budget \({key}"):
        _extend(tmp_path / "ext")
    extended = _extend(tmp_path / "ext", f"{key}={large}")
    for r in (full, extended):
        r["metrics"].pop("charts/SPS", None)
    assert extended["status"] == "completed" and extended["steps"] == full["steps"]
    assert extended["metrics"] == full["metrics"]


def test_resume_overrides_other_than_budgets_and_logging_are_refused(tmp_path, monkeypatch):
    run_dir = interrupt(tmp_path, monkeypatch, ["logger.progress=none", *BANDIT], 150, "r")
    with pytest.raises(ConfigError, match=r"only these keys may change: .*env\.steps") as e:
        _extend(run_dir, "algo.epsilon=0.5")
    assert "+" not in str(e.value)
    with pytest.raises(ConfigError, match="can only grow"):
        _extend(run_dir, "env.steps=100")
    done = _extend(run_dir, "logger.print_every_s=5")
    assert done["status"] == "completed" and done["steps"] == 400


def test_cli_resume_extends_without_hydra_plus_advice(tmp_path):
    run_dir = tmp_path / "r"
    out = rlrun_cli([*BANDIT, "logger.progress=none", f"hydra.run.dir={run_dir}"],
                    cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    typo = rlrun_cli([f"resume={run_dir}", "env.stepz=800"], cwd=tmp_path)
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1
    assert "only these keys may change" in typo.stderr and "+" not in typo.stderr
    more = rlrun_cli([f"resume={run_dir}", "env.steps=800", "logger.progress=none"],
                     cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    rec = json.loads((run_dir / "results.json").read_text())
    assert rec["status"] == "completed" and rec["steps"] == 800


def test_raising_the_budget_says_which_schedules_follow_it(tmp_path, caplog):
    args = ["logger.progress=none", "threads=1", "env=CartPole-v1", "algo=ppo",
            "algo.total_steps=1024", "algo.eval_episodes=1", "algo.eval_every=0"]
    run_train(tmp_path, args, "ppo")
    with caplog.at_level("WARNING", logger="rlrun"):
        done = _extend(tmp_path / "ppo", "algo.total_steps=2048")
    assert done["steps"] == 2048
    assert "algo.anneal_lr: the learning rate now anneals to 0 at the new total_steps" \
        in caplog.text


def test_real_full_and_read_only_filesystems(tmp_path):
    """On a real tmpfs (root only): a full disk mid-run, then the run dir remounted read-only
    for a resume and for a fresh run. Each is one line and exit 2; results.json says failed
    where the disk took it."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)],
                           capture_output=True)
    if mount.returncode != 0:
        pytest.skip("needs root to mount a tmpfs")
    try:
        full = rlrun_cli(["algo=lm", "algo.total_steps=200", "threads=1", "checkpoint_every_s=0",
                          "logger.progress=none", f"hydra.run.dir={mnt}/full"], cwd=tmp_path)
        assert full.returncode == 2 and full.stderr.count("\n") == 1, full.stderr
        assert "No space left on device (ENOSPC)" in full.stderr
        rec = read_results(mnt / "full")
        assert rec["status"] == "failed" and "ENOSPC" in rec["error"]
        assert list((mnt / "full").rglob("*.tmp")) == []  # no half-written file left
        subprocess.run(["rm", "-rf", str(mnt / "full")], check=True)
        ok = rlrun_cli([*BANDIT, "checkpoint_every_s=0", "logger.progress=none",
                        f"hydra.run.dir={mnt}/ro"], cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        for args in ([f"resume={mnt}/ro", "env.steps=800"],
                     [*BANDIT, f"hydra.run.dir={mnt}/fresh"]):
            out = rlrun_cli([*args, "logger.progress=none"], cwd=tmp_path)
            assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
            assert "Read-only file system (EROFS)" in out.stderr
        assert read_results(mnt / "ro")["status"] == "completed"  # left as it was
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_resumed_run_reports_its_steps_from_the_start(tmp_path, monkeypatch):
    """results.json of a resumed run says how far it got before the loop's first tick."""
    run_dir = interrupt(tmp_path, monkeypatch, ["logger.progress=none", *BANDIT], 150, "r")
    seen = {}
    original = RunContext.start_progress

    def start_progress(self, total, start, unit="step"):
        seen["steps"] = read_results(run_dir)["steps"]
        return original(self, total, start, unit)

    monkeypatch.setattr(RunContext, "start_progress", start_progress)
    train(compose_cfg([f"resume={run_dir}", "logger.progress=none"]))
    assert seen["steps"] >= 150


# ---- two runs started at the same instant in one dir ------------------------------------------
def _racer(barrier, argv, err_path, codes):
    """A child: wait at the barrier, then run the CLI's main in this (forked) process."""
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = open(fd, "w", buffering=1)  # noqa: SIM115 - not pytest's capture
    from hydra.core.global_hydra import GlobalHydra

    from rlrun import cli

    GlobalHydra.instance().clear()
    barrier.wait()
    try:
        cli.main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    codes.put((argv[0], code))


@pytest.mark.parametrize("rounds", [3, pytest.param(20, marks=pytest.mark.slow)])
def test_two_runs_started_at_once_in_one_dir_the_loser_touches_nothing(tmp_path, monkeypatch,
                                                                       rounds):
    """Two processes released by one barrier into one run dir: one runs, the other fails in
    one line and leaves nothing there (no results.json, no .hydra/, no line in rlrun.log).
    Forked from this process, with Hydra, DuckDB and TensorBoard already imported and the
    config composed once, so each round costs about a second."""
    import multiprocessing

    import duckdb  # noqa: F401 - imported before the fork: the children start warm
    import torch.utils.tensorboard  # noqa: F401
    import yaml
    from hydra._internal.hydra import Hydra

    monkeypatch.setattr(Hydra, "get_mode", lambda self, config_name, overrides: None)
    monkeypatch.setattr("sys.argv", ["rlrun"])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    compose_cfg(BANDIT)  # Hydra's plugins and config repository, found once
    mp = multiprocessing.get_context("fork")
    for i in range(rounds):
        run_dir = tmp_path / f"r{i}"
        barrier, codes = mp.Barrier(2), mp.Queue()
        procs = [mp.Process(target=_racer, args=(barrier, [
            f"seed={seed}", "env.num_runs=5", "env.steps=50", "logger.progress=none",
            "threads=1", f"hydra.run.dir={run_dir}"], tmp_path / f"err{i}_{seed}", codes))
            for seed in (1, 2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        exits = dict(codes.get(timeout=5) for _ in procs)
        assert sorted(exits.values()) == [0, 2], (i, exits)
        winner = 1 if exits["seed=1"] == 0 else 2
        loser_err = (tmp_path / f"err{i}_{3 - winner}").read_text()
        assert loser_err.count("\n") == 1 and loser_err.startswith("rlrun: error: "), loser_err
        assert "in use by" in loser_err or "already holds a run" in loser_err, loser_err
        rec = read_results(run_dir)  # the winner's own record, config and log
        assert rec["status"] == "completed" and rec["seed"] == winner, (i, rec)
        saved = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
        assert saved["seed"] == winner
        assert (tmp_path / f"err{i}_{winner}").read_text().splitlines() == \
            (run_dir / "rlrun.log").read_text().splitlines()  # the winner's lines, no others
