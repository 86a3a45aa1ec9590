"""PASS / FAIL / UNSURE, from the 95% CI of the IQM over seeds (rlrun's report statistics,
`rlrun.report.stats.summarise`: IQM, percentile bootstrap over runs) against the lower edge
of the reference band:

- PASS: the whole CI is at or above the band's low edge (every IQM the data allow is at the
  reference's level);
- FAIL: the whole CI is below it;
- UNSURE: the CI straddles the edge, or there is no CI (fewer than 3 seeds, a NaN run).

A run that did not complete fails the pair: a crash is a regression too. Under --smoke the
numbers are shown but not judged (a few hundred steps learn nothing): SMOKE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rlrun.report.stats import Summary, summarise

PASS, FAIL, UNSURE, SMOKE = "PASS", "FAIL", "UNSURE", "SMOKE"


@dataclass
class Judged:
    verdict: str
    why: str
    summary: Summary | None = None


def judge(values: list[float], band: tuple[float, float], failed: int = 0,
          smoke: bool = False) -> Judged:
    """The verdict of one deep RL pair from its seeds' final evaluation returns."""
    s = summarise(values)
    if failed:
        return Judged(FAIL, f"{failed} of {failed + len(values)} runs did not complete", s)
    if smoke:
        return Judged(SMOKE, "smoke run: not compared", s)
    if s.iqm_ci is None:
        return Judged(UNSURE, s.why_no_ci, s)
    lo, hi = s.iqm_ci
    edge = band[0]
    if lo >= edge:
        return Judged(PASS, f"CI [{lo:.1f}, {hi:.1f}] at or above {edge:g}", s)
    if hi < edge:
        return Judged(FAIL, f"CI [{lo:.1f}, {hi:.1f}] below {edge:g}", s)
    return Judged(UNSURE, f"CI [{lo:.1f}, {hi:.1f}] straddles {edge:g}", s)


def judge_exact(found: list[dict[str, Any]], smoke: bool = False,
                failed: bool = False) -> Judged:
    """A book figure: PASS when every check's value lies in its range (ends included);
    FAIL, smoke run or not, when one of its jobs failed."""
    bad = [c for c in found if c["value"] is None or not math.isfinite(c["value"])
           or not c["range"][0] <= c["value"] <= c["range"][1]]
    if failed:
        return Judged(FAIL, "a job of the sweep failed (its run dir says why)")
    if smoke:
        return Judged(SMOKE, "smoke run: not compared")
    if bad:
        return Judged(FAIL, "; ".join(f"{c['what']} = {c['value']} outside {c['range']}"
                                      for c in bad))
    return Judged(PASS, "; ".join(f"{c['what']} = {c['value']:.4g} in {c['range']}"
                                  for c in found))
