"""rlrun.report.stats against rliable 1.2.0 on the same score matrices (runs x tasks).

rliable is not a dependency (it pulls in arch, statsmodels, seaborn, pandas and absl, and
1.2.0's arch < 8 fails to import under pandas 3), so install it aside:

    pip install --target /tmp/rlib rliable==1.2.0 "pandas<3"
    PYTHONPATH=/tmp/rlib:src python scripts/report_vs_rliable.py

Point estimates must agree exactly; bootstrap intervals up to resampling noise.
"""

from __future__ import annotations

import numpy as np
from rliable import library as rly
from rliable import metrics

from rlrun.report.stats import aggregate_iqm, performance_profile, probability_of_improvement


def main() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.6, 0.2, size=(5, 3))  # 5 runs x 3 tasks
    b = rng.normal(0.5, 0.25, size=(5, 3))

    def tasks(m: np.ndarray) -> list[np.ndarray]:
        return [m[:, j] for j in range(m.shape[1])]

    reps = 50000
    np.random.seed(0)
    point, ci = rly.get_interval_estimates(
        {"A": a}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps)
    mine, mine_ci = aggregate_iqm(tasks(a), n_boot=reps)
    print(f"aggregate IQM   rliable {point['A'][0]:.6f} {np.round(ci['A'][:, 0], 4)}"
          f"   rlrun {mine:.6f} {np.round(mine_ci, 4)}")
    taus = np.linspace(0, 1.2, 7)
    prof, prof_ci = rly.create_performance_profile({"A": a}, taus, reps=reps)
    p, lo, hi = performance_profile(tasks(a), taus, n_boot=reps)
    for name, theirs, ours in (("profile", prof["A"], p), ("profile low", prof_ci["A"][0], lo),
                               ("profile high", prof_ci["A"][1], hi)):
        print(f"{name:15s} rliable {np.round(theirs, 4)}\n{'':15s} rlrun   {np.round(ours, 4)}")
    pp, pci = rly.get_interval_estimates({"A,B": (a, b)}, metrics.probability_of_improvement,
                                         reps=2000)
    mp, mci = probability_of_improvement(tasks(a), tasks(b), n_boot=20000)
    print(f"P(A > B)        rliable {float(pp['A,B']):.6f} {np.round(pci['A,B'].ravel(), 4)}"
          f"   rlrun {mp:.6f} {np.round(mci, 4)}")


if __name__ == "__main__":
    main()
