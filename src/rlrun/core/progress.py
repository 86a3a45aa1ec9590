"""Progress: a tqdm bar on a terminal, plain periodic log lines otherwise (CI, files, sweeps)."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("rlrun")


class Progress:
    """Shows steps, steps/s and the latest headline metric; cheap to call every step."""

    def __init__(self, total: int, start: int, headline: str, mode: str, every_s: float,
                 unit: str = "step"):
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "lines"
        self.mode, self.total, self.headline, self.every_s = mode, total, headline, every_s
        self.unit = unit
        self.t0 = self.t_last = time.monotonic()
        self.start = self.step = start
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=max(total, start), initial=start, unit=unit,
                            dynamic_ncols=True, mininterval=0.25, smoothing=0.1)

    def _advance(self, step: int) -> None:
        """Move the bar to `step`. A loop that overshoots its budget (PPO ends on a whole
        rollout) stretches the bar's total to the last step: past its total, tqdm drops the
        percentage and the bar and shows a bare count."""
        if step > self.bar.total:
            self.bar.total = step
        self.bar.update(step - self.bar.n)

    def update(self, step: int, value: float | None = None) -> None:
        now = time.monotonic()
        if self.bar is not None:
            if now - self.t_last >= 0.25 or step >= self.total:
                self._advance(step)
                if value is not None:
                    self.bar.set_postfix_str(f"{self.headline}={value:.4g}", refresh=False)
                self.t_last = now
        elif self.mode == "lines" and (now - self.t_last >= self.every_s):
            self._line(step, value, now)
            self.t_last = now
        self.step, self.value = step, value

    def _line(self, step: int, value: float | None, now: float) -> None:
        rate = (step - self.start) / max(now - self.t0, 1e-9)
        metric = f" {self.headline}={value:.4g}" if value is not None else ""
        log.info("%s %d/%d (%.0f%%) %.0f %ss/s%s", self.unit, step, self.total,
                 100.0 * step / max(self.total, 1), rate, self.unit, metric)

    def close(self) -> None:
        if self.bar is not None:
            self._advance(self.step)
            self.bar.close()
        elif self.mode == "lines":
            self._line(self.step, getattr(self, "value", None), time.monotonic())
