"""The report's PNGs (matplotlib, imported only here; `pip install rlrun[plot]`).

- `curves_<metric>.png`: per task one panel, per setting the IQM over seeds (mean when
  asked) with a bootstrap 95% band, against steps or wall time;
- `final_<metric>.png`: per task, each setting's IQM, its 95% interval and every run;
- `aggregate_<metric>.png`: across tasks, the aggregate IQM of normalised scores;
- `profile_<metric>.png`: performance profiles (fraction of runs above a normalised score);
- `improvement_<metric>.png`: probability of improvement between settings.
Each function returns PNG bytes (None when there is nothing to draw).
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlrun.report.stats import MIN_SEEDS, Summary, curve_band

PLOT_EXTRA = "pip install 'rlrun[plot]'"


def require_matplotlib(prog: str) -> None:
    """For the figure scripts (scripts/*figure*, sutton_barto_ch2/ch6, lm_attention_report),
    called before any work: without matplotlib, one line naming the `plot` extra on stderr
    and exit code 2, not a traceback after minutes of reading runs."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"{prog}: error: matplotlib is not installed: {PLOT_EXTRA}", file=sys.stderr)
        raise SystemExit(2) from None


def _figure(n_panels: int, width: float = 5.0, height: float = 3.6) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    cols = min(n_panels, 3)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _colors(names: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]  # by sorted name: one setting keeps its colour in every panel
    return {n: cmap(i % 10) for i, n in enumerate(sorted(set(names)))}


def align(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Runs' (x, y) on the x of the run with the most points: interpolated inside each run's
    own range, NaN outside it (never extrapolated). Returns (grid, runs x grid)."""
    grid = max(curves, key=lambda c: len(c[0]))[0].astype(float)
    stack = np.full((len(curves), len(grid)), np.nan)
    for i, (x, y) in enumerate(curves):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if len(x) == len(grid) and np.array_equal(x, grid):
            stack[i] = y
        elif len(x):
            inside = (grid >= x[0]) & (grid <= x[-1])
            stack[i, inside] = np.interp(grid[inside], x, y)
    return grid, stack


def curves_png(panels: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]],
               metric: str, xlabel: str, use_iqm: bool = True) -> bytes | None:
    """`panels[env][setting]` = the runs' curves. Band: bootstrap 95% of the IQM/mean,
    drawn only where at least MIN_SEEDS runs have a point."""
    panels = {e: {s: c for s, c in by.items() if c} for e, by in panels.items()}
    panels = {e: by for e, by in panels.items() if by}
    if not panels:
        return None
    fig, axes = _figure(len(panels))
    colors = _colors([s for by in panels.values() for s in by])
    what = "IQM" if use_iqm else "mean"
    for ax, (env, by) in zip(axes, panels.items(), strict=True):
        for setting, curves in by.items():
            grid, stack = align(curves)
            centre, lo, hi = curve_band(stack, use_iqm)
            style = {"marker": "o"} if len(grid) < 3 else {}
            ax.plot(grid, centre, color=colors[setting], lw=1.5,
                    label=f"{setting} (n={len(curves)})", **style)
            if np.any(np.isfinite(lo)):
                ax.fill_between(grid, lo, hi, color=colors[setting], alpha=0.2, lw=0)
        ax.set_title(env, fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle(f"{metric}: {what} over seeds\n95% bootstrap band where {MIN_SEEDS}+ seeds",
                 fontsize="medium")
    return _png(fig)


def final_png(panels: dict[str, list[tuple[str, Summary]]], metric: str,
              stat: str) -> bytes | None:
    """Per task, each setting's IQM (line) with its 95% CI (box) and every run (dots)."""
    panels = {e: rows for e, rows in panels.items() if any(s.n for _, s in rows)}
    if not panels:
        return None
    n_max = max(len(rows) for rows in panels.values())
    fig, axes = _figure(len(panels), width=5.5, height=1.8 + 0.5 * n_max)
    colors = _colors([n for rows in panels.values() for n, _ in rows])
    for ax, (env, rows) in zip(axes, panels.items(), strict=True):
        rows = [(n, s) for n, s in rows if s.n]
        ys = np.arange(len(rows))[::-1]
        for y, (name, s) in zip(ys, rows, strict=True):
            if s.iqm_ci is not None:
                ax.barh(y, s.iqm_ci[1] - s.iqm_ci[0], left=s.iqm_ci[0], height=0.5,
                        color=colors[name], alpha=0.3)
            ax.plot([s.iqm, s.iqm], [y - 0.3, y + 0.3], color="black", lw=2)
            jitter = np.linspace(-0.15, 0.15, s.n) if s.n > 1 else [0.0]
            ax.scatter(s.values, y + np.asarray(jitter), color=colors[name], s=14, zorder=3)
        ax.set_yticks(ys, [f"{n} (n={s.n})" for n, s in rows], fontsize="small")
        ax.set_xlabel(f"{metric} ({stat})")
        ax.use_sticky_edges = False  # bars would pin the limits to their edges
        ax.margins(x=0.08, y=0.15)
        ax.set_title(env, fontsize="medium")
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"{metric}: IQM over seeds (line), runs (dots)\n"
                 f"95% bootstrap CI (box, from {MIN_SEEDS} seeds)", fontsize="medium")
    return _png(fig)


def aggregate_png(rows: list[tuple[str, float, tuple[float, float] | None,
                                   dict[str, float]]], metric: str) -> bytes | None:
    """Aggregate IQM of normalised scores per setting (interval), per-task IQMs (dots)."""
    if not rows:
        return None
    fig, (ax,) = _figure(1, width=6.5, height=1.2 + 0.5 * len(rows))
    colors = _colors([r[0] for r in rows])
    ys = np.arange(len(rows))[::-1]
    for y, (name, point, ci, per_task) in zip(ys, rows, strict=True):
        if ci is not None:
            ax.barh(y, ci[1] - ci[0], left=ci[0], height=0.5, color=colors[name], alpha=0.4)
        ax.plot([point, point], [y - 0.25, y + 0.25], color="black", lw=2)
        ax.scatter(list(per_task.values()), [y] * len(per_task), color=colors[name], s=12,
                   marker="x", zorder=3)
    ax.set_yticks(ys, [r[0] for r in rows], fontsize="small")
    ax.set_xlabel(f"normalised {metric} (0 = random, 1 = reference)")
    ax.set_title("Aggregate IQM across tasks (line), stratified bootstrap 95% CI (box),\n"
                 "per-task IQM (x)", fontsize="small")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def profile_png(curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None,
                                   np.ndarray | None]], metric: str) -> bytes | None:
    """Performance profiles: fraction of runs with normalised score > tau, 95% band."""
    if not curves:
        return None
    fig, (ax,) = _figure(1, width=6.5, height=4.2)
    colors = _colors([c[0] for c in curves])
    for name, taus, point, lo, hi in curves:
        ax.plot(taus, point, color=colors[name], label=name, lw=1.5)
        if lo is not None:
            ax.fill_between(taus, lo, hi, color=colors[name], alpha=0.2, lw=0)
    ax.set_xlabel(f"normalised {metric} tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Performance profile (averaged over tasks), stratified bootstrap 95% band",
                 fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def improvement_png(rows: list[tuple[str, str, float, tuple[float, float] | None]],
                    metric: str) -> bytes | None:
    """P(X > Y) per pair of settings with its 95% interval; 0.5 = no difference."""
    if not rows:
        return None
    fig, (ax,) = _figure(1, width=6.5, height=1.4 + 0.6 * len(rows))
    ys = np.arange(len(rows))[::-1]
    for y, (_, _, p, ci) in zip(ys, rows, strict=True):
        if ci is not None:
            ax.plot(ci, [y, y], color="tab:blue", lw=6, alpha=0.45, solid_capstyle="butt")
        ax.plot([p], [y], "o", color="black", ms=5)
    ax.axvline(0.5, color="gray", ls="--", lw=1)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_yticks(ys, [f"P({a}\n  > {b})" for a, b, _, _ in rows], fontsize="small")
    ax.set_xlabel(f"P(X > Y) on {metric}, averaged over tasks")
    ax.set_title("Probability of improvement (dot), stratified bootstrap 95% CI (bar);\n"
                 "0.5 = no difference", fontsize="small")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)
