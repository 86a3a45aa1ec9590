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
from pathlib import Path

import pytest

from rlrun.core import status as run_status
from rlrun.core.errors import CheckpointError, ConfigError, DataError, RunIOError
from rlrun.core.run import RunContext
from rlrun.train import Interrupted, train

from .conftest import (
    compose_cfg,
    interrupt,
    read_results,
    rlrun_cli,
    run_train,
    sigint_as_in_a_terminal,
)

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


@pytest.mark.slow  # tens of seconds: the slow tier (.ci/run runs it)
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
    with pytest.raises(DataError) as e:  # found by the preflight: before any run dir
        run_train(tmp_path, ["algo=lm", "env=text_file", f"env.path={corpus}",
                             "algo.total_steps=2"], "lm")
    assert str(corpus) in str(e.value) and "permission denied" in str(e.value)
    assert "\n" not in str(e.value) and not (tmp_path / "lm").exists()


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



# ---- I/O faults of the other writers: event files, scalars.parquet, PNG/JSON, the last record ---
def _disk_fails_for_event_files(monkeypatch, err, after_writes):
    """TensorBoard's file layer (called from its writer thread) raises `err` from its
    `after_writes`-th append on, as on a disk that fills up or turns read-only mid-run."""
    from tensorboard.compat.tensorflow_stub.io import gfile

    real, count = gfile.LocalFileSystem.append, {"n": 0}

    def append(self, filename, file_content, binary_mode=False):
        count["n"] += 1
        if count["n"] >= after_writes:
            raise err(filename) if callable(err) else err
        return real(self, filename, file_content, binary_mode)

    monkeypatch.setattr(gfile.LocalFileSystem, "append", append)


@pytest.mark.parametrize("fault", ["ENOSPC", "EROFS"])
def test_event_file_disk_fault_from_the_writer_thread_is_one_line(tmp_path, monkeypatch,
                                                                   capfd, fault):
    """The writer thread's error (no file named on ENOSPC; the path as bytes on EROFS) is
    raised again at the run's next write: one line naming the event file and the errno,
    results.json `failed` naming it too, and no traceback from the thread."""
    if fault == "ENOSPC":
        err = OSError(errno.ENOSPC, "No space left on device")
    else:
        def err(filename):
            return OSError(errno.EROFS, "Read-only file system", os.fsencode(filename))
    _disk_fails_for_event_files(monkeypatch, err, after_writes=20)
    with pytest.raises(RunIOError) as e:
        run_train(tmp_path, ["env.num_runs=10", "env.steps=3000"], "tb")
    msg = str(e.value)
    events = next((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert "\n" not in msg and f"I/O error on {events}: " in msg and f"({fault})" in msg
    assert "b'" not in msg
    rec = read_results(tmp_path / "tb")
    assert rec["status"] == "failed" and rec["error"] == msg and 0 < rec["steps"] < 3000
    err_out = capfd.readouterr().err
    assert "Traceback" not in err_out and "Exception in thread" not in err_out, err_out


def test_scalars_parquet_duckdb_io_error_is_one_line(tmp_path, monkeypatch):
    """DuckDB's IOException is no OSError: it still ends the run in one line naming
    scalars.parquet and its errno (a real one here: DuckDB asked to write under a file)."""
    from rlrun.core import scalars

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(scalars, "_quote", lambda path: f"{blocker}/x.parquet")
    with pytest.raises(RunIOError) as e:
        run_train(tmp_path, [*BANDIT, "checkpoint_every_s=0"], "pq")
    msg = str(e.value)
    path = tmp_path / "pq" / "scalars.parquet"
    assert msg == f"I/O error on {path}: Not a directory (ENOTDIR)"
    rec = read_results(tmp_path / "pq")
    assert rec["status"] == "failed" and rec["error"] == msg
    assert [p.name for p in (tmp_path / "pq").glob(".*.tmp")] == []


def test_duckdb_disk_full_message_names_the_errno():
    """The IOException DuckDB raised on a full 2 MB tmpfs (issue 22), verbatim."""
    import duckdb

    from rlrun.core.errors import describe_os_error, os_error_at

    e = duckdb.IOException(
        'IO Error: Async write failed for range [offset=0, size=140]: {"exception_type":"IO",'
        '"exception_message":"Could not write file \\"/mnt/run/tmp_.scalars.parquet.awpmjq6r'
        '.tmp\\": No space left on device","errno":"28"}')
    assert describe_os_error(os_error_at(e, "/mnt/run/scalars.parquet")) == (
        "I/O error on /mnt/run/scalars.parquet: No space left on device (ENOSPC);"
        " free some space")


def _full_disk_for_atomic_writes(monkeypatch):
    real = os.fsync

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("rlrun.core.checkpoint.os.fsync", fsync)
    return real


def test_png_npy_gif_and_json_writers_name_the_file_on_a_full_disk(tmp_path, monkeypatch):
    import numpy as np

    from rlrun.algos.ddpm import save_npy, save_png
    from rlrun.core.checkpoint import atomic_write_json
    from rlrun.core.logger import Logger, LoggerConfig

    _full_disk_for_atomic_writes(monkeypatch)
    log = Logger(tmp_path, LoggerConfig(tensorboard=False, video_files=True))
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    for path, write in (
            (tmp_path / "samples.png", lambda p: save_png(np.zeros((3, 4, 4)), p)),
            (tmp_path / "class_counts.npy", lambda p: save_npy(p, np.arange(3))),
            (tmp_path / "videos" / "eval_video_7.gif", lambda p: log.video("eval/video",
                                                                         frames, 7)),
            (tmp_path / "eval.json", lambda p: atomic_write_json(p, {"a": 1}))):
        with pytest.raises(OSError) as e:
            write(path)
        assert (e.value.errno, e.value.filename) == (errno.ENOSPC, str(path))
        assert not path.exists() and list(tmp_path.rglob("*.tmp")) == []


def test_rlrun_eval_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    from rlrun.eval import main as eval_main

    run_train(tmp_path, ["threads=1", "algo=ppo", "algo.total_steps=256", "algo.num_steps=32",
                         "env.num_envs=4", "algo.eval_every=0", "algo.eval_episodes=1"], "p")
    _full_disk_for_atomic_writes(monkeypatch)
    with pytest.raises(SystemExit) as e:
        eval_main([str(tmp_path / "p"), "episodes=1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err == (
        f"rlrun-eval: error: I/O error on {tmp_path / 'p' / 'eval.json'}: No space left on"
        " device (ENOSPC); free some space\n")


def test_the_last_record_failing_is_the_runs_error_and_never_an_unbound_name(tmp_path,
                                                                            monkeypatch):
    """The final results.json (or scalars.parquet) refused: with no error of the run's own,
    that is the error (one line, exit 2); with one, the run's own error wins."""
    from rlrun.core import results as results_file
    from rlrun.core.errors import NonFiniteError

    real = results_file.write

    def refuse_the_end(run_dir, record):
        if record["status"] != "running":
            raise OSError(errno.EROFS, "Read-only file system",
                          str(tmp_path / "r" / "results.json"))
        return real(run_dir, record)

    monkeypatch.setattr(results_file, "write", refuse_the_end)
    with pytest.raises(RunIOError, match=r"results.json: Read-only file system \(EROFS\)"):
        run_train(tmp_path, BANDIT, "r")
    original_tick = RunContext.tick

    def diverge(self, step, value, state_fn=None):
        if step >= 100:
            raise NonFiniteError("losses/x became nan at step 100")
        return original_tick(self, step, value, state_fn)

    monkeypatch.setattr(RunContext, "tick", diverge)
    with pytest.raises(NonFiniteError, match="became nan"):
        run_train(tmp_path, BANDIT, "r2")


def test_objective_null_is_the_algorithms_own_objective(tmp_path):
    res = run_train(tmp_path, [*BANDIT, "objective=null"], "r")
    assert res["status"] == "completed" and res["objective"] is not None


def test_a_log_file_on_a_full_disk_is_dropped_without_a_traceback(tmp_path, capfd):
    import logging

    from rlrun.core.logger import quiet_log_files

    handler = logging.FileHandler(tmp_path / "rlrun.log")

    class Full:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def close(self):
            pass

    handler.stream.close()
    handler.stream = Full()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        quiet_log_files()
        logging.getLogger("rlrun").error("first line")
        logging.getLogger("rlrun").error("second line")
        assert handler not in root.handlers
        assert "Logging error" not in capfd.readouterr().err
    finally:
        if handler in root.handlers:
            root.removeHandler(handler)


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
    """Ctrl-C while rlrun imports Hydra and torch (seconds): the signal goes once the process
    maps libyaml's extension (Hydra's import, inside `main`)."""
    proc = subprocess.Popen([sys.executable, "-m", "rlrun", *BANDIT], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_in_a_terminal)
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.monotonic() + 60
    while "_yaml" not in maps.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    # 130, or killed by SIGINT after its line (2 in 60 loaded tries here, once in CI; cause
    # not found): a shell reports both as status 130, an interrupted command
    assert proc.returncode in (130, -signal.SIGINT), err
    assert err.strip().splitlines() == ["rlrun: interrupted before the run started;"
                                        " nothing was saved"]


def test_ctrl_c_in_the_preflight_leaves_no_run_dir(tmp_path, monkeypatch, capfd):
    """Ctrl-C after Hydra made the run dir but before the run started (the preflight and its
    imports): "nothing was saved" holds for the disk too, as for a preflight error, so a later
    `resume=` of that dir is not offered an empty run."""
    from hydra.core.global_hydra import GlobalHydra

    from rlrun import cli, preflight

    def interrupted(cfg, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(preflight, "preflight", interrupted)
    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as e:
        cli.main([*BANDIT, "hydra.run.dir=outputs/r", "logger.progress=none"])
    GlobalHydra.instance().clear()
    assert e.value.code == 130
    assert capfd.readouterr().err.strip().splitlines()[-1] == (
        "rlrun: interrupted before the run started; nothing was saved")
    assert not (tmp_path / "outputs").exists()


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


@pytest.mark.slow  # tens of seconds: the slow tier (.ci/run runs it)
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


@pytest.mark.slow  # tens of seconds: the slow tier (.ci/run runs it)
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



@pytest.mark.slow  # two console-script runs: about 20 s on 2 loaded cores
def test_real_event_files_on_a_full_tmpfs_and_a_read_only_bind_mount_mid_run(tmp_path):
    """Issue 22's two trials (root only): `rlrun algo=ucb env.steps=300000 env.num_runs=10`
    into a small tmpfs, where TensorBoard's event file is what fills the disk, and into a dir
    bind-mounted read-only over itself mid-run. Each ends in one line naming the file and the
    errno, exit 2, no traceback, and results.json says `failed` with that error; in the
    read-only case it still reaches the disk (through the dir's descriptor), not `running`."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a tmpfs")
    ucb = ["algo=ucb", "env.steps=300000", "env.num_runs=10", "logger.progress=none"]
    try:
        full = rlrun_cli([*ucb, f"hydra.run.dir={mnt}/run"], cwd=tmp_path)
        assert full.returncode == 2 and full.stderr.count("\n") == 1, full.stderr
        assert "No space left on device (ENOSPC)" in full.stderr
        assert "Traceback" not in full.stdout + full.stderr, full.stdout
        rec = read_results(mnt / "run")
        assert rec["status"] == "failed" and rec["error"] in full.stderr
        assert f"I/O error on {mnt / 'run'}/" in rec["error"]
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    ro = tmp_path / "ro"
    ro.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "rlrun", *ucb, f"hydra.run.dir={ro}/run"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    bound = mounted = False
    try:
        _wait_for(lambda: any((ro / "run").glob("events.out.tfevents.*")))
        time.sleep(0.5)  # training, writing events
        bound = subprocess.run(["mount", "--bind", str(ro), str(ro)]).returncode == 0
        for _ in range(100 if bound else 0):
            # EBUSY while the run holds a file it opened through the new mount for writing
            # (a checkpoint's temp file between the two mounts): try again a moment later
            if subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)],
                              capture_output=True).returncode == 0:
                mounted = True
                break
            time.sleep(0.02)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait(timeout=60)  # its open files would keep the mount busy
        if bound and subprocess.run(["umount", str(ro)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(ro)], capture_output=True)  # never leave it
    assert mounted
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert "Read-only file system (EROFS)" in err and "b'" not in err
    assert "Traceback" not in out + err, out
    rec = read_results(ro / "run")
    assert rec["status"] == "failed" and rec["error"] in err and rec["steps"] > 0


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


@pytest.mark.parametrize("rounds", [2, pytest.param(20, marks=pytest.mark.slow)])
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


# ---- Ctrl-C in the middle of an evaluation --------------------------------------------------
EVAL_RUNS = {  # two evaluations: at 512 (interrupted) and at the end
    "ppo": ["algo=ppo", "algo.total_steps=1024", "algo.num_steps=64", "env.num_envs=4",
            "algo.update_epochs=2", "algo.eval_every=512"],
    "dqn": ["algo=dqn", "algo.total_steps=1024", "algo.learning_starts=200",
            "algo.train_frequency=4", "algo.gradient_steps=1", "algo.batch_size=16",
            "algo.eval_every=512", "algo.eval_epsilon=0.3",  # its evaluation RNG, too
            "network.hidden_sizes=[16]"],
}


def _sigint_in_evaluation(monkeypatch, at_steps):
    """A real SIGINT during the evaluations' env steps number `at_steps` (counted over
    evaluations, first copy); records how many env steps and policy calls came after it."""
    from rlrun.rl import evaluation

    seen = {"steps": 0, "after": 0, "calls_after": 0, "fired": False}
    play = evaluation.Evaluator.play

    def signalled_play(self, policy, obs_transform=None, stop=None):
        def counted_policy(obs):
            seen["calls_after"] += seen["fired"]
            return policy(obs)

        for env in self.envs:
            if not hasattr(env, "real_step"):
                env.real_step = env.step

                def step(action, env=env):
                    seen["after"] += seen["fired"]
                    if env is self.envs[0]:
                        seen["steps"] += 1
                        if seen["steps"] in at_steps:
                            seen["fired"] = True
                            signal.raise_signal(signal.SIGINT)  # the handler: stop_requested
                    return env.real_step(action)

                env.step = step
        return play(self, counted_policy, obs_transform, stop)

    monkeypatch.setattr(evaluation.Evaluator, "play", signalled_play)
    return seen


def _eval_points(run_dir):
    import duckdb

    return duckdb.sql(f"SELECT step, value FROM '{run_dir / 'scalars.parquet'}' WHERE tag ="
                      " 'eval/return' ORDER BY step").fetchall()


@pytest.mark.parametrize("algo", ["ppo", pytest.param("dqn", marks=pytest.mark.slow)])
def test_ctrl_c_in_an_evaluation_stops_within_a_step_and_the_resume_redoes_it(
        tmp_path, monkeypatch, algo):
    args = ["threads=1", "deterministic=true", "algo.eval_episodes=3", *EVAL_RUNS[algo]]
    whole = run_train(tmp_path, args, "whole")
    seen = _sigint_in_evaluation(monkeypatch, {4})
    with pytest.raises(Interrupted, match="continue with") as e:
        run_train(tmp_path, args, "cut")
    assert seen["calls_after"] == 0  # no policy call after the signal: stopped in that step
    assert seen["after"] < 3  # the copies still to step in that one batched step, no more
    run_dir = tmp_path / "cut"
    rec = read_results(run_dir)
    assert rec["status"] == "interrupted" and e.value.step == rec["steps"] == 512
    assert "eval/return" not in rec["metrics"]  # the partial evaluation is not logged
    from rlrun.core.checkpoint import load_checkpoint

    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["pending_evaluation"] == 512
    # Ctrl-C again while the resume redoes it: stopped again, still to be redone
    seen = _sigint_in_evaluation(monkeypatch, {seen["steps"] + 2})
    with pytest.raises(Interrupted):
        train(compose_cfg([f"resume={run_dir}"]))
    assert seen["calls_after"] == 0
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["pending_evaluation"] == 512
    monkeypatch.undo()
    done = train(compose_cfg([f"resume={run_dir}"]))
    for r in (whole, done):
        r["metrics"].pop("charts/SPS")
    assert done["metrics"] == whole["metrics"] and done["steps"] == whole["steps"]
    assert _eval_points(run_dir) == _eval_points(tmp_path / "whole")  # 512 redone, exactly
    assert [s for s, _ in _eval_points(run_dir)] == [512, 1024]


@pytest.mark.parametrize("library", ["swallows", "turns_into_an_error"])
def test_ctrl_c_that_a_library_mishandles_at_start_up_still_stops(tmp_path, monkeypatch, capfd,
                                                                   library):
    """A start-up Ctrl-C that an import swallows (`except BaseException`) or turns into another
    error (omegaconf's clean-up of a half-built node raised AttributeError; seen in CI, where
    the job then ran to its end): still one line, exit 130, no run dir."""
    import signal

    from hydra.core.global_hydra import GlobalHydra

    from rlrun import cli, preflight

    real = preflight.preflight

    def mishandled(cfg, **kwargs):
        try:
            signal.raise_signal(signal.SIGINT)
        except BaseException:
            if library == "turns_into_an_error":
                raise AttributeError("'NoneType' object has no attribute 'x'") from None
        return real(cfg, **kwargs)

    monkeypatch.setattr(preflight, "preflight", mishandled)
    monkeypatch.chdir(tmp_path)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh process
    GlobalHydra.instance().clear()
    try:
        with pytest.raises(SystemExit) as e:
            cli.main([*BANDIT, "hydra.run.dir=outputs/r", "logger.progress=none"])
    finally:
        GlobalHydra.instance().clear()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        signal.signal(signal.SIGINT, old)
    assert e.value.code == 130
    assert capfd.readouterr().err.strip().splitlines() == [
        "rlrun: interrupted before the run started; nothing was saved"]
    assert not (tmp_path / "outputs").exists()
