"""The run context a loop receives: typed configs, logger, progress, checkpoints, stop flag.

A loop calls `ctx.tick(step, headline_value, state_fn)` once per iteration: it drives the
progress display, saves a checkpoint when one is due, refreshes `results.json` (the
heartbeat readers use to tell a live run from a killed one), and returns True when the user
asked the run to stop (SIGINT/SIGTERM), after saving one. Long evaluations that run after a
checkpoint (DDPM's final sampling) call `ctx.check_stop()` to stop at once: the checkpoint
already holds everything, and a resume redoes only what is left.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrun.core import results as results_file
from rlrun.core.checkpoint import load_checkpoint, remove_stray_temp_files, save_checkpoint
from rlrun.core.logger import Logger, LoggerConfig
from rlrun.core.progress import Progress
from rlrun.core.seeding import rng_state, set_rng_state
from rlrun.core.status import HEARTBEAT_S

StateFn = Callable[[], dict[str, Any]]


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """Raised by `RunContext.check_stop` inside a long evaluation after a checkpoint."""


@dataclass
class RunContext:
    run_dir: Path
    algo: Any  # the algorithm's validated config dataclass
    env: Any  # the task's validated config dataclass
    algo_name: str
    env_name: str
    seed: int
    device: str
    deterministic: bool
    logger_cfg: LoggerConfig
    headline: str
    network: Any = None  # the `network` config node (built by the loop once shapes are known)
    checkpoint_every_s: float = 600.0
    heartbeat_s: float = HEARTBEAT_S
    objective_tag: str | None = None  # the scalar results.json reports as `objective`
    objective_stat: str = "last"
    resuming: bool = False
    step: int = 0
    wall_time_prev_s: float = 0.0
    stop_requested: bool = False
    restoring: bool = field(default=False, init=False)  # from restore() to start_progress()
    logger: Logger = field(init=False)
    _progress: Progress | None = field(default=None, init=False)
    _last_ckpt: float = field(default=0.0, init=False)
    _last_beat: float = field(default=0.0, init=False)
    _saved_step: int | None = field(default=None, init=False)  # step of the last save
    _t0: float = field(default_factory=time.monotonic, init=False)

    def __post_init__(self) -> None:
        self._resume_state = None
        purge = None
        remove_stray_temp_files(self.checkpoint_path)  # left by a kill in mid-save
        if self.resuming:
            self._resume_state = load_checkpoint(self.checkpoint_path)
            purge = int(self._resume_state["step"]) + 1
            self._saved_step = int(self._resume_state["step"])
        self.logger = Logger(self.run_dir, self.logger_cfg, purge_step=purge)
        self._last_ckpt = self._last_beat = time.monotonic()

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    # ---- resume / checkpoint -------------------------------------------------------
    def restore(self) -> dict[str, Any] | None:
        """The loop's saved state when resuming (logger history and RNGs restored too)."""
        s = self._resume_state
        if s is None:
            return None
        self.restoring = True  # an error until start_progress() means the state did not fit
        self.logger.load_state_dict(s["logger"])
        set_rng_state(s["rng"])
        self.step = int(s["step"])
        self.wall_time_prev_s = float(s["wall_time_s"])
        return s["loop"]

    def save(self, step: int, loop_state: dict[str, Any]) -> None:
        """Write everything needed to continue exactly from `step`."""
        self.step = step
        save_checkpoint(self.checkpoint_path, {
            "step": step, "loop": loop_state, "logger": self.logger.state_dict(),
            "rng": rng_state(), "wall_time_s": self.wall_time_s,
        })
        self._saved_step = step
        self._last_ckpt = time.monotonic()
        self.write_results("running")  # the heartbeat, and how far the run got

    @property
    def has_checkpoint(self) -> bool:
        """Whether `resume=` can continue this run (a checkpoint was saved or loaded)."""
        return self._saved_step is not None

    def check_stop(self) -> None:
        """Stop now (StopRequested) if asked to and the current step is already saved."""
        if self.stop_requested and self._saved_step == self.step:
            raise StopRequested

    def write_results(self, status: str, error: str | None = None) -> dict[str, Any]:
        """Write `results.json` with the summary of every logged scalar; return it."""
        metrics = self.logger.summary()
        extra: dict[str, Any] = {"device": self.device, "headline": self.headline,
                                 "objective": None}
        tag = self.objective_tag
        if tag and tag in metrics:
            extra["objective"] = metrics[tag][self.objective_stat]
            extra["objective_metric"] = f"{tag} ({self.objective_stat})"
        if error:
            extra["error"] = error
        rec = results_file.build(algo=self.algo_name, env=self.env_name, seed=self.seed,
                                 status=status, steps=self.step, wall_time_s=self.wall_time_s,
                                 metrics=metrics, **extra)
        results_file.write(self.run_dir, rec)
        self._last_beat = time.monotonic()
        return rec

    @property
    def wall_time_s(self) -> float:
        return self.wall_time_prev_s + time.monotonic() - self._t0

    # ---- per-iteration ---------------------------------------------------------------
    def start_progress(self, total: int, start: int, unit: str = "step") -> None:
        """Show progress in `unit`s (steps, episodes, ...) from `start` to `total`."""
        self.restoring = False
        self._progress = Progress(total, start, self.headline, self.logger_cfg.progress,
                                  self.logger_cfg.print_every_s, unit)

    def tick(self, step: int, value: float | None, state_fn: StateFn) -> bool:
        self.step = step
        if self._progress is not None:
            self._progress.update(step, value)
        if self.stop_requested:
            self.save(step, state_fn())
            return True
        now = time.monotonic()
        if self.checkpoint_every_s > 0 and now - self._last_ckpt >= self.checkpoint_every_s:
            self.save(step, state_fn())
        elif now - self._last_beat >= self.heartbeat_s:
            self.write_results("running")
        return False

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.logger.close()


class StopOnSignal:
    """SIGINT/SIGTERM ask the loop to stop at its next tick; a second Ctrl-C stops at once."""

    def __init__(self, ctx: RunContext):
        self.ctx, self.old = ctx, {}

    def _handler(self, signum, frame) -> None:
        if self.ctx.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.ctx.stop_requested = True

    def __enter__(self) -> StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Outside the main thread (some launchers) no handler can be set: run without.
            with contextlib.suppress(ValueError):
                self.old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)
