"""The run context a loop receives: typed configs, logger, progress, checkpoints, stop flag.

A loop calls `ctx.tick(step, headline_value, state_fn)` once per iteration: it drives the
progress display, saves a checkpoint when one is due, and returns True when the user asked
the run to stop (SIGINT/SIGTERM), after saving one.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrun.core.checkpoint import load_checkpoint, save_checkpoint
from rlrun.core.logger import Logger, LoggerConfig
from rlrun.core.progress import Progress
from rlrun.core.seeding import rng_state, set_rng_state

StateFn = Callable[[], dict[str, Any]]


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
    resuming: bool = False
    step: int = 0
    wall_time_prev_s: float = 0.0
    stop_requested: bool = False
    restoring: bool = field(default=False, init=False)  # from restore() to start_progress()
    logger: Logger = field(init=False)
    _progress: Progress | None = field(default=None, init=False)
    _last_ckpt: float = field(default=0.0, init=False)
    _t0: float = field(default_factory=time.monotonic, init=False)

    def __post_init__(self) -> None:
        self._resume_state = None
        purge = None
        if self.resuming:
            self._resume_state = load_checkpoint(self.checkpoint_path)
            purge = int(self._resume_state["step"]) + 1
        self.logger = Logger(self.run_dir, self.logger_cfg, purge_step=purge,
                             checkpoint=self.checkpoint_path)
        self._last_ckpt = time.monotonic()

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
        self._last_ckpt = time.monotonic()

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
        if self.checkpoint_every_s > 0 and (
            time.monotonic() - self._last_ckpt >= self.checkpoint_every_s
        ):
            self.save(step, state_fn())
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
