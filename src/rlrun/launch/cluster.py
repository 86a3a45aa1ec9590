"""A run as a SLURM job: stopped by SLURM, requeued, it continues from its checkpoint.

SLURM stops a job in two ways that rlrun can survive (docs/scaling.md):
- SIGTERM (preemption, `scontrol requeue`, `scancel --signal=TERM`, the time limit itself):
  rlrun's `StopOnSignal` saves a checkpoint and the run ends `interrupted`. When SLURM
  requeues the job (preemption with PreemptMode=REQUEUE, `scontrol requeue`), the same job
  runs again, in the same Hydra job dir.
- submitit's warning signal (SIGUSR2, `signal_delay_s` before the time limit, or sent with
  `scancel --signal=USR2`): submitit's own handler would requeue the job at once, wherever
  the loop is. `slurm_job` turns it into the same stop as SIGTERM first (checkpoint,
  `interrupted`), then hands it to submitit's handler, which requeues the job (honouring
  `hydra.launcher.max_num_timeout` for time limits) and exits.

A requeued job (SLURM_RESTART_COUNT > 0) finds its dir holding its own interrupted run, with
the same config: `slurm_job` resumes it (`resume=<dir>`) instead of refusing the dir.
Nothing here does anything outside a SLURM job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rlrun.core import distributed
from rlrun.core import results as results_file
from rlrun.core.errors import RlrunError
from rlrun.core.status import effective_status

log = logging.getLogger("rlrun")

# Statuses of a run that a requeued job continues: stopped with a checkpoint, or killed
# without a word (SIGKILL after SLURM's KillWait, a lost node). `running` too: SLURM starts
# a requeued job once its previous run has ended, perhaps on another node, before that
# node's last heartbeat is old enough to call it stale (the run dir's lock still guards it).
_RESUMABLE = ("interrupted", "stale", "running")


def restart_count() -> int:
    """How many times SLURM has requeued this job (0 outside SLURM and on the first run)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return 0
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        return 0


def requeued_run(cfg: DictConfig, run_dir: str | Path) -> bool:
    """Whether this is a requeued SLURM job whose dir holds its own run to continue: a
    resumable status, a checkpoint, and the config this job was launched with."""
    run_dir = Path(run_dir)
    if restart_count() == 0 or cfg.get("resume"):
        return False
    record = results_file.read(run_dir)
    if record is None or effective_status(record) not in _RESUMABLE:
        return False
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        return False
    try:
        saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    except (OSError, ValueError):
        return False
    ours = OmegaConf.to_container(cfg, resolve=False)
    return OmegaConf.to_container(saved, resolve=False) == ours


@contextlib.contextmanager
def job_tasks() -> Iterator[None]:
    """The tasks of a submitit job with several (`hydra.launcher.tasks_per_node` x `nodes`)
    are the ranks of one data-parallel run, as under torchrun (rlrun.core.distributed): join
    the process group, leave the job's log file to rank 0, and leave the group together.
    A rank whose peer failed first names the peer's error (submitit reports task 0's)."""
    if not distributed.submitit_tasks():
        yield
        return
    distributed.setup()
    r = distributed.rank()
    if r > 0:  # rank 0 writes the run dir, its log file included
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()
    together = False
    try:
        yield
        together = True
    except Exception as e:
        from rlrun.core.errors import Interrupted

        together = isinstance(e, Interrupted)  # every rank stopped at the same step
        if isinstance(e, RlrunError | Interrupted):
            raise
        first = distributed.first_error(f"rank {r}: {type(e).__name__}: {e}")
        if not first.startswith(f"rank {r}: "):
            raise PeerFailed(first) from e
        raise
    finally:
        distributed.teardown(together)


class PeerFailed(RuntimeError):
    """This rank lost its peers because another rank failed first (the message is its).
    submitit hands task 0's outcome to the sweep, which the CLI prints as this one line."""


def describe_uncompleted(message: str) -> str:
    """submitit's UncompletedJobError (a SLURM job that ended without a result: cancelled,
    killed, or stopped and not requeued) in one line, with what rlrun said in the job."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    out = " ".join(lines[:2])
    said = [ln[len("rlrun: "):] for ln in lines if ln.startswith("rlrun: ")]
    if said:
        out += f"; the job said: {said[-1]}"
    return out + "; the sweep's other jobs are left to run (squeue)"


class _ForwardUsr2:
    """SIGUSR2 -> SIGTERM (rlrun's stop with a checkpoint), remembered for submitit."""

    def __init__(self) -> None:
        self.pending: tuple[int, Any] | None = None

    def handler(self, signum: int, frame: Any) -> None:
        self.pending = (signum, frame)
        log.warning("SLURM's warning signal %s: checkpointing, the job will be requeued",
                    signal.Signals(signum).name)
        os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def slurm_job(cfg: DictConfig, run_dir: str | Path) -> Iterator[DictConfig]:
    """Around `train()` in a Hydra job: yields the config to train (with `resume=run_dir`
    when this requeued job continues its own run), and under submitit turns its warning
    signal into a checkpoint before submitit requeues the job."""
    with job_tasks():
        if not os.environ.get("SLURM_JOB_ID"):
            yield cfg
            return
        with _requeue_handling(cfg, run_dir) as cfg:
            yield cfg


@contextlib.contextmanager
def _requeue_handling(cfg: DictConfig, run_dir: str | Path) -> Iterator[DictConfig]:
    # Rank 0 decides for all ranks: it may already be rewriting results.json as they look.
    if distributed.from_rank0(requeued_run(cfg, run_dir) if distributed.rank() == 0 else None):
        log.info("requeued SLURM job %s (restart %d): continuing the run in %s",
                 os.environ.get("SLURM_JOB_ID"), restart_count(), run_dir)
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.resume = str(run_dir)
    forward = _ForwardUsr2()
    usr2 = signal.SIGUSR2
    old = signal.getsignal(usr2)
    submitit_handler = callable(old) and type(getattr(old, "__self__", None)).__name__ \
        == "SignalHandler"
    if submitit_handler:
        with contextlib.suppress(ValueError):  # not the main thread: leave it to submitit
            signal.signal(usr2, forward.handler)
    try:
        yield cfg
    except Exception as e:
        from rlrun.core.errors import Interrupted

        if forward.pending is not None and isinstance(e, Interrupted) and e.resumable:
            _restore(usr2, old)
            old(*forward.pending)  # submitit's handler: requeue (or not) and exit
        raise
    finally:
        if submitit_handler:
            _restore(usr2, old)


def _restore(signum: int, handler: Any) -> None:
    with contextlib.suppress(ValueError):
        signal.signal(signum, handler)
