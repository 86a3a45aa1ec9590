"""Draw Sutton & Barto (2nd ed.) chapter 6 figures from an `rlrun` sweep directory.

`rlrun -m experiment=sutton_barto/<figure>` runs one job per curve but only leaves TensorBoard
event files and `results.json` behind. This script turns such a sweep into the book's figure,
as a PNG, and prints the numbers behind it so they can be compared with the book:

    rlrun -m experiment=sutton_barto/fig6_4 hydra.sweep.dir=multirun/fig6_4
    python scripts/sutton_barto_ch6.py multirun/fig6_4               # -> multirun/fig6_4/fig6_4.png
    python scripts/sutton_barto_ch6.py DIR --figure ex6_2 --out rms.png

* ex6_2 (Example 6.2, right panel): `td/rms_error` against episodes 0..N, TD(0) solid and
  constant-alpha MC dashed, one line per step size.
* fig6_4 (Example 6.6, cliff walking): `charts/episodic_return` against episodes 1..N, one
  line per algorithm. The per-episode means over only 50 runs are too noisy to compare with
  the book, which smooths its curves, so a trailing moving average (--window, default 10) is
  drawn; the table is computed from the raw per-episode means.
* fig6_5 (Example 6.7, maximization bias): `td/left_fraction` against episodes 1..N, with
  the 5% of the optimal epsilon-greedy policy as a dotted line.

Legend labels are built from each job's resolved `.hydra/config.yaml`, never from directory
names. With `--figure auto` (the default) the figure is read from the sweep's
`experiment=sutton_barto/<figure>` override. Jobs without `results.json`, whose status is not
`completed`, or whose event files lack the figure's scalar are skipped with a warning on
stderr; if none is left the script prints a one-line error and exits with 2.

The reading, labelling and table helpers are shared with `scripts/sutton_barto_ch2.py`, so
both scripts skip, warn and format the same way. Needs the plot extra (matplotlib):
`pip install 'rlrun[plot]'` (in a clone, `pip install -e '.[plot]'`); without it the script
says so in one line and exits with 2. It draws with the Agg backend (no display).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from rlrun.report.plots import PLOT_EXTRA, require_matplotlib


def _import_ch2() -> ModuleType:
    """The chapter 2 script as a module (scripts/ is not a package). Registered in
    sys.modules before it runs: its dataclasses look their module up while decorating."""
    name = "sutton_barto_ch2"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


ch2 = _import_ch2()
UsageError = ch2.UsageError  # the same class, so callers of either script catch one type

FIGURES = ("ex6_2", "fig6_4", "fig6_5")
TAGS = {"ex6_2": "td/rms_error", "fig6_4": "charts/episodic_return",
        "fig6_5": "td/left_fraction"}
FIRST_STEP = {"ex6_2": 0, "fig6_4": 1, "fig6_5": 1}  # ex6_2 also logs the error before learning
_FIGURE_RE = re.compile(r"sutton_barto/(?:points/)?(ex6_2|fig6_[45])(?![0-9])")
# The book's hyper-parameters; a job that differs gets them in its legend label.
BOOK = {"fig6_4": {"epsilon": 0.1, "step_size": 0.5}, "fig6_5": {"epsilon": 0.1, "step_size": 0.1}}
METHOD_NAMES = {"sarsa": "Sarsa", "q_learning": "Q-learning", "expected_sarsa": "Expected Sarsa"}
CONTROL_COLORS = {
    ("sarsa", False): "tab:blue", ("q_learning", False): "tab:red",
    ("expected_sarsa", False): "tab:green", ("q_learning", True): "tab:green",
}
# The optimal policy goes right; epsilon-greedy over {left, right} still goes left w.p. eps/2.
OPTIMAL_LEFT = 0.05


@dataclass
class Curve:
    """One job's line: its scalar by step, plus how to draw it."""

    job: Any  # sutton_barto_ch2.Job
    steps: np.ndarray
    values: np.ndarray
    label: str = ""
    color: str | None = None
    style: str = "-"
    order: tuple[Any, ...] = ()  # legend and table order


# ---- reading the sweep ---------------------------------------------------------------------
def detect_figure(sweep: Path, job_dirs: Sequence[Path]) -> str:
    """The figure named by the sweep's `experiment=sutton_barto/<figure>` override."""
    candidates = [sweep / "multirun.yaml"] + [d / ".hydra" / "hydra.yaml" for d in job_dirs]
    for path in candidates:
        for override in ch2._task_overrides(path):
            key, _, value = override.lstrip("+~").partition("=")
            if key.startswith("experiment"):
                match = _FIGURE_RE.search(f"{key}/{value}")
                if match:
                    return match.group(1)
    raise UsageError(
        f"cannot tell which figure {sweep} is (no experiment=sutton_barto/ex6_2|fig6_4|fig6_5"
        " override in its multirun.yaml): pass --figure"
    )


def load_curve(figure: str, job: Any) -> Curve | None:
    """The figure's scalar from the job's event files (all of them: a resumed run has
    several; later writes win). None, with a warning, if the scalar is not there."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tag = TAGS[figure]
    acc = EventAccumulator(str(job.path), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in set(acc.Tags().get("scalars", [])):
        print(f"warning: skipping job {job.path.name} (no {tag} in its event files; is it a"
              f" {figure} job, run with logger.tensorboard=true?)", file=sys.stderr)
        return None
    by_step: dict[int, float] = {}
    for event in sorted(acc.Scalars(tag), key=lambda e: e.wall_time):
        by_step[int(event.step)] = float(event.value)
    steps = sorted(by_step)
    first = FIRST_STEP[figure]
    episodes = int(job.algo.get("episodes", steps[-1]))
    if steps != list(range(first, episodes + 1)):
        print(f"warning: job {job.path.name}: {tag} has {len(steps)} steps"
              f" ({steps[0]}..{steps[-1]}), expected {first}..{episodes}", file=sys.stderr)
    return Curve(job, np.array(steps), np.array([by_step[s] for s in steps]))


# ---- labels --------------------------------------------------------------------------------
def _alpha_shade(cmap: str, alpha: float, lo: float, hi: float) -> Any:
    """Darker for larger step sizes, as the book's figure is ordered."""
    from matplotlib import colormaps

    t = 0.5 if hi <= lo else (alpha - lo) / (hi - lo)
    return colormaps[cmap](0.45 + 0.5 * t)


def label_prediction(curves: Sequence[Curve]) -> None:
    """Example 6.2 labels: "TD α=0.05" solid blue shades, "MC α=0.01" dashed red shades."""
    alphas: dict[str, list[float]] = {}
    for c in curves:
        alphas.setdefault(str(c.job.algo.get("method")), []).append(
            float(c.job.algo.get("step_size", math.nan)))
    for c in curves:
        a = c.job.algo
        method, alpha = str(a.get("method")), float(a.get("step_size", math.nan))
        if a.get("name") in ("td0", "mc_constant_alpha") and method in ("td0", "mc"):
            kind = "TD" if method == "td0" else "MC"
            c.label = f"{kind} α={ch2.fmt(alpha)}"
            if float(a.get("initial_value", 0.5)) != 0.5:  # the book's V starts at 0.5
                c.label += f", V₀={ch2.fmt(a['initial_value'])}"
            c.color = _alpha_shade("Blues" if kind == "TD" else "Reds", alpha,
                                   min(alphas[method]), max(alphas[method]))
            c.style = "-" if kind == "TD" else "--"
            c.order = (0 if kind == "TD" else 1, alpha)
        else:
            c.label, c.order = ch2.generic_label(c.job), (2, c.job.num)


def label_control(figure: str, curves: Sequence[Curve]) -> None:
    """Figure 6.4/6.5 labels: the algorithm's name, plus any hyper-parameter that is not
    the book's (so a sweep over step sizes still has a readable legend)."""
    method_order = list(METHOD_NAMES)
    for c in curves:
        a = c.job.algo
        method, double = str(a.get("method", "?")), bool(a.get("double", False))
        if method not in METHOD_NAMES:
            c.label, c.order = ch2.generic_label(c.job), (9, c.job.num)
            continue
        name = METHOD_NAMES[method]
        c.label = f"Double {name}" if double else name
        extra = [f"{sym} = {ch2.fmt(a[key])}"
                 for key, sym in (("epsilon", "ε"), ("step_size", "α"))
                 if key in a and float(a[key]) != BOOK[figure][key]]
        if extra:
            c.label += f" ({', '.join(extra)})"
        c.color = CONTROL_COLORS.get((method, double))
        c.order = (int(double), method_order.index(method), c.job.num)


def finish_labels(curves: list[Curve]) -> list[Curve]:
    """Sort into legend order; two jobs with the same label (a seed sweep) get their dir."""
    curves.sort(key=lambda c: c.order)
    texts = [c.label for c in curves]
    for c in curves:
        if texts.count(c.label) > 1:
            c.label = f"{c.label} [{c.job.path.name}]"
    return curves


# ---- numbers -------------------------------------------------------------------------------
def at(c: Curve, step: int) -> float:
    hit = np.flatnonzero(c.steps == step)
    return float(c.values[hit[0]]) if hit.size else math.nan


def metric(job: Any, tag: str) -> float:
    return float(job.results.get("metrics", {}).get(tag, {}).get("last", math.nan))


def num(x: float, spec: str) -> str:
    return "-" if not math.isfinite(x) else format(x, spec)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` points, the first window-1 points over what exists."""
    c = np.cumsum(np.insert(values.astype(float), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _runs(curves: Sequence[Curve]) -> str:
    runs = sorted({int(c.job.env.get("num_runs", 0)) for c in curves})
    return str(runs[0]) if len(runs) == 1 else f"{runs[0]}-{runs[-1]}"


# ---- drawing -------------------------------------------------------------------------------
def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def draw_ex6_2(curves: Sequence[Curve], out: Path) -> str:
    fig, ax = _figure((8, 5.5))
    for c in curves:
        ax.plot(c.steps, c.values, c.style, color=c.color, lw=1.3, label=c.label)
    last = max(int(c.steps[-1]) for c in curves)
    ax.set_xlim(0, last)
    top = max(0.25, max(float(np.nanmax(c.values)) for c in curves) * 1.05)
    ax.set_ylim(0, top)
    ax.set_xlabel("Walks / Episodes")
    ax.set_ylabel("Empirical RMS error,\naveraged over states")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", frameon=False)
    ax.set_title(f"Example 6.2: random walk, TD(0) vs constant-α MC, V₀ = 0.5,"
                 f" averaged over {_runs(curves)} runs")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)

    points = [0, *(e for e in (10, 50, 100) if e <= last)]
    if last not in points:
        points.append(last)
    header = ["curve", *(f"RMS @ {e}" for e in points), "job"]
    rows = [[c.label, *(num(at(c, e), ".4f") for e in points), c.job.path.name]
            for c in curves]
    return ch2._markdown(header, rows)


def draw_fig6_4(curves: Sequence[Curve], out: Path, window: int) -> str:
    fig, ax = _figure((8, 5.5))
    for c in curves:
        ax.plot(c.steps, moving_average(c.values, window), color=c.color, lw=1.3,
                label=c.label)
    last = max(int(c.steps[-1]) for c in curves)
    ax.set_xlim(0, last)
    ax.set_ylim(-100, 0)  # the book's axis; early episodes (below -100) are cut as there
    ax.set_xlabel("Episodes")
    ax.set_ylabel("Sum of rewards\nduring episode")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", frameon=False)
    eps = sorted({float(c.job.algo.get("epsilon", math.nan)) for c in curves})
    smooth = f"moving average over {window} episodes" if window > 1 else "no smoothing"
    ax.set_title(f"Figure 6.4: cliff walking, ε = {', '.join(ch2.fmt(e) for e in eps)},"
                 f" mean over {_runs(curves)} runs, {smooth}", fontsize="medium")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)

    tail = min(100, last)
    header = ["curve", f"return (last {tail} ep.)", "eval/return", "eval/length",
              "eval reached goal %", "job"]
    rows = []
    for c in curves:
        rows.append([c.label, num(float(c.values[-tail:].mean()), ".2f"),
                     num(metric(c.job, "eval/return"), ".2f"),
                     num(metric(c.job, "eval/length"), ".2f"),
                     num(100 * metric(c.job, "eval/terminated_fraction"), ".0f"),
                     c.job.path.name])
    return ch2._markdown(header, rows)


def draw_fig6_5(curves: Sequence[Curve], out: Path) -> str:
    from matplotlib.ticker import PercentFormatter

    fig, ax = _figure((8, 5.5))
    for c in curves:
        ax.plot(c.steps, 100 * c.values, color=c.color, lw=1.3, label=c.label)
    last = max(int(c.steps[-1]) for c in curves)
    eps = {float(c.job.algo.get("epsilon", 0.1)) for c in curves}
    optimal = eps.pop() / 2 if len(eps) == 1 else OPTIMAL_LEFT
    ax.axhline(100 * optimal, ls=":", color="black", lw=1.2,
               label=f"optimal ({ch2.fmt(100 * optimal)}%)")
    ax.set_xlim(0, last)
    ax.set_ylim(0, 100)
    ax.set_yticks([0, 5, 25, 50, 75, 100])
    ax.yaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    ax.set_xlabel("Episodes")
    ax.set_ylabel("% left\nactions\nfrom A")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", frameon=False)
    ax.set_title(f"Figure 6.5: maximization bias, ε = 0.1, averaged over {_runs(curves)} runs")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)

    head = min(10, last)
    tail = min(50, last)
    header = ["curve", f"max left % (ep. 1-{head})", "peak left %", "peak at ep.",
              "left % @ 100", f"left % (last {tail})", "job"]
    rows = [[c.label, num(100 * float(c.values[:head].max()), ".1f"),
             num(100 * float(c.values.max()), ".1f"), str(int(c.steps[np.argmax(c.values)])),
             num(100 * at(c, 100), ".1f"), num(100 * float(c.values[-tail:].mean()), ".1f"),
             c.job.path.name] for c in curves]
    return ch2._markdown(header, rows)


# ---- CLI -----------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Draw a Sutton & Barto chapter 6 figure from an rlrun sweep dir "
                    "(rlrun -m experiment=sutton_barto/ex6_2|fig6_4|fig6_5).",
        epilog=f"Needs the plot extra (matplotlib): {PLOT_EXTRA}")
    p.add_argument("sweep_dir", type=Path, help="the sweep's dir (holds multirun.yaml)")
    p.add_argument("--figure", choices=("auto", *FIGURES), default="auto",
                   help="which figure (default: auto, from the sweep's experiment= override)")
    p.add_argument("--out", type=Path, default=None,
                   help="PNG to write (default: SWEEP_DIR/<figure>.png)")
    p.add_argument("--window", type=int, default=10,
                   help="fig6_4: episodes in the moving average (1: raw means; default 10)")
    args = p.parse_args(argv)
    if args.window < 1:
        p.error("--window must be >= 1")
    return args


def run(args: argparse.Namespace) -> int:
    sweep: Path = args.sweep_dir
    if not sweep.is_dir():
        raise UsageError(f"{sweep} is not a directory")
    job_dirs = ch2.find_job_dirs(sweep)
    figure = args.figure if args.figure != "auto" else detect_figure(sweep, job_dirs)
    jobs = ch2.load_jobs(job_dirs)
    curves = [c for c in (load_curve(figure, j) for j in jobs) if c is not None]
    if not curves:
        raise UsageError(f"no usable jobs in {sweep} ({len(job_dirs)} job dirs, none"
                         f" completed with {TAGS[figure]} logged)")
    if figure == "ex6_2":
        label_prediction(curves)
    else:
        label_control(figure, curves)
    curves = finish_labels(curves)
    out: Path = args.out if args.out is not None else sweep / f"{figure}.png"
    if figure == "ex6_2":
        table = draw_ex6_2(curves, out)
    elif figure == "fig6_4":
        table = draw_fig6_4(curves, out, args.window)
    else:
        table = draw_fig6_5(curves, out)
    name = figure.replace("ex", "Example ").replace("fig", "Figure ").replace("_", ".")
    env = sorted({str(c.job.env.get("name", "?")) for c in curves})
    print(f"{name} from {sweep} ({len(curves)} jobs, {_runs(curves)} runs, env"
          f" {', '.join(env)})")
    print(table)
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 unusable sweep dir or arguments)."""
    args = parse_args(argv)
    require_matplotlib("sutton_barto_ch6.py")
    try:
        return run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
