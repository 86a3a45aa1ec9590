"""`rlrun-report DIR`: mean, spread and confidence intervals over seeds, per configuration.

A sweep with `seed=0,1,2` leaves one folder per (configuration, seed) and nothing that says
which configuration won or by how much. This command walks DIR (a sweep, a `multirun/` with
several sweeps, or an `outputs/` of single runs), groups the runs by their configuration
without the seed, and answers per metric with a table (mean, sample std, 95% t-interval of
the mean, seeds, failed, still running), `summary.csv`, `summary.md` and a PNG of the mean
learning curves with their 95% bands:

    rlrun -m algo.epsilon=0,0.1 seed=0,1,2 hydra.sweep.dir=multirun/eps
    rlrun-report multirun/eps                                  # the headline metric, `last`
    rlrun-report multirun --metric bandit/optimal_action,bandit/average_reward --stat tail_mean

Numbers come from each run's `results.json` (the same `last`, `tail_mean`, `best` summaries a
sweeper sees); curves come from its TensorBoard event files. Only `completed` runs enter the
statistics: a failed job is counted as failed and listed, a `running` or `interrupted` one (or
a job folder without `results.json` yet) as running, so a sweep can be looked at while it runs.

Imports stay light (no torch): matplotlib and tensorboard are imported only for the PNG, and
without matplotlib (`pip install rlrun[plot]`) the tables are still written.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrun.core.checkpoint import atomic_write_bytes
from rlrun.core.logger import higher_is_better
from rlrun.core.status import effective_status

PROG = "rlrun-report"
STATS = ("last", "tail_mean", "best")

# Overrides that do not change what a run learns, so runs that differ only in them are seeds
# of the same configuration. `threads`, `checkpoint_every_s` and `objective.*` change speed,
# checkpointing and what a sweeper reads, never the curves.
_IGNORED_KEYS = ("seed", "resume", "threads", "checkpoint_every_s")
_IGNORED_PREFIXES = ("hydra.", "hydra/", "logger.", "objective.")

# Two-sided 95% critical values of Student's t for df = 1..30 (used when scipy is missing);
# beyond 30 degrees of freedom the normal 1.96 is within 4% of the exact value.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

# Run statuses that count as "still running" in the tables. A process killed without a
# word (SIGKILL, out of memory) leaves `running` behind; `effective_status` calls it `stale`.
_RUNNING = ("running", "interrupted", "pending")


class ReportError(Exception):
    """A problem with DIR or the arguments: one line on stderr, exit code 2."""


@dataclass
class Run:
    """One run folder: what its results.json and .hydra/ say about it."""

    path: Path
    rel: str  # relative to the report's DIR, for messages
    status: str  # completed, failed, running, interrupted, or pending (no results.json)
    results: dict[str, Any]
    key: tuple[str, ...]  # the group key: overrides without seed & co.
    has_overrides: bool = True  # False: no .hydra/overrides.yaml, key is algo + env only
    label: str | None = None
    seed: Any = None
    error: str | None = None

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        return self.results.get("metrics") or {}


@dataclass
class Group:
    """Runs of one configuration, differing only in the seed."""

    key: tuple[str, ...]
    runs: list[Run] = field(default_factory=list)
    name: str = ""

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.status in ("failed", "stale")]

    @property
    def running(self) -> list[Run]:
        return [r for r in self.runs if r.status not in ("completed", "failed", "stale")]

    def completed_with(self, metric: str) -> list[Run]:
        return [r for r in self.runs if r.status == "completed" and metric in r.metrics]


@dataclass
class Row:
    """One line of a table: a group's statistics for one metric."""

    group: Group
    metric: str
    stat: str
    values: list[float]
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def n(self) -> int:
        return len(self.values)


# ---- finding and reading runs ----------------------------------------------------------------
def find_run_dirs(root: Path) -> list[Path]:
    """Every folder below `root` (itself included) holding results.json or .hydra/config.yaml.

    Run folders are not searched further (their .hydra/ and checkpoints/ hold no runs), and
    hidden folders are skipped, so a big `outputs/` is walked once.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if "results.json" in filenames or (here / ".hydra" / "config.yaml").is_file():
            found.append(here)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> list[Any]:
    """Sort `10_x` after `9_x` (Hydra's job numbers are not zero-padded)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _normalise(override: str) -> str:
    # `+key=v` and `++key=v` add or force a key; for grouping they mean `key=v`.
    return override.lstrip("+").strip()


def _ignored(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("~")
    return key in _IGNORED_KEYS or key.startswith(_IGNORED_PREFIXES)


def group_key(overrides: Sequence[str] | None, algo: Any, env: Any) -> tuple[str, ...]:
    """The sorted overrides minus seed, hydra.*, logger.*, resume (and speed knobs).

    `algo=`/`env=` are added from the run's own record when no override names them, so a
    plain `rlrun` run and `rlrun algo=epsilon_greedy` land in the same group and runs made
    without Hydra (no overrides.yaml) are grouped by algorithm and task.
    """
    entries = {_normalise(str(o)) for o in overrides or () if not _ignored(_normalise(str(o)))}
    keys = {e.split("=", 1)[0] for e in entries}
    for name, value in (("algo", algo), ("env", env)):
        if name not in keys and value not in (None, "", "None"):
            entries.add(f"{name}={value}")
    return tuple(sorted(entries))


def read_run(path: Path, root: Path) -> Run:
    """Read one run folder, whatever state it is in (finished, failed early, still going)."""
    rel = "." if path == root else str(path.relative_to(root))
    results: dict[str, Any] = {}
    error = None
    results_path = path / "results.json"
    if results_path.is_file():
        try:
            loaded = json.loads(results_path.read_text())
            results = loaded if isinstance(loaded, dict) else {}
            status = effective_status(results)  # `stale`: a running run whose process died
            error = results.get("error")
        except (OSError, json.JSONDecodeError) as e:
            status, error = "failed", f"results.json unreadable: {e}"
    else:
        status = "pending"  # Hydra made the job folder; train() has not written results yet
    cfg = _load_yaml(path / ".hydra" / "config.yaml")
    cfg = cfg if isinstance(cfg, dict) else {}
    overrides = _load_yaml(path / ".hydra" / "overrides.yaml")
    overrides = overrides if isinstance(overrides, list) else None
    algo = results.get("algo") or (cfg.get("algo") or {}).get("name")
    env = results.get("env") or (cfg.get("env") or {}).get("name")
    label = cfg.get("label")
    return Run(path=path, rel=rel, status=status, results=results,
               key=group_key(overrides, algo, env), has_overrides=overrides is not None,
               label=None if label in (None, "", "None", "null") else str(label),
               seed=results.get("seed", cfg.get("seed")), error=error)


def group_runs(runs: list[Run]) -> list[Group]:
    """Groups in order of first appearance, each named by what sets it apart from the rest.

    A group's name is its `label` when every run in it shares one label and no other group
    uses it; otherwise its override entries that are not common to all groups (the full key
    when that leaves nothing), e.g. `algo.epsilon=0.1` in a sweep over epsilon. Groups of runs
    without overrides.yaml (made outside Hydra, or failed before Hydra wrote it) do not count
    in "common": one such job must not lengthen every name of the sweep it belongs to.
    """
    groups: dict[tuple[str, ...], Group] = {}
    for run in runs:
        groups.setdefault(run.key, Group(run.key)).runs.append(run)
    out = list(groups.values())
    known = [g for g in out if any(r.has_overrides for r in g.runs)] or out
    common = set.intersection(*(set(g.key) for g in known)) if len(out) > 1 else set()
    labels = [{r.label for r in g.runs} for g in out]
    single = [next(iter(s)) if len(s) == 1 else None for s in labels]
    for g, lab in zip(out, single, strict=True):
        if lab is not None and single.count(lab) == 1:
            g.name = lab
        else:
            g.name = " ".join(e for e in g.key if e not in common) or " ".join(g.key) or "(none)"
    names = [g.name for g in out]
    for g in out:
        if names.count(g.name) > 1:
            g.name = " ".join(g.key) or "(none)"
    return out


# ---- statistics --------------------------------------------------------------------------------
def t_critical(df: int) -> float:
    """Two-sided 95% critical value of Student's t: scipy's when installed, else a table."""
    try:
        from scipy.stats import t
    except ImportError:
        return _T975[df - 1] if df <= len(_T975) else 1.96
    return float(t.ppf(0.975, df))


def summarise(values: Sequence[float]) -> tuple[float | None, float | None,
                                                 float | None, float | None]:
    """Mean, sample std (ddof=1) and the 95% t-interval of the mean.

    With one value there is no spread to estimate: std is 0 and the interval is left blank
    rather than pretending to be exact. Non-finite values (a diverged seed) are kept so the
    mean shows it instead of hiding the seed.
    """
    n = len(values)
    if n == 0:
        return None, None, None, None
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0, None, None
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_critical(n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def make_rows(groups: list[Group], metric: str, stat: str) -> list[Row]:
    """One row per group that knows this metric, the better mean first (direction by tag)."""
    rows = []
    for g in groups:
        if not _shows(g, metric):
            continue
        values = [float(r.metrics[metric][stat]) for r in g.completed_with(metric)
                  if r.metrics[metric].get(stat) is not None]
        rows.append(Row(g, metric, stat, values, *summarise(values)))
    sign = -1.0 if higher_is_better(metric) else 1.0

    def order(row: Row) -> tuple[int, float]:
        if row.mean is None or math.isnan(row.mean):
            return (1, 0.0)  # no value yet, or a NaN: after every number
        return (0, sign * row.mean)

    return sorted(rows, key=order)  # stable: ties keep the order of the sweep


def _shows(group: Group, metric: str) -> bool:
    """Whether a group belongs in the metric's table.

    Groups that logged the metric or name it as their headline do; so do groups that have
    logged nothing at all yet (failed before their first step, or not started): they would
    otherwise vanish from every table and their failures with them.
    """
    if any(metric in r.metrics or r.results.get("headline") == metric for r in group.runs):
        return True
    return not any(r.metrics for r in group.runs)


def default_metrics(runs: list[Run]) -> list[str]:
    """The runs' headline metrics, in order of first appearance (one per algorithm family)."""
    out: list[str] = []
    for r in runs:
        h = r.results.get("headline")
        if h and h not in out:
            out.append(str(h))
    return out


# ---- output ------------------------------------------------------------------------------------
def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def _ci(row: Row) -> str:
    return "" if row.ci_low is None else f"[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]"


def markdown_table(rows: list[Row], metric: str, stat: str) -> str:
    """An aligned Markdown table (readable in a terminal and rendered on GitHub)."""
    head = ["group", "mean", "std", "95% CI", "seeds", "failed", "running"]
    body = [[r.group.name, _fmt(r.mean), _fmt(r.std), _ci(r), str(r.n),
             str(len(r.group.failed)), str(len(r.group.running))] for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    right = [False, True, True, False, True, True, True]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w)
                                 for c, w, r in zip(cells, widths, right, strict=True)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                          for w, r in zip(widths, right, strict=True)) + "|"
    direction = "higher is better" if higher_is_better(metric) else "lower is better"
    lines = [f"## {metric} ({stat}, {direction})", "", line(head), rule, *map(line, body), ""]
    winner = next((r for r in rows if r.mean is not None and not math.isnan(r.mean)), None)
    lines.append(f"best: {winner.group.name}" if winner else "best: (no completed run yet)")
    return "\n".join(lines)


def csv_text(tables: list[tuple[str, list[Row]]]) -> str:
    """One row per group x metric, every column of the tables plus the full group key."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", "stat", "rank", "group", "mean", "std", "ci95_low", "ci95_high",
                "seeds", "failed", "running", "higher_is_better", "key"])
    for metric, rows in tables:
        for rank, r in enumerate(rows, 1):
            w.writerow([metric, r.stat, rank, r.group.name,
                        *("" if x is None else repr(x)
                          for x in (r.mean, r.std, r.ci_low, r.ci_high)),
                        r.n, len(r.group.failed), len(r.group.running),
                        higher_is_better(metric), " ".join(r.group.key)])
    return buf.getvalue()


# ---- learning curves ---------------------------------------------------------------------------
def read_curve(run_dir: Path, tag: str) -> tuple[list[float], list[float]] | None:
    """(steps, values) of one scalar tag from a run's event files, or None if absent.

    The whole folder is loaded so a resumed run (several event files) reads as one series;
    a step written twice keeps its last value.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    try:
        acc.Reload()
    except Exception:  # a truncated or foreign event file must not stop the report
        return None
    if tag not in acc.Tags().get("scalars", []):
        return None
    by_step = {e.step: e.value for e in acc.Scalars(tag)}
    steps = sorted(by_step)
    return [float(s) for s in steps], [float(by_step[s]) for s in steps]


def mean_curve(curves: list[tuple[list[float], list[float]]]):
    """Mean over seeds and the 95% band, on the steps of the first run.

    Runs of one configuration normally log at the same steps and are averaged as they are.
    When they do not, each run is linearly interpolated onto the first run's steps, and only
    inside its own range (outside it that run is left out of the mean at that step, never
    extrapolated): the first run's grid keeps every point of a typical curve, where the
    common steps of all runs could be empty. The band is drawn where two or more runs count.
    """
    import numpy as np

    grid = np.asarray(curves[0][0], dtype=float)
    stack = np.full((len(curves), len(grid)), np.nan)
    for i, (s, v) in enumerate(curves):
        s, v = np.asarray(s, dtype=float), np.asarray(v, dtype=float)
        if len(s) == len(grid) and np.array_equal(s, grid):
            stack[i] = v
        else:
            inside = (grid >= s[0]) & (grid <= s[-1])
            stack[i, inside] = np.interp(grid[inside], s, v)
    n = np.sum(~np.isnan(stack), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(stack, axis=0) / np.maximum(n, 1)
        dev = np.where(np.isnan(stack), 0.0, stack - mean)
        std = np.sqrt(np.sum(dev ** 2, axis=0) / np.maximum(n - 1, 1))
    tcrit = np.array([t_critical(int(k) - 1) if k >= 2 else np.nan for k in n])
    half = np.where(n >= 2, tcrit * std / np.sqrt(np.maximum(n, 1)), np.nan)
    return grid, mean, mean - half, mean + half


def plot_curves(groups: list[Group], metric: str, title: str) -> bytes | None:
    """PNG bytes of per-group mean curves with 95% bands; None when no group has a curve."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    drawn = 0
    for g in groups:
        curves = [c for r in g.completed_with(metric) if (c := read_curve(r.path, metric))]
        if not curves:
            continue
        x, mean, low, high = mean_curve(curves)
        style = {"marker": "o"} if len(x) < 3 else {}
        (line,) = ax.plot(x, mean, label=f"{g.name} (n={len(curves)})", **style)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(f"{title}: {metric} (mean over seeds, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def curve_filename(metric: str) -> str:
    return f"curves_{metric.replace('/', '_')}.png"


# ---- the command -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Summarise rlrun runs over seeds: per configuration (the overrides "
                    "without seed=), the mean, std and 95% confidence interval of a metric, "
                    "with failed and still-running jobs counted. Writes summary.csv, "
                    "summary.md and curves_<metric>.png.")
    p.add_argument("dir", type=Path,
                   help="a sweep dir (multirun/<date>_<time>), a multirun/ or outputs/ folder, "
                        "or one run dir; searched recursively")
    p.add_argument("--metric", action="append", default=None, metavar="TAG",
                   help="scalar tag(s) to report, repeatable or comma-separated "
                        "(default: the runs' headline metric)")
    p.add_argument("--stat", choices=STATS, default="last",
                   help="which summary of each run enters the statistics: last value, "
                        "tail_mean (mean of the last 10%% of points) or best (default: last)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where to write summary.csv, summary.md and the PNGs (default: DIR)")
    p.add_argument("--no-plot", action="store_true", help="skip the learning-curve PNGs")
    return p


def _metrics_from_args(given: list[str] | None, runs: list[Run]) -> list[str]:
    if not given:
        return default_metrics(runs)
    metrics = list(dict.fromkeys(t.strip() for arg in given for t in arg.split(",")
                                 if t.strip()))
    logged = {t for r in runs for t in r.metrics}
    unknown = [m for m in metrics if m not in logged]
    if logged and unknown:
        raise ReportError(f"no run logged {', '.join(unknown)}; logged tags: "
                          f"{', '.join(sorted(logged))}")
    return metrics


def report(root: Path, metrics: list[str] | None = None, stat: str = "last",
           out: Path | None = None, plot: bool = True) -> int:
    """Run the whole report on `root`; print tables and a closing line; return 0."""
    if not root.is_dir():
        raise ReportError(f"{root} is not a directory" if root.exists()
                          else f"{root} does not exist")
    runs = [read_run(p, root) for p in find_run_dirs(root)]
    if not runs:
        raise ReportError(f"no runs under {root} (no folder with results.json or "
                          ".hydra/config.yaml)")
    out = root if out is None else out
    groups = group_runs(runs)
    chosen = _metrics_from_args(metrics, runs)

    tables = [(m, make_rows(groups, m, stat)) for m in chosen]
    texts = [markdown_table(rows, m, stat) for m, rows in tables]
    if not chosen:
        texts = ["No run has a headline metric yet (all failed early or have not started)."]
    notes = _notes(groups)
    print("\n\n".join(texts))
    for note in notes:
        print(f"note: {note}")

    md = [f"# rlrun report: {root.resolve().name}", "", *(t + "\n" for t in texts)]
    failed = [r for r in runs if r.status in ("failed", "stale")]
    if failed:
        md += ["## Failed runs", ""]
        md += [f"- `{r.rel}`: {r.error or 'no error recorded'}" for r in failed]
        md.append("")
    if notes:
        md += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    atomic_write_bytes(out / "summary.md", "\n".join(md).encode())
    atomic_write_bytes(out / "summary.csv", csv_text(tables).encode())
    written = ["summary.md", "summary.csv"]

    if plot and chosen:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("note: matplotlib is not installed, no curves drawn "
                  "(pip install 'rlrun[plot]')")
        else:
            for m, rows in tables:  # legend in table order: the winner first
                png = plot_curves([r.group for r in rows], m, root.resolve().name)
                if png is not None:
                    atomic_write_bytes(out / curve_filename(m), png)
                    written.append(curve_filename(m))
    print(f"wrote {', '.join(written)} to {out}")

    running = [r for r in runs if r.status not in ("completed", "failed", "stale")]
    where = f" ({'; '.join(r.rel for r in failed)})" if failed else ""
    print(f"{len(runs)} runs in {len(groups)} groups: "
          f"{sum(r.status == 'completed' for r in runs)} completed, "
          f"{len(failed)} failed{where}, {len(running)} still running")
    return 0


def _notes(groups: list[Group]) -> list[str]:
    """Warnings about the grouping that would otherwise silently skew a mean."""
    notes = []
    for g in groups:
        seeds = [r.seed for r in g.runs if r.status == "completed"]
        twice = sorted({str(s) for s in seeds if seeds.count(s) > 1})
        if twice:
            notes.append(f"{g.name}: seed {', '.join(twice)} completed more than once "
                         "(runs from several sweeps?); each run counts")
    return notes


def main(argv: list[str] | None = None) -> int:
    """Entry point of `rlrun-report` (and `python -m rlrun.report`); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return report(args.dir, args.metric, args.stat, args.out, plot=not args.no_plot)
    except ReportError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rlrun-report DIR | head`: stop quietly, files are written
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (keeps the exit flush quiet)
        return 1


if __name__ == "__main__":
    sys.exit(main())
