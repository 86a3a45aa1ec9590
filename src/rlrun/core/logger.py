"""The run's logger: TensorBoard event files plus an in-memory record of every scalar.

The record is what `results.json` summarises (`last`, `tail_mean`, `best` per tag) and it
travels in checkpoints, so a resumed run summarises its whole history.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlrun.core.errors import ConfigError, NonFiniteError

# Scalars for which lower is better; everything else is "higher is better".
_LOWER_IS_BETTER = re.compile(r"(^losses/|loss|ppl|perplexity|fid|error|regret|mse|kl$)")


def higher_is_better(tag: str) -> bool:
    """Direction used for `best` in results.json (losses, perplexities, FIDs: lower wins)."""
    return _LOWER_IS_BETTER.search(tag) is None


@dataclass
class LoggerConfig:
    """`logger=tensorboard`: where and how a run reports."""

    name: str = "tensorboard"
    tensorboard: bool = True  # false: results.json only, no event files
    flush_secs: int = 30
    progress: str = "auto"  # auto (bar on a TTY, lines otherwise), bar, lines, none
    print_every_s: float = 10.0  # period of plain progress lines

    def __post_init__(self) -> None:
        if self.progress not in ("auto", "bar", "lines", "none"):
            raise ConfigError(
                f"logger.progress={self.progress!r}: use auto, bar, lines or none"
            )
        if self.print_every_s <= 0 or self.flush_secs <= 0:
            raise ConfigError("logger.print_every_s and logger.flush_secs must be > 0")


class Logger:
    """Writes scalars to TensorBoard and remembers them for the run summary."""

    def __init__(self, run_dir: Path, cfg: LoggerConfig, purge_step: int | None = None):
        self.run_dir = Path(run_dir)
        self.series: dict[str, list[float]] = {}
        self.last_step: dict[str, int] = {}
        self.writer = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events a crashed run wrote after its last checkpoint.
            self.writer = SummaryWriter(
                log_dir=str(self.run_dir), flush_secs=cfg.flush_secs, purge_step=purge_step
            )

    def scalar(self, tag: str, value: float, step: int) -> None:
        value = float(value)
        if not math.isfinite(value) and tag.startswith("losses/"):
            raise NonFiniteError(
                f"{tag} became {value} at step {step}; the last good checkpoint is kept."
                " Lower the learning rate or check the inputs"
            )
        self.series.setdefault(tag, []).append(value)
        self.last_step[tag] = step
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.scalar(tag, value, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

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
                "best": max(values) if higher_is_better(tag) else min(values),
                "count": len(values),
                "step": self.last_step[tag],
            }
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"series": self.series, "last_step": self.last_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.series = {k: list(v) for k, v in state["series"].items()}
        self.last_step = dict(state["last_step"])

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
