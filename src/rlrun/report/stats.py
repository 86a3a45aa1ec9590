"""Statistics for few seeds, after Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical
Precipice"), in NumPy.

- Point estimates per setting: mean, median, IQM (interquartile mean: the mean of the middle
  50% of runs, `scipy.stats.trim_mean(x, 0.25)`), sample std (ddof=1).
- 95% intervals: percentile bootstrap (resampling runs with replacement), stratified by task
  when several tasks are pooled. A percentile interval of a mean-type statistic stays inside
  the observed range, unlike a t-interval on 2 seeds ([-1816, 2444] for a return in [0, 500]).
  Below `MIN_SEEDS` runs no interval is given: a bootstrap over 1-2 values says nothing.
- Across tasks: normalised scores, aggregate IQM, performance profiles (fraction of runs above
  a normalised score, averaged over tasks) and the probability of improvement P(X > Y)
  (Mann-Whitney, ties count half, averaged over tasks), each with stratified bootstrap CIs.

The same definitions as the rliable package (which would pull in arch, seaborn, pandas and
absl for these few functions); tests/test_report_stats.py checks them against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

MIN_SEEDS = 3
N_BOOT = 2000
LEVEL = 0.95


def iqm(x: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean: `scipy.stats.trim_mean(x, 0.25)` (cut int(n/4) from each end)."""
    a = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = a.shape[axis]
    cut = int(0.25 * n)
    return np.take(a, range(cut, n - cut), axis=axis).mean(axis=axis)


def _percentile(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return float(lo), float(hi)


def bootstrap_ci(values: Sequence[float], stat: Callable[..., np.ndarray],
                 n_boot: int = N_BOOT, seed: int = 0,
                 level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat(sample, axis=-1)` over resampled runs."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    return _percentile(stat(x[idx], axis=-1), level)


def stratified_samples(tasks: Sequence[Sequence[float]], n_boot: int,
                       rng: np.random.Generator) -> list[np.ndarray]:
    """Per task, `n_boot` resamples of its runs (rows): tasks are never mixed."""
    out = []
    for t in tasks:
        x = np.asarray(t, dtype=float)
        out.append(x[rng.integers(0, len(x), size=(n_boot, len(x)))])
    return out


@dataclass
class Summary:
    """One setting's numbers for one metric."""

    values: list[float]
    mean: float | None
    median: float | None
    iqm: float | None
    std: float | None
    iqm_ci: tuple[float, float] | None
    mean_ci: tuple[float, float] | None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def why_no_ci(self) -> str:
        if self.iqm_ci is not None:
            return ""
        if self.n >= MIN_SEEDS:
            return "a NaN/inf run: no CI"
        return "no runs" if self.n == 0 else f"n={self.n} < {MIN_SEEDS}: no CI"


def summarise(values: Sequence[float], n_boot: int = N_BOOT, seed: int = 0) -> Summary:
    """Mean, median, IQM, std (blank with one run) and bootstrap CIs (from 3 runs on).

    Non-finite values (a diverged seed) are kept so the numbers show it."""
    v = [float(x) for x in values]
    if not v:
        return Summary(v, None, None, None, None, None, None)
    a = np.asarray(v)
    std = float(np.std(a, ddof=1)) if len(v) > 1 else None
    cis = (None, None)
    if len(v) >= MIN_SEEDS and np.all(np.isfinite(a)):
        cis = (bootstrap_ci(a, iqm, n_boot, seed), bootstrap_ci(a, np.mean, n_boot, seed))
    return Summary(v, float(a.mean()), float(np.median(a)), float(iqm(a)), std, *cis)


def winner(summaries: Sequence[tuple[str, Summary]], higher: bool) -> tuple[str | None, str]:
    """(best setting or None, the sentence to print).

    Ranked by IQM; the leader is "best" only when its IQM interval does not overlap the
    runner-up's. With one setting there is nothing to compare."""
    ranked = [(n, s) for n, s in summaries if s.iqm is not None and math.isfinite(s.iqm)]
    if not ranked:
        return None, "best: (no completed run yet)"
    if len(ranked) == 1:
        return None, f"only one setting with results: {ranked[0][0]}"
    first, second = ranked[0], ranked[1]
    if first[1].iqm_ci is None or second[1].iqm_ci is None:
        return None, (f"no clear winner: {first[0]} leads, but with fewer than {MIN_SEEDS} "
                      "seeds there are no intervals to separate it from "
                      f"{second[0]}")
    (lo1, hi1), (lo2, hi2) = first[1].iqm_ci, second[1].iqm_ci
    separated = lo1 > hi2 if higher else hi1 < lo2
    if separated:
        return first[0], f"best: {first[0]} (its 95% CI does not overlap {second[0]}'s)"
    return None, (f"no clear winner: {first[0]} leads, but its 95% CI overlaps "
                  f"{second[0]}'s")


def rank(summaries: list[tuple[str, Summary]], higher: bool) -> list[tuple[str, Summary]]:
    """Best IQM first (direction by the metric); settings without numbers last, in order."""
    sign = -1.0 if higher else 1.0

    def order(item: tuple[str, Summary]) -> tuple[int, float]:
        s = item[1]
        if s.iqm is None or math.isnan(s.iqm):
            return (1, 0.0)
        return (0, sign * s.iqm)

    return sorted(summaries, key=order)


# ---- across tasks --------------------------------------------------------------------------
def normalise(x: np.ndarray | Sequence[float], random: float, reference: float) -> np.ndarray:
    """(x - random) / (reference - random): 0 = a random policy, 1 = the reference."""
    return (np.asarray(x, dtype=float) - random) / (reference - random)


def aggregate_iqm(tasks: Sequence[Sequence[float]], n_boot: int = N_BOOT,
                  seed: int = 0) -> tuple[float, tuple[float, float] | None]:
    """IQM of all runs of all tasks pooled, with a stratified bootstrap 95% CI (None when a
    task has fewer than MIN_SEEDS runs)."""
    pooled = np.concatenate([np.asarray(t, dtype=float) for t in tasks])
    point = float(iqm(pooled))
    if min(len(t) for t in tasks) < MIN_SEEDS:
        return point, None
    samples = stratified_samples(tasks, n_boot, np.random.default_rng(seed))
    return point, _percentile(iqm(np.concatenate(samples, axis=1), axis=-1))


def performance_profile(tasks: Sequence[Sequence[float]], taus: np.ndarray,
                        n_boot: int = N_BOOT, seed: int = 0
                        ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Fraction of runs with a score > tau, averaged over tasks (rliable's run-score
    distribution), with a pointwise stratified bootstrap 95% band (None below MIN_SEEDS)."""
    taus = np.asarray(taus, dtype=float)

    def profile(per_task: Sequence[np.ndarray]) -> np.ndarray:
        return np.mean([np.mean(t[..., :, None] > taus, axis=-2) for t in per_task], axis=0)

    point = profile([np.asarray(t, dtype=float) for t in tasks])
    if min(len(t) for t in tasks) < MIN_SEEDS:
        return point, None, None
    boot = profile(stratified_samples(tasks, n_boot, np.random.default_rng(seed)))
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    return point, lo, hi


def _pairs(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 where x_i > y_j, 0.5 where equal, 0 below: (runs of X, runs of Y)."""
    return (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])


def _counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of n runs is drawn in each of n_boot resamples: (n_boot, n)."""
    idx = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def probability_of_improvement(x_tasks: Sequence[Sequence[float]],
                               y_tasks: Sequence[Sequence[float]], higher: bool = True,
                               n_boot: int = N_BOOT, seed: int = 0
                               ) -> tuple[float, tuple[float, float] | None]:
    """P(a run of X beats a run of Y on the same task), averaged over tasks, with the
    stratified (per task and per setting) bootstrap CI. `higher=False` for losses.

    A resample only reweights the pairs of original runs, so each resample's value is
    `w_x @ pairs @ w_y / (n m)` with the draw counts w: one matrix product for all."""
    sign = 1.0 if higher else -1.0
    xs = [sign * np.asarray(t, dtype=float) for t in x_tasks]
    ys = [sign * np.asarray(t, dtype=float) for t in y_tasks]
    pairs = [_pairs(x, y) for x, y in zip(xs, ys, strict=True)]
    point = float(np.mean([p.mean() for p in pairs]))
    if min(len(t) for t in (*xs, *ys)) < MIN_SEEDS:
        return point, None
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    for p in pairs:
        n, m = p.shape
        wx, wy = _counts(n, n_boot, rng), _counts(m, n_boot, rng)
        boot += np.einsum("bm,bm->b", wx @ p, wy) / (n * m)
    return point, _percentile(boot / len(pairs))


# ---- curves ----------------------------------------------------------------------------------
def curve_band(stack: np.ndarray, use_iqm: bool, n_boot: int = 500,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of `stack` (runs x points, NaN where a run has no point): the IQM or mean
    of the runs and its percentile-bootstrap 95% band (NaN where fewer than MIN_SEEDS)."""
    n_runs, n_pts = stack.shape
    centre = np.full(n_pts, np.nan)
    lo, hi = np.full(n_pts, np.nan), np.full(n_pts, np.nan)
    stat = iqm if use_iqm else np.mean
    rng = np.random.default_rng(seed)
    counts = np.sum(~np.isnan(stack), axis=0)
    for k in np.unique(counts):
        if k == 0:
            continue
        cols = np.flatnonzero(counts == k)
        vals = np.sort(stack[:, cols], axis=0)[:k]  # NaNs sort last: the k real values
        centre[cols] = stat(vals.T, axis=-1)
        if k >= MIN_SEEDS:
            idx = rng.integers(0, k, size=(n_boot, k))
            boot = stat(vals[idx], axis=1)  # (n_boot, cols)
            lo[cols], hi[cols] = np.percentile(boot, [2.5, 97.5], axis=0)
    return centre, lo, hi
