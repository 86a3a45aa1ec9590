"""rlrun.report.stats against SciPy on the same numbers (the rliable definitions)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from rlrun.core.logger import lower_is_better
from rlrun.report.stats import (
    aggregate_iqm,
    bootstrap_ci,
    curve_band,
    iqm,
    performance_profile,
    probability_of_improvement,
    summarise,
    winner,
)


def test_iqm_is_scipy_trim_mean_quarter():
    rng = np.random.default_rng(0)
    for n in range(1, 14):
        x = rng.normal(size=n) * 10
        assert iqm(x) == pytest.approx(sps.trim_mean(x, 0.25), rel=1e-12)
    m = rng.normal(size=(4, 7))
    np.testing.assert_allclose(iqm(m, axis=-1), sps.trim_mean(m, 0.25, axis=1))


@pytest.mark.parametrize("stat", [np.mean, iqm])
def test_bootstrap_ci_matches_scipy_percentile_bootstrap(stat):
    x = np.array([12.0, 35.0, 41.0, 48.0, 60.0, 200.0, 75.0])
    ours = bootstrap_ci(x, stat, n_boot=20000, seed=1)
    ref = sps.bootstrap((x,), lambda s, axis: stat(s, axis=axis), n_resamples=20000,
                        method="percentile", random_state=2).confidence_interval
    span = x.max() - x.min()
    assert ours[0] == pytest.approx(ref.low, abs=0.02 * span)
    assert ours[1] == pytest.approx(ref.high, abs=0.02 * span)


def test_few_seeds_no_interval_and_intervals_inside_the_observed_range():
    # the 2-seed case of the issue: a t-interval gave [-1816, 2444] for returns in [0, 500]
    two = summarise([500.0, 128.0])
    assert two.iqm_ci is None and two.mean_ci is None and two.why_no_ci == "n=2 < 3: no CI"
    assert two.std == pytest.approx(np.std([500.0, 128.0], ddof=1))
    one = summarise([3.0])
    assert one.std is None and one.iqm == 3.0 and one.why_no_ci == "n=1 < 3: no CI"
    three = summarise([0.0, 9.0, 500.0])
    for lo, hi in (three.iqm_ci, three.mean_ci):
        assert 0.0 <= lo <= hi <= 500.0
    assert three.median == 9.0 and three.mean == pytest.approx(509 / 3)
    diverged = summarise([1.0, 2.0, float("nan")])  # kept, so the mean shows it
    assert np.isnan(diverged.mean) and diverged.why_no_ci == "a NaN/inf run: no CI"


def test_best_only_when_intervals_separate():
    a, b = summarise([10.0, 11, 12, 10.5]), summarise([1.0, 2, 1.5, 2.5])
    name, line = winner([("a", a), ("b", b)], higher=True)
    assert name == "a" and line.startswith("best: a")
    name, line = winner([("b", b), ("a", a)], higher=False)  # lower is better: b
    assert name == "b"
    c = summarise([9.0, 12, 10, 13])  # overlaps a
    name, line = winner([("a", a), ("c", c)], higher=True)
    assert name is None and line.startswith("no clear winner: a leads")
    name, line = winner([("a", summarise([1.0, 2])), ("c", c)], higher=True)
    assert name is None and "fewer than 3 seeds" in line


def test_probability_of_improvement_is_mann_whitney_averaged_over_tasks():
    rng = np.random.default_rng(3)
    xs = [rng.normal(1, 1, 5), rng.normal(0, 1, 4)]
    ys = [rng.normal(0, 1, 5), rng.normal(0, 1, 6)]
    ys[0][0] = xs[0][0]  # a tie counts half
    expected = np.mean([sps.mannwhitneyu(x, y).statistic / (len(x) * len(y))
                        for x, y in zip(xs, ys, strict=True)])
    p, ci = probability_of_improvement(xs, ys)
    assert p == pytest.approx(expected, rel=1e-12)
    assert 0 <= ci[0] <= p <= ci[1] <= 1
    p_low, _ = probability_of_improvement(xs, ys, higher=False)
    assert p_low == pytest.approx(1 - expected, rel=1e-12)
    assert probability_of_improvement([[1.0, 2.0]], [[0.0, 0.5]])[1] is None


def test_performance_profile_and_stratified_aggregate():
    tasks = [np.array([0.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0])]
    taus = np.array([-0.5, 0.5, 1.5])
    point, lo, hi = performance_profile(tasks, taus)
    np.testing.assert_allclose(point, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(lo, point)  # resampling within a task changes nothing here
    # stratified: every resample keeps three 0s and three 1s, so the IQM never moves; an
    # unstratified bootstrap of the six pooled values would
    value, ci = aggregate_iqm(tasks)
    assert value == pytest.approx(sps.trim_mean([0, 0, 0, 1, 1, 1], 0.25)) and ci == (0.5, 0.5)
    rng = np.random.default_rng(5)
    uneven = [rng.normal(0, 1, 3), rng.normal(2, 1, 5)]
    value, (lo, hi) = aggregate_iqm(uneven)
    pooled = np.concatenate(uneven)
    assert value == pytest.approx(sps.trim_mean(pooled, 0.25))
    assert pooled.min() <= lo <= value <= hi <= pooled.max()
    assert aggregate_iqm([[1.0, 2.0], [3.0, 4.0, 5.0]])[1] is None


def test_curve_band_per_step():
    stack = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, np.nan], [3.0, 9.0, np.nan],
                      [4.0, 5.0, np.nan]])
    centre, lo, hi = curve_band(stack, use_iqm=True)
    assert centre[0] == pytest.approx(sps.trim_mean([1, 2, 3, 4], 0.25))
    assert centre[1] == pytest.approx(sps.trim_mean([2, 4, 9, 5], 0.25))
    assert centre[2] == 3.0 and np.isnan(lo[2])  # one run there: no band
    assert 1.0 <= lo[0] <= centre[0] <= hi[0] <= 4.0
    centre, _, _ = curve_band(stack, use_iqm=False)
    assert centre[1] == pytest.approx(5.0)


def test_direction_of_tags_is_what_each_algorithm_declares():
    from rlrun.algos.ddpm import DDPMConfig
    from rlrun.algos.lm import LMConfig
    from rlrun.algos.sac import SACConfig

    assert lower_is_better("moe/dropped_fraction", LMConfig.spec.minimize)  # a regex got it wrong
    assert lower_is_better("moe/dropped_fraction/layer1", LMConfig.spec.minimize)
    assert lower_is_better("eval/fid", DDPMConfig.spec.minimize)
    assert lower_is_better("eval/val_ppl", LMConfig.spec.minimize)
    assert not lower_is_better("moe/top1_share", LMConfig.spec.minimize)
    assert not lower_is_better("eval/return", getattr(SACConfig, "minimize", ()))
    assert lower_is_better("losses/actor")  # losses: always


def test_probability_of_improvement_ci_is_the_bootstrap_of_the_explicit_resamples():
    rng = np.random.default_rng(7)
    xs = [rng.normal(0.5, 1, 4), rng.normal(0, 1, 5)]
    ys = [rng.normal(0, 1, 6), rng.normal(0, 1, 3)]
    _, ci = probability_of_improvement(xs, ys, n_boot=300, seed=11)
    draw = np.random.default_rng(11)  # the same draws, resampled values compared directly
    boot = np.zeros(300)
    for x, y in zip(xs, ys, strict=True):
        bx = x[draw.integers(0, len(x), size=(300, len(x)))]
        by = y[draw.integers(0, len(y), size=(300, len(y)))]
        boot += ((bx[:, :, None] > by[:, None, :])
                 + 0.5 * (bx[:, :, None] == by[:, None, :])).mean(axis=(1, 2))
    lo, hi = np.percentile(boot / 2, [2.5, 97.5])
    assert ci == pytest.approx((lo, hi), rel=1e-12)
