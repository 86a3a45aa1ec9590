"""Draw Sutton & Barto (2nd ed.) chapter 2 figures from an `rlrun` sweep directory.

`rlrun -m experiment=sutton_barto/fig2_X` runs one job per curve (or per point, for the
parameter study) but only leaves TensorBoard event files and `results.json` behind. This
script turns such a sweep into the book's figure, as a PNG, and prints the numbers behind it
so they can be compared with the book:

    rlrun -m experiment=sutton_barto/fig2_2 hydra.sweep.dir=multirun/fig2_2
    python scripts/sutton_barto_ch2.py multirun/fig2_2               # -> multirun/fig2_2/fig2_2.png
    python scripts/sutton_barto_ch2.py DIR --figure fig2_6 --out study.png

Figures 2.2-2.5 get two stacked panels, average reward and % optimal action against steps,
one line per job (read from its event files, all steps). Figure 2.6 is the parameter study:
each job's average reward over all its steps (`results.json`) against its parameter
(epsilon, alpha, c or Q0) on a log2 axis. Legend labels are built from each job's resolved
`.hydra/config.yaml`, never from directory names. With `--figure auto` (the default) the
figure is read from the sweep's `experiment=sutton_barto/fig2_X` override.

Jobs without `results.json`, or whose status is not `completed`, are skipped with a warning
on stderr. The table on stdout is a Markdown table: for curves, the mean of the last 100 steps
of average reward and % optimal action; for the parameter study, one row per point.

Needs the plot extra (matplotlib): `pip install 'rlrun[plot]'` (in a clone,
`pip install -e '.[plot]'`); without it the script says so in one line and exits with 2.
It draws with the Agg backend (no display).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlrun.report.plots import PLOT_EXTRA, require_matplotlib

FIGURES = ("fig2_2", "fig2_3", "fig2_4", "fig2_5", "fig2_6")
CURVE_FIGURES = FIGURES[:4]
REWARD_TAG = "bandit/average_reward"
OPTIMAL_TAG = "bandit/optimal_action"
ALL_STEPS_REWARD = "bandit/average_reward_all_steps"
ALL_STEPS_OPTIMAL = "bandit/optimal_action_all_steps"
TAIL = 100  # steps averaged for the "final" values in the table
_NUMBER = re.compile(r"-|[-+]?[0-9.]+(?:e[-+]?[0-9]+)?|[0-9]+/[0-9]+")
_FIGURE_RE = re.compile(r"sutton_barto/(?:points/)?(fig2_[2-6])(?![0-9])")


class UsageError(Exception):
    """A problem with the sweep dir or the arguments: one line on stderr, exit code 2."""


@dataclass
class Job:
    """One completed job of the sweep."""

    path: Path
    num: int
    cfg: dict[str, Any]
    results: dict[str, Any]
    label: str = ""
    color: str | None = None
    reward: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per step, from step 1
    optimal: np.ndarray = field(default_factory=lambda: np.zeros(0))  # fraction, 0..1

    @property
    def algo(self) -> dict[str, Any]:
        return self.cfg.get("algo") or {}

    @property
    def env(self) -> dict[str, Any]:
        return self.cfg.get("env") or {}


# ---- reading the sweep ---------------------------------------------------------------------
def _load_yaml(path: Path) -> Any:
    with path.open() as f:
        return yaml.safe_load(f)


def _task_overrides(hydra_yaml: Path) -> list[str]:
    """`hydra.overrides.task` of a multirun.yaml or a job's .hydra/hydra.yaml ([] if none)."""
    try:
        data = _load_yaml(hydra_yaml) or {}
    except (OSError, yaml.YAMLError):
        return []
    task = (((data.get("hydra") or {}).get("overrides") or {}).get("task")) or []
    return [str(o) for o in task]


def detect_figure(sweep: Path, job_dirs: Sequence[Path]) -> str:
    """The fig2_X named by the sweep's `experiment=sutton_barto/fig2_X` override."""
    candidates = [sweep / "multirun.yaml"] + [d / ".hydra" / "hydra.yaml" for d in job_dirs]
    for path in candidates:
        for override in _task_overrides(path):
            key, _, value = override.lstrip("+~").partition("=")
            if key.startswith("experiment"):
                match = _FIGURE_RE.search(f"{key}/{value}")
                if match:
                    return match.group(1)
    raise UsageError(
        f"cannot tell which figure {sweep} is (no experiment=sutton_barto/fig2_X override"
        " in its multirun.yaml): pass --figure"
    )


def _job_num(path: Path) -> int:
    head = path.name.split("_", 1)[0]
    return int(head) if head.isdigit() else 1 << 30


def find_job_dirs(sweep: Path) -> list[Path]:
    """Sub-directories that hold a Hydra job (a .hydra/config.yaml), in job-number order."""
    dirs = [d for d in sweep.iterdir() if (d / ".hydra" / "config.yaml").is_file()]
    return sorted(dirs, key=lambda d: (_job_num(d), d.name))


def load_jobs(job_dirs: Sequence[Path]) -> list[Job]:
    """Completed jobs; the others are named in a warning on stderr."""
    jobs, skipped = [], []
    for d in job_dirs:
        results_path = d / "results.json"
        if not results_path.is_file():
            skipped.append(f"{d.name} (no results.json)")
            continue
        try:
            results = json.loads(results_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            skipped.append(f"{d.name} (unreadable results.json: {e})")
            continue
        status = results.get("status")
        if status != "completed":
            skipped.append(f"{d.name} (status {status})")
            continue
        cfg = _load_yaml(d / ".hydra" / "config.yaml") or {}
        jobs.append(Job(path=d, num=_job_num(d), cfg=cfg, results=results))
    for s in skipped:
        print(f"warning: skipping job {s}", file=sys.stderr)
    return jobs


def load_curves(job: Job) -> bool:
    """Fill job.reward / job.optimal from its event files (all of them: a resumed run has
    several). Returns False, with a warning, if the scalars are not there."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(job.path), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags().get("scalars", []))
    missing = [t for t in (REWARD_TAG, OPTIMAL_TAG) if t not in tags]
    if missing:
        print(f"warning: skipping job {job.path.name} (no {', '.join(missing)} in its event"
              " files; was it run with logger.tensorboard=false?)", file=sys.stderr)
        return False
    series = []
    for tag in (REWARD_TAG, OPTIMAL_TAG):
        by_step: dict[int, float] = {}
        # Later writes win: a resumed run may have re-logged steps after its last checkpoint.
        for event in sorted(acc.Scalars(tag), key=lambda e: e.wall_time):
            by_step[int(event.step)] = float(event.value)
        steps = sorted(by_step)
        expected = int(job.env.get("steps", len(steps)))
        if steps != list(range(1, len(steps) + 1)) or len(steps) != expected:
            print(f"warning: job {job.path.name}: {tag} has {len(steps)} steps"
                  f" ({steps[0] if steps else '-'}..{steps[-1] if steps else '-'}),"
                  f" expected 1..{expected}", file=sys.stderr)
        series.append((np.array(steps), np.array([by_step[s] for s in steps])))
    (_, job.reward), (_, job.optimal) = series
    return True


# ---- labels --------------------------------------------------------------------------------
def fmt(x: Any) -> str:
    """A number as the book writes it: 0.1, 2, 5."""
    if isinstance(x, bool) or x is None:
        return str(x)
    return f"{float(x):g}"


def fraction(x: float) -> str:
    """A power of two as the book's axis writes it: 1/128, 1/4, 1, 2."""
    f = Fraction(float(x)).limit_denominator(1024)
    if f.denominator == 1:
        return str(f.numerator)
    if abs(float(f) - float(x)) > 1e-9:
        return fmt(x)
    return f"{f.numerator}/{f.denominator}"


def generic_label(job: Job) -> str:
    """Algorithm name and its parameters, for jobs a figure does not expect."""
    a = job.algo
    name = str(a.get("name", "?"))
    keys = [k for k in ("epsilon", "c", "step_size", "initial_value", "baseline") if k in a]
    params = ", ".join(f"{k}={fmt(a[k])}" for k in keys)
    return f"{name} ({params})" if params else name


def curve_label(figure: str, job: Job) -> tuple[str, str | None]:
    """Book-style legend label and colour for one job of figures 2.2-2.5."""
    a, name = job.algo, job.algo.get("name")
    if name == "epsilon_greedy":
        eps = float(a.get("epsilon", 0.0))
        q1 = float(a.get("initial_value", 0.0))
        alpha = a.get("step_size")
        if figure == "fig2_2" and q1 == 0 and alpha is None:
            colors = {0.0: "tab:green", 0.01: "tab:red", 0.1: "tab:blue"}
            text = "ε = 0 (greedy)" if eps == 0 else f"ε = {fmt(eps)}"
            return text, colors.get(eps)
        if figure == "fig2_3":
            kind = "Optimistic" if q1 > float(job.env.get("mean", 0.0)) else "Realistic"
            method = "greedy" if eps == 0 else "ε-greedy"
            text = f"{kind}, {method} Q₁ = {fmt(q1)}, ε = {fmt(eps)}"
            if alpha is not None and float(alpha) != 0.1:  # the book's step size is 0.1
                text += f", α = {fmt(alpha)}"
            return text, "tab:blue" if kind == "Optimistic" else "tab:gray"
        if figure == "fig2_4" and q1 == 0:
            text = f"ε-greedy ε = {fmt(eps)}"
            if alpha is not None:
                text += f", α = {fmt(alpha)}"
            return text, "tab:gray"
    if name == "ucb" and figure == "fig2_4":
        text = f"UCB c = {fmt(a.get('c'))}"
        if a.get("step_size") is not None:
            text += f", α = {fmt(a['step_size'])}"
        if float(a.get("initial_value", 0.0)) != 0:
            text += f", Q₁ = {fmt(a['initial_value'])}"
        return text, "tab:blue"
    if name == "gradient_bandit" and figure == "fig2_5":
        alpha = float(a.get("step_size", 0.1))
        baseline = bool(a.get("baseline", True))
        text = f"α = {fmt(alpha)} {'with' if baseline else 'without'} baseline"
        shades = ({0.1: "#1f4e9c", 0.4: "#6fa8dc"} if baseline
                  else {0.1: "#8b5a2b", 0.4: "#d2a679"})
        return text, shades.get(alpha)
    return generic_label(job), None


# ---- parameter study (Fig. 2.6) ------------------------------------------------------------
@dataclass
class StudyCurve:
    name: str
    param: str  # the symbol on the book's x axis
    color: str
    points: list[tuple[float, Job]] = field(default_factory=list)


def study_curves(jobs: Sequence[Job]) -> list[StudyCurve]:
    """Group Fig. 2.6 jobs into the book's four curves (in the book's legend order)."""
    curves: dict[str, StudyCurve] = {}

    def add(key: str, name: str, param: str, color: str, x: Any, job: Job) -> None:
        curve = curves.setdefault(key, StudyCurve(name, param, color))
        curve.points.append((float(x), job))

    for job in jobs:
        a, name = job.algo, job.algo.get("name")
        if name == "epsilon_greedy" and float(a.get("epsilon", 0)) > 0:
            add("eps", "ε-greedy", "ε", "tab:red", a["epsilon"], job)
        elif name == "epsilon_greedy":
            alpha = a.get("step_size")
            tail = "sample averages" if alpha is None else f"α = {fmt(alpha)}"
            add(f"opt{alpha}", f"greedy with optimistic initialization, {tail}", "Q₀", "black",
                a.get("initial_value", 0.0), job)
        elif name == "gradient_bandit":
            base = "" if a.get("baseline", True) else " (no baseline)"
            add(f"grad{base}", f"gradient bandit{base}", "α", "tab:green",
                a.get("step_size"), job)
        elif name == "ucb":
            add("ucb", "UCB", "c", "tab:blue", a.get("c"), job)
        else:
            print(f"warning: skipping job {job.path.name} (algo {name} is not in Figure 2.6)",
                  file=sys.stderr)
    order = ["eps", "grad", "ucb"]
    out = sorted(curves.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order
                                                 else len(order), kv[0]))
    for _, curve in out:
        curve.points.sort(key=lambda p: p[0])
    return [c for _, c in out]


# ---- drawing and tables --------------------------------------------------------------------
def _runs_text(jobs: Sequence[Job]) -> str:
    runs = sorted({int(j.env.get("num_runs", 0)) for j in jobs})
    steps = sorted({int(j.env.get("steps", 0)) for j in jobs})
    r = str(runs[0]) if len(runs) == 1 else f"{runs[0]}-{runs[-1]}"
    s = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
    return f"{r} runs × {s} steps"


def _testbed_text(jobs: Sequence[Job]) -> str:
    means = sorted({float(j.env.get("mean", 0.0)) for j in jobs})
    return "" if means == [0.0] else f", q*(a) ~ N({', '.join(fmt(m) for m in means)}, 1)"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:  # numbers right-aligned, text left-aligned
        cells = [c.rjust(w) if _NUMBER.fullmatch(c) else c.ljust(w)
                 for c, w in zip(r, widths, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw_curves(figure: str, jobs: Sequence[Job], out: Path) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    labels = [curve_label(figure, j) for j in jobs]
    texts = [t for t, _ in labels]
    for job, (text, color) in zip(jobs, labels, strict=True):
        # Two jobs with the same parameters (e.g. a seed sweep): tell them apart.
        job.label = text if texts.count(text) == 1 else f"{text} [{job.path.name}]"
        job.color = color

    fig = Figure(figsize=(8, 8), layout="constrained")
    FigureCanvasAgg(fig)
    ax_r, ax_o = fig.subplots(2, 1, sharex=True)
    for job in jobs:
        steps = np.arange(1, len(job.reward) + 1)
        ax_r.plot(steps, job.reward, color=job.color, lw=1, label=job.label)
        ax_o.plot(np.arange(1, len(job.optimal) + 1), 100 * job.optimal, color=job.color,
                  lw=1, label=job.label)
    max_steps = max(len(j.reward) for j in jobs)
    ax_r.set_ylabel("Average\nreward")
    ax_o.set_ylabel("%\nOptimal\naction")
    ax_o.set_xlabel("Steps")
    ax_o.set_ylim(0, 100)
    ax_o.yaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    ax_r.set_xlim(0, max_steps)
    for ax in (ax_r, ax_o):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", frameon=False)
    number = figure.replace("fig", "Figure ").replace("_", ".")
    fig.suptitle(f"{number}: 10-armed testbed, average over {_runs_text(jobs)}"
                 f"{_testbed_text(jobs)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)

    tail = min(TAIL, max_steps)
    header = ["curve", f"avg reward (last {tail})", f"% optimal (last {tail})",
              "avg reward (all steps)", "job"]
    rows = []
    for j in jobs:
        all_steps = j.results.get("metrics", {}).get(ALL_STEPS_REWARD, {}).get("last")
        rows.append([j.label, f"{j.reward[-TAIL:].mean():.3f}",
                     f"{100 * j.optimal[-TAIL:].mean():.1f}",
                     "-" if all_steps is None else f"{all_steps:.3f}", j.path.name])
    return _markdown(header, rows)


def draw_study(jobs: Sequence[Job], out: Path) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = study_curves(jobs)
    points = [(x, j) for c in curves for x, j in c.points]
    if not points:
        raise UsageError("no job of the sweep belongs to Figure 2.6")
    bad = [j.path.name for x, j in points if not x > 0]
    if bad:
        raise UsageError(f"Figure 2.6 needs positive parameters (log axis): {', '.join(bad)}")

    def value(job: Job, tag: str) -> float:
        return float(job.results.get("metrics", {}).get(tag, {}).get("last", math.nan))

    fig = Figure(figsize=(8, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for c in curves:
        xs = [x for x, _ in c.points]
        ys = [value(j, ALL_STEPS_REWARD) for _, j in c.points]
        ax.plot(xs, ys, color=c.color, marker="o", ms=3, lw=1.5, label=f"{c.name} ({c.param})")
    ax.set_xscale("log", base=2)
    lo = min(-7, math.floor(math.log2(min(x for x, _ in points))))
    hi = max(2, math.ceil(math.log2(max(x for x, _ in points))))
    ticks = [2.0**e for e in range(lo, hi + 1)]
    ax.set_xticks(ticks, [fraction(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlim(ticks[0] / 1.3, ticks[-1] * 1.3)
    ax.set_xlabel("ε   α   c   Q₀")
    steps = sorted({int(j.env.get("steps", 0)) for _, j in points})
    span = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
    ax.set_ylabel(f"Average reward\nover first {span} steps")
    ys = [value(j, ALL_STEPS_REWARD) for _, j in points]
    finite = [y for y in ys if math.isfinite(y)]
    if finite:  # the book's axis is 1.0-1.5; widen it for data outside that range
        ax.set_ylim(min(1.0, min(finite) - 0.02), max(1.5, max(finite) + 0.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center", frameon=False, fontsize="small")
    fig.suptitle(f"Figure 2.6: parameter study, 10-armed testbed, {_runs_text(jobs)}"
                 f"{_testbed_text(jobs)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)

    header = ["curve", "param", "value", "avg reward (all steps)", "% optimal (all steps)",
              "job"]
    rows = []
    for c in curves:
        for x, j in c.points:
            opt = value(j, ALL_STEPS_OPTIMAL)
            rows.append([c.name, c.param, fraction(x), f"{value(j, ALL_STEPS_REWARD):.3f}",
                         "-" if math.isnan(opt) else f"{100 * opt:.1f}", j.path.name])
    return _markdown(header, rows)


# ---- CLI -----------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Draw a Sutton & Barto chapter 2 figure from an rlrun sweep dir "
                    "(rlrun -m experiment=sutton_barto/fig2_X).",
        epilog=f"Needs the plot extra (matplotlib): {PLOT_EXTRA}")
    p.add_argument("sweep_dir", type=Path, help="the sweep's dir (holds multirun.yaml)")
    p.add_argument("--figure", choices=("auto", *FIGURES), default="auto",
                   help="which figure (default: auto, from the sweep's experiment= override)")
    p.add_argument("--out", type=Path, default=None,
                   help="PNG to write (default: SWEEP_DIR/<figure>.png)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    sweep: Path = args.sweep_dir
    if not sweep.is_dir():
        raise UsageError(f"{sweep} is not a directory")
    job_dirs = find_job_dirs(sweep)
    figure = args.figure if args.figure != "auto" else detect_figure(sweep, job_dirs)
    jobs = load_jobs(job_dirs)
    if figure in CURVE_FIGURES:
        jobs = [j for j in jobs if load_curves(j)]
    if not jobs:
        raise UsageError(f"no usable jobs in {sweep} ({len(job_dirs)} job dirs, none"
                         " completed with results)")
    out: Path = args.out if args.out is not None else sweep / f"{figure}.png"
    table = draw_study(jobs, out) if figure == "fig2_6" else draw_curves(figure, jobs, out)
    number = figure.replace("fig", "Figure ").replace("_", ".")
    print(f"{number} from {sweep} ({len(jobs)} jobs, {_runs_text(jobs)}{_testbed_text(jobs)})")
    print(table)
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 unusable sweep dir or arguments)."""
    args = parse_args(argv)
    require_matplotlib("sutton_barto_ch2.py")
    try:
        return run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
