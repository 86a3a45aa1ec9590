"""The run's logger: TensorBoard event files plus an in-memory record of every scalar.

The record is what `results.json` summarises (`last`, `tail_mean`, `best` per tag) and it
travels in checkpoints, so a resumed run summarises its whole history.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlrun.core.errors import ConfigError, NonFiniteError, os_error_at
from rlrun.core.schema import check_fields, opt

# Tags for which lower is better in every run: losses. Each algorithm declares the rest in its
# schema (`minimize`: fnmatch patterns such as "eval/fid"); everything else is maximised.
ALWAYS_MINIMIZED = ("losses/*",)
# Scalar points go to TensorBoard in batches (Logger._write_pending): this many, or this many
# seconds after the last batch, whichever comes first (the event file is flushed to disk every
# logger.flush_secs anyway, 30 s by default).
TB_BATCH_POINTS = 1000
TB_BATCH_S = 2.0


def lower_is_better(tag: str, minimize: tuple[str, ...] | list[str] = ()) -> bool:
    """Whether `best` of `tag` is its minimum: a loss, or a tag the algorithm declares."""
    return any(fnmatch.fnmatchcase(tag, p) for p in (*ALWAYS_MINIMIZED, *minimize))


@dataclass
class LoggerConfig:
    """`logger=tensorboard`: where and how a run reports (its schema: every setting declared
    once, with its help, registered as `schema/logger/tensorboard`)."""

    name: str = opt("tensorboard", "the logger's name")
    tensorboard: bool = opt(True, "write TensorBoard event files (false: results.json and"
                                  " scalars.parquet only)")
    flush_secs: int = opt(30, "seconds between flushes of the event files", gt=0)
    progress: str = opt("auto", "auto: a bar on a TTY, plain lines otherwise; or bar, lines,"
                                " none", choices=("auto", "bar", "lines", "none"))
    print_every_s: float = opt(10.0, "period of plain progress lines", gt=0)
    video: bool = opt(False, "record evaluation episodes (envs that render rgb_array; the"
                             " video extra)")
    video_tensorboard: bool = opt(True, "... as animated GIFs in TensorBoard's Images tab")
    video_files: bool = opt(True, "... and as GIF files under <run>/videos/")
    video_fps: int = opt(30, "frames per second of the GIFs", gt=0)

    def __post_init__(self) -> None:
        check_fields(type(self), vars(self))
        missing = missing_video_modules() if self.video else []
        if missing:  # checked now, not after a whole training budget at the first video
            raise ConfigError(f"logger.video=true needs the video extra ({', '.join(missing)}"
                              " not installed): pip install 'rlrun[video]', or set"
                              " logger.video=false")


def missing_video_modules() -> list[str]:
    """The modules of the `video` extra that are not importable: Pillow encodes the GIFs,
    pygame renders the classic-control and Box2D tasks."""
    import importlib.util

    return [name for module, name in (("PIL", "pillow"), ("pygame", "pygame-ce"))
            if importlib.util.find_spec(module) is None]


class Logger:
    """Writes scalars to TensorBoard and remembers them for the run summary."""

    def __init__(self, run_dir: Path, cfg: LoggerConfig, purge_step: int | None = None,
                 checkpoint: Path | None = None, minimize: tuple[str, ...] = ()):
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        self.minimize = tuple(minimize)  # the algorithm's lower-is-better tags (patterns)
        self.checkpoint = checkpoint  # the run's checkpoint file, named in the NaN error
        self.series: dict[str, list[float]] = {}
        # step and wall-clock time of every point, for scalars.parquet (rlrun.core.scalars)
        self.steps: dict[str, list[int]] = {}
        self.times: dict[str, list[float]] = {}
        self.last_step: dict[str, int] = {}
        # scalar points not yet handed to TensorBoard: (step, wall time, tag, value)
        self._pending: list[tuple[int, float, str, float]] = []
        self._pending_since = time.time()
        self.writer = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            _quiet_writer_thread()
            # purge_step hides events a crashed run wrote after its last checkpoint.
            with self._disk():
                self.writer = SummaryWriter(
                    log_dir=str(self.run_dir), flush_secs=cfg.flush_secs,
                    purge_step=purge_step, max_queue=2 * TB_BATCH_POINTS)

    @contextlib.contextmanager
    def _disk(self) -> Iterator[None]:
        """Around every call into TensorBoard: its writer thread keeps a disk error (full,
        read-only) and raises it again at the next write, flush or close, naming no file or
        naming it as bytes. It leaves here as an OSError naming the event file, which the
        run reports in one line, as it does a failed checkpoint."""
        try:
            yield
        except OSError as e:
            if not e.errno:
                raise
            raise os_error_at(e, self._event_file()) from None

    def _event_file(self) -> Path:
        name = getattr(getattr(getattr(self.writer, "file_writer", None), "event_writer",
                               None), "_file_name", None)
        return Path(name) if name else self.run_dir / "events.out.tfevents.*"

    def scalar(self, tag: str, value: float, step: int) -> None:
        value = float(value)
        if not math.isfinite(value) and tag.startswith("losses/"):
            raise NonFiniteError(f"{tag} became {value} at step {step}; {self._kept()}."
                                 " Lower the learning rate or check the inputs")
        now = time.time()
        self.series.setdefault(tag, []).append(value)
        self.steps.setdefault(tag, []).append(int(step))
        self.times.setdefault(tag, []).append(now)
        self.last_step[tag] = step
        if self.writer is not None:  # the hot path: once per step in bandits
            self._pending.append((int(step), now, tag, value))
            if len(self._pending) >= TB_BATCH_POINTS or now - self._pending_since >= TB_BATCH_S:
                self._write_pending()

    def _write_pending(self) -> None:
        """Hand the pending scalar points to TensorBoard, the points of one step as one
        event, each with the wall time it was logged at.

        Batched because the per-point `add_scalar` cost more than a bandit step: each event
        woke TensorBoard's writer thread, whose pure-Python CRC32C then contended for the
        GIL with the loop (2000 runs x 1000 steps of epsilon-greedy: 0.33 s of 0.67 s). The
        events written are those `add_scalar` writes (`simple_value`), a step's tags merged
        into one `Summary`, which every TensorBoard reader reads point by point."""
        pending, self._pending = self._pending, []
        self._pending_since = time.time()
        if not pending or self.writer is None:
            return
        from tensorboard.compat.proto.summary_pb2 import Summary

        with self._disk():
            fw = self.writer._get_file_writer()
            i = 0
            while i < len(pending):
                step, wall = pending[i][0], pending[i][1]
                values = []
                while i < len(pending) and pending[i][0] == step:
                    values.append(Summary.Value(tag=pending[i][2], simple_value=pending[i][3]))
                    i += 1
                fw.add_summary(Summary(value=values), step, wall)

    def _kept(self) -> str:
        """What a NaN leaves behind, said truthfully: the checkpoint from before it, or none."""
        if self.checkpoint is None:
            return "the run stopped"
        if self.checkpoint.is_file():
            return f"the last good checkpoint is kept ({self.checkpoint})"
        return "no checkpoint was saved before it (start afresh once fixed)"

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.scalar(tag, value, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self.writer is not None:
            self._write_pending()  # the event file in the order things were logged
            with self._disk():
                self.writer.add_text(tag, text, step)

    def image(self, tag: str, image: Any, step: int, dataformats: str = "CHW") -> None:
        """One image (float in [0, 1] or uint8), e.g. a grid from torchvision-free
        `rlrun.core.logger.image_grid`."""
        if self.writer is not None:
            self._write_pending()
            with self._disk():
                self.writer.add_image(tag, _to_numpy(image), step, dataformats=dataformats)

    def histogram(self, tag: str, values: Any, step: int, bins: str | int = "auto") -> None:
        if self.writer is not None:
            self._write_pending()
            with self._disk():
                self.writer.add_histogram(tag, _to_numpy(values), step, bins=bins)

    def video(self, tag: str, frames: Any, step: int) -> Path | None:
        """Frames (T, H, W, 3) uint8 as an animated GIF: in TensorBoard's Images tab and/or
        as `<run>/videos/<tag>_<step>.gif`, per `logger.video_tensorboard/video_files`.

        Encoded with Pillow rather than `SummaryWriter.add_video`, which needs moviepy."""
        frames = _to_numpy(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise ValueError(f"video frames must be (T, H, W, 3), got {frames.shape}")
        data = gif_bytes(frames, self.cfg.video_fps)
        path = None
        if self.cfg.video_files:
            path = self.run_dir / "videos" / f"{tag.replace('/', '_')}_{step}.gif"
            from rlrun.core.checkpoint import atomic_write_bytes

            atomic_write_bytes(path, data)  # whole or not at all; a disk error names it
        if self.cfg.video_tensorboard and self.writer is not None:
            from tensorboard.compat.proto.summary_pb2 import Summary

            self._write_pending()
            t, h, w, c = frames.shape
            img = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=data)
            with self._disk():
                self.writer._get_file_writer().add_summary(
                    Summary(value=[Summary.Value(tag=tag, image=img)]), step)
        return path

    def hparams(self, hparams: dict[str, Any], metric_tags: list[str]) -> None:
        """Register the run in TensorBoard's HParams dashboard.

        `SummaryWriter.add_hparams` would also write the metric values as new scalars (a
        duplicate point) into a timestamped subfolder; writing the summaries ourselves keeps
        them in the run folder and lets the dashboard read the run's own scalar tags.
        """
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams as hp_summary

        clean = {k: (v if isinstance(v, int | float | str | bool) else str(v))
                 for k, v in hparams.items()}
        exp, ssi, sei = hp_summary(clean, {t: 0.0 for t in metric_tags})
        self._write_pending()
        with self._disk():
            fw = self.writer._get_file_writer()
            for s in (exp, ssi, sei):
                fw.add_summary(s)

    def summary(self) -> dict[str, dict[str, float]]:
        """`last`, `tail_mean` (mean of the last 10% of points) and `best` of every scalar."""
        out = {}
        for tag, values in self.series.items():
            n_tail = max(1, math.ceil(0.1 * len(values)))
            tail = values[-n_tail:]
            out[tag] = {
                "last": values[-1],
                "tail_mean": sum(tail) / len(tail),
                "best": min(values) if lower_is_better(tag, self.minimize) else max(values),
                "count": len(values),
                "step": self.last_step[tag],
            }
        return out

    def history(self) -> dict[str, tuple[list[int], list[float], list[float] | None]]:
        """`{tag: (steps, values, wall_times)}` of every point logged, for scalars.parquet.

        A run resumed from a checkpoint of an older rlrun (no steps saved) has steps only for
        the points logged since; its earlier points are left out rather than given made-up
        steps (the event files still hold them)."""
        out = {}
        for tag, values in self.series.items():
            steps, times = self.steps.get(tag, []), self.times.get(tag)
            k = len(steps)
            out[tag] = (steps, values[len(values) - k:],
                        times if times is not None and len(times) == k else None)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"series": self.series, "last_step": self.last_step, "steps": self.steps,
                "times": self.times}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.series = {k: list(v) for k, v in state["series"].items()}
        self.last_step = dict(state["last_step"])
        self.steps = {k: list(v) for k, v in (state.get("steps") or {}).items()}
        self.times = {k: list(v) for k, v in (state.get("times") or {}).items()}

    def flush(self) -> None:
        if self.writer is not None:
            self._write_pending()
            with self._disk():
                self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file; a disk error from its last writes is raised (as
        an OSError naming it) once, and the logger is closed all the same."""
        if self.writer is not None:
            try:
                self._write_pending()
                with self._disk():
                    self.writer.close()
            finally:
                self.writer = None


def _quiet_writer_thread() -> None:
    """TensorBoard's writer thread keeps its exception and raises it again in the main
    thread's next write, flush or close (see `Logger._disk`); Python also prints it from
    the thread as a traceback. Drop that print, for OSErrors of that thread alone."""
    import threading

    previous = threading.excepthook
    if getattr(previous, "rlrun_tensorboard", False):
        return

    def hook(args: Any) -> None:
        thread = type(args.thread)
        if not (thread.__name__ == "_AsyncWriterThread"
                and thread.__module__.startswith("tensorboard.")
                and issubclass(args.exc_type, OSError)):
            previous(args)

    hook.rlrun_tensorboard = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _to_numpy(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().to("cpu").float().numpy() if x.dtype.is_floating_point \
            else x.detach().to("cpu").numpy()
    return np.asarray(x)


def gif_bytes(frames: Any, fps: int) -> bytes:
    """An animated GIF of (T, H, W, 3) uint8 frames (Pillow; `pip install rlrun[video]`)."""
    import io

    try:
        from PIL import Image
    except ImportError:
        raise ConfigError(
            "logger.video=true needs Pillow: pip install 'rlrun[video]'"
        ) from None
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(1, round(1000 / fps)), loop=0)
    return buf.getvalue()


def image_grid(images: Any, nrow: int | None = None, pad: int = 1) -> Any:
    """(N, C, H, W) images in [-1, 1] or [0, 1] floats -> one (C, H', W') grid in [0, 1];
    what torchvision.utils.make_grid does, without torchvision."""
    import math as _m

    import numpy as np

    x = _to_numpy(images).astype(np.float32)
    if x.min() < 0:
        x = (x + 1) / 2
    x = x.clip(0, 1)
    n, c, h, w = x.shape
    nrow = nrow or _m.ceil(_m.sqrt(n))
    ncol = _m.ceil(n / nrow)
    grid = np.ones((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h,
             pad + q * (w + pad):pad + q * (w + pad) + w] = x[i]
    return grid


def _root_file_handlers() -> list[Any]:
    import logging

    root = logging.getLogger()
    return [h for h in root.handlers if isinstance(h, logging.FileHandler)]


def quiet_log_files() -> None:
    """Hydra's job log (`<run dir>/rlrun.log`) is a `logging.FileHandler`: on a full or
    read-only disk every later log line would print a "--- Logging error ---" traceback.
    The fault itself is what the run reports (in one line, from the writer that met it
    first); a log file that fails is dropped, silently."""
    import logging
    import sys

    root = logging.getLogger()
    for handler in _root_file_handlers():
        if getattr(handler, "rlrun_quiet", False):
            continue
        original = handler.handleError

        def handle_error(record: Any, handler: Any = handler, original: Any = original) -> None:
            if not isinstance(sys.exc_info()[1], OSError):
                return original(record)
            root.removeHandler(handler)
            with contextlib.suppress(OSError, ValueError):
                handler.close()

        handler.handleError = handle_error
        handler.rlrun_quiet = True


def detach_log_files(run_dir: str | Path) -> None:
    """Stop logging into files under `run_dir`: a process that lost that dir to another
    run (or found a run there) must not write a line into that run's log."""
    import logging

    run_dir = Path(run_dir).resolve()
    for handler in _root_file_handlers():
        if Path(handler.baseFilename).resolve().is_relative_to(run_dir):
            logging.getLogger().removeHandler(handler)
            with contextlib.suppress(OSError, ValueError):
                handler.close()
