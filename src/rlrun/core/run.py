"""The run context a loop receives, and the loop contract: our loops and plugins use it alike.

    def run(ctx):                                   # the whole loop, top to bottom
        rng = ctx.rng("actions")                    # a named stream of the run's seed
        ... build envs, networks, optimisers from ctx.algo / ctx.env / ctx.network ...
        obs, _ = envs.reset(seed=ctx.seed_of("envs"))
        ctx.track(net=net, opt=opt, rng=rng, envs=envs)  # what a checkpoint holds
        if (resumed := ctx.resume()):               # on resume=: all of it loaded back
            obs = resumed.obs                       # the envs' live observation
        ctx.start_progress(cfg.total_steps)         # from ctx.step (0, or where it stopped)
        while ctx.step < cfg.total_steps:
            ... one iteration; ctx.logger.scalar("losses/x", v, step) ...
            if ctx.every("eval", cfg.eval_every):   # a cadence, resumed exactly
                evaluate()
            if ctx.tick(step, headline_value):      # progress, checkpoints, Ctrl-C
                break
        ctx.finish(final=evaluate_at_the_end, close=(envs,))

The context also carries the typed configs, the logger, the device and the seed.

- `ctx.step` is the one step counter: `tick(step, ...)` sets it, a checkpoint saves it,
  `resume()` restores it.
- `ctx.rng(name)` is a NumPy Generator for the named stream: the child of
  `SeedSequence(seed)` with spawn key `(crc32(name), rank)`, which is how
  `SeedSequence.spawn` keys its children, so streams are independent of each other, of the
  order they are made in, and of other ranks'. `ctx.seed_of(name)` is an integer from the
  same stream, for APIs that take a seed (Gymnasium's `reset(seed=...)`, torch generators).
- `ctx.every(name, interval)` is True when `ctx.step` reaches the cadence's next point
  (`interval`, `2 * interval`, ...; never for 0); the next points are saved with the
  checkpoint.
- `ctx.record(**items)` adds keys to `results.json` (e.g. where the weights came from:
  `init_from`); they go into checkpoints too, so a resumed run keeps them.
- `ctx.track(**items)` declares what a checkpoint holds (`rlrun.core.state`). In a
  data-parallel run, items with a `state_dict` are taken to be the same on every rank
  (networks, optimisers) and saved once; `ctx.track_per_rank(**items)` declares those each
  rank holds its own of (replay buffers, env adapters), saved and resumed per rank. RNGs and
  plain counters are always per rank.

A loop calls `ctx.tick(step, headline_value)` once per iteration: it drives the progress
display, saves a checkpoint when one is due, refreshes `results.json` (the heartbeat readers
use to tell a live run from a killed one), and returns True when the user asked the run to
stop (SIGINT/SIGTERM), after saving one. Long evaluations that run after a checkpoint
(DDPM's final sampling) call `ctx.check_stop()` to stop at once: the checkpoint already holds
everything, and a resume redoes only what is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrun.core import results as results_file
from rlrun.core import state as tracked_state
from rlrun.core.checkpoint import load_checkpoint, remove_stray_temp_files, save_checkpoint
from rlrun.core.distributed import Dist
from rlrun.core.errors import CheckpointError
from rlrun.core.logger import (
    ALWAYS_MINIMIZED,
    Logger,
    LoggerConfig,
    lower_is_better,
    quiet_log_files,
)
from rlrun.core.progress import Progress
from rlrun.core.scalars import SCALARS_FILE, write_scalars
from rlrun.core.seeding import rng_state, set_rng_state
from rlrun.core.status import HEARTBEAT_S

StateFn = Callable[[], dict[str, Any]]
# results.json keys that rlrun writes itself (ctx.record may not replace them)
RESERVED_RESULT_KEYS = frozenset({
    "algo", "env", "seed", "status", "steps", "wall_time_s", "metrics", "device", "headline",
    "objective", "objective_metric", "objective_mode", "objectives", "minimize", "world_size",
    "error", "pid", "pid_start", "host", "heartbeat", "heartbeat_s"})


class Resumed:
    """What `ctx.resume()` hands back when it loaded a checkpoint (falsy when it did not):
    the step it continues from, and `obs`, the live observation of the tracked envs (the
    saved one where their state came back, else their fresh reset's)."""

    def __init__(self, resumed: bool, step: int, obs: Any = None):
        self.resumed, self.step, self.obs = resumed, step, obs

    def __bool__(self) -> bool:
        return self.resumed


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
    minimize: tuple[str, ...] = ()  # tags the algorithm minimises (its schema's `minimize`)
    also_report: tuple[str, ...] = ()  # reported beside the objective (its spec's)
    resuming: bool = False
    step: int = 0
    wall_time_prev_s: float = 0.0
    stop_requested: bool = False
    dist: Dist = field(default_factory=Dist)  # rank and world size under torchrun
    stop_at: Callable[[int], bool] | None = None  # stop as Ctrl-C would (rlrun.testing)
    restoring: bool = field(default=False, init=False)  # from restore() to start_progress()
    logger: Logger = field(init=False)
    _progress: Progress | None = field(default=None, init=False)
    _last_ckpt: float = field(default=0.0, init=False)
    _last_beat: float = field(default=0.0, init=False)
    _saved_step: int | None = field(default=None, init=False)  # step of the last save
    _t0: float = field(default_factory=time.monotonic, init=False)
    _tracked: dict[str, Any] = field(default_factory=dict, init=False)
    _per_rank: set[str] = field(default_factory=set, init=False)  # track_per_rank's names
    _due: dict[str, int] = field(default_factory=dict, init=False)  # ctx.every's next points
    _scalars_points: int = field(default=-1, init=False)  # points in the last scalars.parquet
    finished: bool = field(default=False, init=False)  # finish() ran to its end
    # the step of an evaluation that Ctrl-C cut short: saved with the checkpoint of that
    # step, redone on resume (rlrun.rl.evaluation)
    pending_evaluation: int | None = field(default=None, init=False)
    _resume_hooks: list[Callable[[], None]] = field(default_factory=list, init=False)
    _record: dict[str, Any] = field(default_factory=dict, init=False)  # ctx.record's keys

    def __post_init__(self) -> None:
        self._resume_state = None
        purge = None
        if self.dist.is_main:  # what a kill in mid-save left behind
            for path in (self.checkpoint_path, self.run_dir / results_file.NAME,
                         self.run_dir / SCALARS_FILE):
                remove_stray_temp_files(path)
        else:  # rank 0 alone writes event files and shows progress
            self.logger_cfg = dataclasses.replace(self.logger_cfg, tensorboard=False,
                                                  progress="none", video=False)
        if self.resuming:
            self._resume_state = load_checkpoint(self.checkpoint_path)
            saved_world = int(self._resume_state.get("world_size", 1))
            if saved_world != self.dist.world_size:
                raise CheckpointError(
                    f"resume={self.run_dir}: it was trained by {saved_world} process(es) and"
                    f" this launch has {self.dist.world_size}; resume it with the same number"
                    " (torchrun --nproc_per_node=...): each rank's data stream depends on it")
            purge = int(self._resume_state["step"]) + 1
            self._saved_step = self.step = int(self._resume_state["step"])
            self.wall_time_prev_s = float(self._resume_state["wall_time_s"])
        self.logger = Logger(self.run_dir, self.logger_cfg, purge_step=purge,
                             checkpoint=self.checkpoint_path, minimize=self.minimize)
        quiet_log_files()  # a full disk: the run's one error line, not a traceback per log line
        self._last_ckpt = self._last_beat = time.monotonic()

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    # ---- the loop contract: declare state, resume, tick, finish ----------------------
    def track(self, **items: Any) -> None:
        """Declare, by name, what a checkpoint holds (see `rlrun.core.state` for the kinds:
        modules, optimisers, buffers, RNGs, tensors, dicts of counters). Call it before
        `resume()`; a later call adds to the set."""
        for name, item in items.items():
            tracked_state.check_trackable(name, item)
        self._tracked.update(items)

    def track_per_rank(self, **items: Any) -> None:
        """Like `track`, for items each rank of a data-parallel run holds its own of (replay
        buffers, env adapters): saved for every rank, and each rank resumes its own. Outside
        torchrun the same as `track`."""
        self.track(**items)
        self._per_rank.update(items)

    def record(self, **items: Any) -> None:
        """Add keys (JSON values) to results.json, after the contract's own, which they may
        not replace; saved with checkpoints, so a resumed run's record keeps them."""
        taken = sorted(set(items) & RESERVED_RESULT_KEYS)
        if taken:
            raise ValueError(f"ctx.record({', '.join(taken)}=...): results.json's own keys")
        self._record.update(items)

    def rng(self, name: str) -> Any:
        """The named random stream of this run (a NumPy Generator; see the module docstring)."""
        import numpy as np

        return np.random.default_rng(self._seed_sequence(name))

    def seed_of(self, name: str) -> int:
        """An integer seed from the named stream, for APIs that take one."""
        import numpy as np

        return int(self._seed_sequence(name).generate_state(1, np.uint32)[0])

    def _seed_sequence(self, name: str) -> Any:
        import numpy as np

        return np.random.SeedSequence(self.seed, spawn_key=(zlib.crc32(name.encode()),
                                                             self.dist.rank))

    def every(self, name: str, interval: int, step: int | None = None) -> bool:
        """True when `step` (default `ctx.step`) has reached this cadence's next point:
        `interval`, then every `interval` steps (an interval of 0 is never due). The next
        points go into checkpoints, so a resumed run keeps the cadence."""
        if interval <= 0:
            return False
        step = self.step if step is None else step
        due = self._due.setdefault(name, interval)
        if step < due:
            return False
        self._due[name] = due + interval * ((step - due) // interval + 1)
        return True

    def resume(self) -> Resumed:
        """On `resume=`, load every tracked item (and the logger's history, the global RNGs
        and the `every` cadences) from the checkpoint: a truthy `Resumed` when it did. A
        checkpoint that does not fit the tracked items (another version, another network)
        becomes a one-line error."""
        saved = self.restore()
        if saved is None:
            return Resumed(False, self.step, self._live_obs())
        missing = sorted(set(self._tracked) - set(saved))
        if missing:
            raise KeyError(f"the checkpoint lacks {', '.join(missing)}")
        if self.dist.enabled:  # this rank's own RNGs and counters (see save())
            saved = {**saved, **self._resume_state["ranks"][self.dist.rank]["loop"]}
        for name, item in self._tracked.items():
            loaded = tracked_state.load(item, saved[name], name)
            if loaded is not item and not isinstance(item, tuple):
                raise ValueError(f"{name}: the checkpoint's value does not fit this run's")
        self.restoring = False
        for hook in self._resume_hooks:
            hook()
        if self.pending_evaluation is not None:  # no evaluator of this loop took it
            self.pending_evaluation = None
        return Resumed(True, self.step, self._live_obs())

    def _live_obs(self) -> Any:
        """The live observation of a tracked env adapter (an item with `last_obs`), if any."""
        for item in self._tracked.values():
            if hasattr(item, "last_obs"):
                return item.last_obs
        return None

    def on_resume(self, hook: Callable[[], None]) -> None:
        """Call `hook()` once `resume()` has loaded everything (an evaluator redoes there
        the evaluation that Ctrl-C cut short)."""
        self._resume_hooks.append(hook)

    def state_dict(self) -> dict[str, Any]:
        """The tracked items in checkpoint form."""
        return {name: tracked_state.dump(item) for name, item in self._tracked.items()}

    def finish(self, final: Callable[[], None] | None = None, close: tuple = ()) -> None:
        """The end of a loop, in one call: save a checkpoint (unless the last tick just did),
        then, unless the user asked to stop, run `final` (an end-of-run evaluation or
        summary; it may call `check_stop()`), then close `close` (envs, evaluators).

        The checkpoint comes before `final`, so Ctrl-C during it loses nothing, a resume
        of such a run does only `final`, and a resume with a larger budget continues
        training from the checkpoint and runs `final` once, at the new end."""
        try:
            if self._saved_step != self.step or not self.has_checkpoint:
                # scalars.parquet waits for the run's last record (completed, interrupted or
                # failed), written right after `final`: one write holding `final`'s points
                # too, not one here and another there (a bandit run: 25 ms each)
                self.save(self.step, scalars=False)
            if not self.stop_requested:
                if final is not None and self.dist.is_main:  # evaluation: rank 0 alone
                    final()
                self.finished = True
        finally:
            for c in close:
                c.close()

    # ---- resume / checkpoint -------------------------------------------------------
    def restore(self) -> dict[str, Any] | None:
        """The loop's saved state when resuming (logger history and RNGs restored too)."""
        s = self._resume_state
        if s is None:
            return None
        self.restoring = True  # an error until start_progress() means the state did not fit
        self.logger.load_state_dict(s["logger"])
        set_rng_state(s["ranks"][self.dist.rank]["rng"] if self.dist.enabled else s["rng"])
        self.pending_evaluation = s.get("pending_evaluation")
        self.step = int(s["step"])
        self.wall_time_prev_s = float(s["wall_time_s"])
        self._due = {str(k): int(v) for k, v in (s.get("due") or {}).items()}
        self._record.update(s.get("record") or {})
        return s["loop"]

    def save(self, step: int, loop_state: dict[str, Any] | None = None,
             scalars: bool = True) -> None:
        """Write everything needed to continue exactly from `step` (the tracked items,
        unless a `loop_state` is given); `scalars`: scalars.parquet too."""
        self.step = step
        if loop_state is None:
            loop_state = self.state_dict()
        extra: dict[str, Any] = {}
        if self.dist.enabled:
            # Networks and optimisers are the same on every rank (DDP); RNGs and counters
            # (anything without a state_dict) are each rank's own: rank 0 saves them all.
            own = [n for n, item in self._tracked.items() if n in loop_state and (
                n in self._per_rank or not tracked_state.shared(item))]
            ranks = self.dist.gather({"rng": rng_state(),
                                      "loop": {n: loop_state[n] for n in own}})
            if not self.dist.is_main:
                self._saved_step, self._last_ckpt = step, time.monotonic()
                return
            extra = {"world_size": self.dist.world_size, "ranks": ranks}
        if self.pending_evaluation is not None:
            extra["pending_evaluation"] = self.pending_evaluation
        save_checkpoint(self.checkpoint_path, {
            "step": step, "loop": loop_state, "logger": self.logger.state_dict(),
            "rng": rng_state(), "wall_time_s": self.wall_time_s, "due": dict(self._due),
            **({"record": dict(self._record)} if self._record else {}), **extra,
        })
        self._saved_step = step
        self._last_ckpt = time.monotonic()
        self.write_results("running")  # the heartbeat, and how far the run got
        if scalars:
            self._write_scalars()  # scalars.parquet, for reports

    @property
    def has_checkpoint(self) -> bool:
        """Whether `resume=` can continue this run (a checkpoint was saved or loaded)."""
        return self._saved_step is not None

    def check_stop(self) -> None:
        """Stop now (StopRequested) if asked to and the current step is already saved."""
        if self.stop_requested and self._saved_step == self.step:
            raise StopRequested

    def write_results(self, status: str, error: str | None = None,
                      scalars: bool = True) -> dict[str, Any]:
        """Write `results.json` with the summary of every logged scalar; return it.
        Under torchrun rank 0 writes it; the others return {}.

        At the end (any status but `running`) scalars.parquet is written first (unless
        `scalars=False`), so a record that says `completed` never outlives a failed
        scalars file: a disk fault there raises before the record is written."""
        if not self.dist.is_main:
            return {}
        metrics = self.logger.summary()
        extra: dict[str, Any] = {"device": self.device, "headline": self.headline,
                                 "objective": None}
        tag = self.objective_tag
        if tag and tag in metrics:
            extra["objective"] = metrics[tag][self.objective_stat]
            extra["objective_metric"] = f"{tag} ({self.objective_stat})"
        if tag:  # the declared direction, for sweepers and reports (no guessing by name)
            extra["objective_mode"] = "min" if lower_is_better(tag, self.minimize) else "max"
            # what rlrun-report summarises by default: the objective, then the spec's others
            extra["objectives"] = list(dict.fromkeys([tag, *self.also_report]))
        extra["minimize"] = [*ALWAYS_MINIMIZED, *self.minimize]
        if self.dist.enabled:
            extra["world_size"] = self.dist.world_size
        if error:
            extra["error"] = error
        extra.update({k: v for k, v in self._record.items() if k not in extra})
        rec = results_file.build(algo=self.algo_name, env=self.env_name, seed=self.seed,
                                 status=status, steps=self.step, wall_time_s=self.wall_time_s,
                                 metrics=metrics, **extra)
        if status != "running" and scalars:
            self._write_scalars()
        results_file.write(self.run_dir, rec)
        self._last_beat = time.monotonic()
        return rec

    def _write_scalars(self) -> None:
        """scalars.parquet, unless it already holds every point logged (the end of a run
        saves a checkpoint, then writes results: one write, not two)."""
        points = sum(len(v) for v in self.logger.series.values())
        if points != self._scalars_points:
            write_scalars(self.run_dir, self.logger.history())
            self._scalars_points = points

    @property
    def wall_time_s(self) -> float:
        return self.wall_time_prev_s + time.monotonic() - self._t0

    # ---- per-iteration ---------------------------------------------------------------
    def start_progress(self, total: int, start: int | None = None, unit: str = "step") -> None:
        """Show progress in `unit`s (steps, episodes, ...) from `start` (default `ctx.step`)
        to `total`."""
        self.restoring = False
        self._progress = Progress(total, self.step if start is None else start, self.headline,
                                  self.logger_cfg.progress, self.logger_cfg.print_every_s, unit)

    def tick(self, step: int, value: float | None, state_fn: StateFn | None = None) -> bool:
        """Once per iteration: progress, a checkpoint when due, the heartbeat. True when the
        user asked to stop (a checkpoint has then been saved): the loop breaks."""
        state_fn = state_fn or self.state_dict
        self.step = step
        if self._progress is not None:
            self._progress.update(step, value)
        now = time.monotonic()
        due = self.checkpoint_every_s > 0 and now - self._last_ckpt >= self.checkpoint_every_s
        if self.stop_at is not None and self.stop_at(step):
            self.stop_requested = True
        stop = self.stop_requested
        if self.dist.enabled:  # every rank stops, and saves, at the same step
            stop, due = self.dist.agree(stop, due)
            # A signal that lands while the ranks agree (they wait there for each other) is
            # kept for the next tick: overwriting the flag with this tick's answer lost it,
            # and the ranks trained on until torchrun killed them.
            self.stop_requested = self.stop_requested or stop
        if stop:
            self.save(step, state_fn())
            return True
        if due:
            self.save(step, state_fn())
        elif now - self._last_beat >= self.heartbeat_s:
            self.write_results("running")
        return False

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.logger.close()


class CheckpointView:
    """What a `load_policy` hook receives when a resumed run redoes an evaluation that
    Ctrl-C cut short: the run's configs, device, seed and step, with `track` and `resume`
    loading the hook's own networks from the checkpoint the run resumed from, as rlrun-eval
    does. The run's tracked items are left alone."""

    def __init__(self, ctx: RunContext):
        self._ctx, self._items = ctx, {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def track(self, **items: Any) -> None:
        self._items.update(items)

    def resume(self) -> bool:
        saved = self._ctx._resume_state["loop"]
        for name, item in self._items.items():
            tracked_state.load(item, saved[name], name)
        return True


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
