"""From indexed runs to answers: per-task tables, cross-task statistics, summary.md/.csv, PNGs.

One summary holds every metric asked for (default: each algorithm's declared objective, e.g.
`eval/return` for deep RL, `eval/val_ppl` for the LM, `eval/fid` for DDPM, the bandits'
average reward over all steps), so a second `--metric` adds a section instead of replacing
the file. Only `completed` runs enter the statistics; failed, stale and still-running runs
are counted per setting and listed with their errors.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.core.escape import spreadsheet_safe
from rlrun.core.logger import lower_is_better
from rlrun.report.groups import RUNNING, Group, RunRow
from rlrun.report.stats import (
    MIN_SEEDS,
    Summary,
    aggregate_iqm,
    iqm,
    normalise,
    performance_profile,
    probability_of_improvement,
    rank,
    summarise,
    winner,
)

# Metrics that are returns, to which the per-env normalisation (scores.yaml) applies.
RETURN_TAGS = ("eval/return", "charts/episodic_return")
PROFILE_TAUS = (0.25, 0.5, 0.75, 1.0)


class ReportError(Exception):
    """A problem with the roots or the arguments: one line on stderr, exit code 2."""


@dataclass
class EnvTable:
    env: str
    rows: list[tuple[Group, Summary]]
    verdict: str


@dataclass
class CrossTask:
    """Across-task statistics of one metric (normalised scores)."""

    tasks: list[str]
    settings: list[str]
    aggregate: list[tuple[str, float, tuple[float, float] | None, dict[str, float]]]
    profiles: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]
    improvement: list[tuple[str, str, float, tuple[float, float] | None]]
    norms: dict[str, dict[str, Any]]


@dataclass
class MetricSection:
    metric: str
    stat: str
    higher: bool
    tables: list[EnvTable]
    cross: CrossTask | None = None
    cross_note: str = ""
    pngs: list[str] = field(default_factory=list)


def default_metrics(runs: Sequence[RunRow]) -> list[str]:
    """Each algorithm's declared objective and the tags it reports beside it (results.json's
    `objectives`: the LM's eval/val_bpb), or its headline where no run recorded either."""
    out: list[str] = []
    by_algo: dict[str | None, list[RunRow]] = {}
    for r in runs:
        by_algo.setdefault(r.algo, []).append(r)
    for members in by_algo.values():
        tags = [r.objective_tag for r in members if r.objective_tag] or \
               [r.headline for r in members if r.headline]
        tags += [t for r in members for t in r.objectives]
        for t in tags:
            if t not in out:
                out.append(t)
    return out


def check_metrics(given: list[str] | None, runs: Sequence[RunRow]) -> list[str]:
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


def _shows(group: Group, metric: str, algos_with: set[str | None]) -> bool:
    """A setting belongs in a metric's table when its runs logged the metric or declare it,
    or when it logged nothing yet (failed early) and its algorithm logs it elsewhere."""
    if any(metric in r.metrics or metric in (r.objective_tag, r.headline) for r in group.runs):
        return True
    return not any(r.metrics for r in group.runs) and group.runs[0].algo in algos_with


def values_of(group: Group, metric: str, stat: str) -> list[float]:
    return [float(v) for r in group.completed_with(metric)
            if (v := r.metrics[metric].get(stat)) is not None]


def build_section(groups: Sequence[Group], runs: Sequence[RunRow], metric: str, stat: str,
                  scores: dict[str, dict[str, Any]]) -> MetricSection:
    # the direction the runs' algorithms declare (schema `minimize`), never guessed by name
    higher = not any(lower_is_better(metric, r.minimize) for r in runs if metric in r.metrics)
    algos_with = {r.algo for r in runs if metric in r.metrics}
    shown = [g for g in groups if _shows(g, metric, algos_with)]
    tables = []
    for env in dict.fromkeys(g.env for g in shown):
        pairs = [(g, summarise(values_of(g, metric, stat))) for g in shown if g.env == env]
        ranked = rank([(g.setting, s) for g, s in pairs], higher)
        by_setting = {g.setting: (g, s) for g, s in pairs}
        rows = [by_setting[name] for name, _ in ranked]
        _, verdict = winner(ranked, higher)
        tables.append(EnvTable(env, rows, verdict))
    section = MetricSection(metric, stat, higher, tables)
    section.cross, section.cross_note = cross_task(tables, metric, scores, higher)
    return section


def cross_task(tables: list[EnvTable], metric: str, scores: dict[str, dict[str, Any]],
               higher: bool) -> tuple[CrossTask | None, str]:
    """Normalised scores across tasks: needs 2+ tasks with a stated normalisation."""
    if len(tables) < 2:
        return None, ""
    if metric not in RETURN_TAGS:
        return None, (f"{metric} is not a return: no per-task normalisation is known, so no "
                      "cross-task statistics")
    known = [t for t in tables if t.env in scores]
    missing = [t.env for t in tables if t.env not in scores]
    note = (f"left out of the cross-task statistics (no normalisation in scores.yaml): "
            f"{', '.join(missing)}" if missing else "")
    per_setting: dict[str, dict[str, list[float]]] = {}
    for t in known:
        for g, s in t.rows:
            if s.n:
                norm = scores[t.env]
                per_setting.setdefault(g.setting, {})[t.env] = list(
                    normalise(s.values, norm["random"], norm["reference"]))
    tasks = [t.env for t in known if sum(t.env in d for d in per_setting.values())]
    settings = [s for s, d in per_setting.items() if all(e in d for e in tasks)]
    if len(tasks) < 2 or not settings:
        return None, note or ("no setting has results on two or more tasks with a stated "
                              "normalisation: no cross-task statistics")
    partial = [s for s in per_setting if s not in settings]
    if partial:
        note = "; ".join(filter(None, [note, "left out of the cross-task statistics (not run "
                                       f"on every task): {', '.join(partial)}"]))
    aggregate = []
    for s in settings:
        point, ci = aggregate_iqm([per_setting[s][e] for e in tasks])
        aggregate.append((s, point, ci, {e: float(iqm(per_setting[s][e])) for e in tasks}))
    sign = -1.0 if higher else 1.0
    aggregate.sort(key=lambda a: sign * a[1])
    settings = [a[0] for a in aggregate]
    pooled = np.concatenate([v for s in settings for v in per_setting[s].values()])
    lo, hi = min(0.0, float(pooled.min())), max(1.0, float(pooled.max()))
    taus = np.linspace(lo, hi, 101)
    profiles = [(s, taus, *performance_profile([per_setting[s][e] for e in tasks], taus))
                for s in settings]
    improvement = []
    for i, a in enumerate(settings):
        for b in settings[i + 1:]:
            p, ci = probability_of_improvement([per_setting[a][e] for e in tasks],
                                               [per_setting[b][e] for e in tasks], higher)
            improvement.append((a, b, p, ci))
    if len(settings) > 6:  # all pairs would be unreadable: the leader against the others
        improvement = [row for row in improvement if row[0] == settings[0]]
    return CrossTask(tasks, settings, aggregate, profiles, improvement,
                     {e: scores[e] for e in tasks}), note


# ---- text ------------------------------------------------------------------------------------
def fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def _ci(ci: tuple[float, float] | None, why: str = "") -> str:
    return why if ci is None else f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def md_table(head: list[str], body: list[list[str]], right: Sequence[bool]) -> list[str]:
    """An aligned Markdown table (readable in a terminal and rendered on GitHub)."""
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w)
                                 for c, w, r in zip(cells, widths, right, strict=True)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                          for w, r in zip(widths, right, strict=True)) + "|"
    return [line(head), rule, *map(line, body)]


TABLE_HEAD = ["setting", "n", "IQM", "IQM 95% CI", "mean", "mean 95% CI", "median", "std",
              "failed", "stale", "running"]
TABLE_RIGHT = [False, True, True, False, True, False, True, True, True, True, True]


def section_markdown(sec: MetricSection, several_envs: bool) -> list[str]:
    direction = "higher is better" if sec.higher else "lower is better"
    lines = [f"## {sec.metric} ({sec.stat} of each run, {direction})", ""]
    for t in sec.tables:
        if several_envs:
            lines += [f"### {t.env}", ""]
        body = [[g.setting or "(all runs)", str(s.n), fmt(s.iqm), _ci(s.iqm_ci, s.why_no_ci),
                 fmt(s.mean), _ci(s.mean_ci, s.why_no_ci), fmt(s.median), fmt(s.std),
                 str(g.count("failed")), str(g.count("stale")), str(g.count(*RUNNING))]
                for g, s in t.rows]
        lines += md_table(TABLE_HEAD, body, TABLE_RIGHT)
        lines += ["", t.verdict, ""]
    if any(s.n and s.iqm_ci is None for t in sec.tables for _, s in t.rows):
        lines += [f"Intervals need at least {MIN_SEEDS} completed seeds: a bootstrap over one "
                  "or two values says nothing about the spread, so none is shown.", ""]
    if sec.cross is not None:
        lines += cross_markdown(sec.cross, sec.metric)
    if sec.cross_note:
        lines += [f"Note: {sec.cross_note}.", ""]
    return lines


def cross_markdown(c: CrossTask, metric: str) -> list[str]:
    lines = [f"### Across tasks: normalised {metric}", "",
             "score = (return - random) / (reference - random); 0 = uniform random policy, "
             "1 = reference:", ""]
    lines += md_table(["task", "random", "reference", "source"],
                      [[e, fmt(n["random"]), fmt(n["reference"]), str(n.get("source", ""))]
                       for e, n in c.norms.items()], [False, True, True, False])
    lines += ["", "Aggregate IQM of normalised scores (all runs of all tasks pooled, "
                  "stratified bootstrap 95% CI):", ""]
    lines += md_table(["setting", "aggregate IQM", "95% CI", *c.tasks],
                      [[s, fmt(p), _ci(ci, f"fewer than {MIN_SEEDS} runs on a task"),
                        *(fmt(per[e]) for e in c.tasks)] for s, p, ci, per in c.aggregate],
                      [False, True, False, *([True] * len(c.tasks))])
    lines += ["", "Performance profile: fraction of runs with a normalised score above tau "
                  "(averaged over tasks):", ""]
    rows = []
    for s, taus, point, _, _ in c.profiles:
        rows.append([s, *(fmt(float(np.interp(tau, taus, point))) if tau <= taus[-1] else
                          fmt(float(point[-1])) for tau in PROFILE_TAUS)])
    lines += md_table(["setting", *(f"tau={t:g}" for t in PROFILE_TAUS)], rows,
                      [False, *([True] * len(PROFILE_TAUS))])
    if c.improvement:
        lines += ["", "Probability of improvement (a run of X beats a run of Y on the same "
                      "task; ties count half; 0.5 = no difference):", ""]
        lines += md_table(["X", "Y", "P(X > Y)", "95% CI"],
                          [[a, b, fmt(p), _ci(ci, f"fewer than {MIN_SEEDS} runs")]
                           for a, b, p, ci in c.improvement], [False, False, True, False])
    lines.append("")
    return lines


def csv_text(sections: Sequence[MetricSection]) -> str:
    """One row per metric x task x setting: every number of the tables, full precision."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", "stat", "env", "rank", "setting", "n", "iqm", "iqm_ci_low",
                "iqm_ci_high", "mean", "mean_ci_low", "mean_ci_high", "median", "std",
                "failed", "stale", "running", "higher_is_better", "key"])

    def r(x: float | None) -> str:
        return "" if x is None else repr(x)

    for sec in sections:
        for t in sec.tables:
            for i, (g, s) in enumerate(t.rows, 1):
                w.writerow([spreadsheet_safe(str(c)) for c in (
                    sec.metric, sec.stat, t.env, i, g.setting, s.n, r(s.iqm),
                    *(r(x) for x in (s.iqm_ci or (None, None))), r(s.mean),
                    *(r(x) for x in (s.mean_ci or (None, None))), r(s.median),
                    r(s.std), g.count("failed"), g.count("stale"), g.count(*RUNNING),
                    sec.higher, " ".join(f"{k}={v}" for k, v in g.key))])
    return buf.getvalue()


def status_line(runs: Sequence[RunRow], groups: Sequence[Group]) -> str:
    counts = {s: sum(r.status == s for r in runs) for s in ("completed", "failed", "stale")}
    running = sum(r.status in RUNNING for r in runs)
    failed = [r.rel for r in runs if r.status == "failed"]
    where = f" ({'; '.join(failed)})" if failed else ""
    return (f"{len(runs)} runs in {len(groups)} groups: {counts['completed']} completed, "
            f"{counts['failed']} failed{where}, {counts['stale']} stale, "
            f"{running} still running")


def problems_markdown(runs: Sequence[RunRow]) -> list[str]:
    """Failed and stale runs, and runs whose files could not all be read."""
    bad = [r for r in runs if r.status in ("failed", "stale") or r.problem]
    if not bad:
        return []
    lines = ["## Failed and stale runs, and unreadable files", ""]
    for r in bad:
        what = r.error or ("its process is gone; it never finished" if r.status == "stale"
                           else "no error recorded")
        if r.problem and r.problem != r.error:
            what = r.problem if r.status not in ("failed", "stale") else f"{what}; {r.problem}"
        lines.append(f"- `{r.rel}` ({r.status}): {what}")
    return [*lines, ""]


def seed_notes(groups: Sequence[Group]) -> list[str]:
    """Warnings about the grouping that would otherwise silently skew a statistic."""
    notes = []
    for g in groups:
        seeds = [r.seed for r in g.runs if r.status == "completed"]
        twice = sorted({str(s) for s in seeds if seeds.count(s) > 1})
        if twice:
            notes.append(f"{g.name}: seed {', '.join(twice)} completed more than once "
                         "(runs from several sweeps?); each run counts")
    return notes


def curve_tag(section: MetricSection) -> str:
    """The metric itself, or the runs' headline when the metric is a single end-of-run
    number (the bandits' `..._all_steps`): a curve of one point per run shows nothing."""
    runs = [r for t in section.tables for g, _ in t.rows
            for r in g.completed_with(section.metric)]
    counts = [r.metric_counts.get(section.metric, 0) for r in runs]
    heads = {r.headline for r in runs if r.headline}
    if counts and max(counts) < 3 and len(heads) == 1:
        return heads.pop()
    return section.metric


def curves_data(con: Any, section: MetricSection, x: str, tag: str | None = None
                ) -> dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]]:
    """`{env: {setting: [(x, y) per completed run]}}` of `tag` (default: the section's
    metric) from the scalars table."""
    owner = {r.run_dir: (t.env, g.setting) for t in section.tables for g, _ in t.rows
             for r in g.completed_with(section.metric)}
    panels: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {
        t.env: {g.setting: [] for g, _ in t.rows} for t in section.tables}
    if not owner:
        return panels
    # points of one run at one step (episodes of several vector envs ending together) are
    # averaged: a curve has one value per step
    rows = con.execute(
        "SELECT s.run_dir, s.step, avg(s.value), avg(s.wall_time) - any_value(w.t0) "
        "FROM scalars s "
        "JOIN (SELECT run_dir, min(wall_time) AS t0 FROM scalars GROUP BY run_dir) w "
        "ON w.run_dir = s.run_dir WHERE s.tag = ? GROUP BY s.run_dir, s.step "
        "ORDER BY s.run_dir, s.step", [tag or section.metric]).fetchall()
    by_run: dict[str, list[tuple[int, float, float | None]]] = {}
    for run_dir, step, value, wall in rows:
        if run_dir in owner:
            by_run.setdefault(run_dir, []).append((step, value, wall))
    for run_dir, pts in by_run.items():
        env, setting = owner[run_dir]
        a = np.array([(p[0] if x == "step" else (np.nan if p[2] is None else p[2]), p[1])
                      for p in pts], dtype=float)
        a = a[np.isfinite(a[:, 0])]
        if len(a):
            a = a[np.argsort(a[:, 0], kind="stable")]
            panels[env][setting].append((a[:, 0], a[:, 1]))
    return panels


def png_name(kind: str, metric: str) -> str:
    return f"{kind}_{metric.replace('/', '_')}.png"


def draw(con: Any, section: MetricSection, out: Path, x: str, use_iqm: bool) -> list[str]:
    """Write the section's PNGs into `out`; returns their file names."""
    from rlrun.core.checkpoint import atomic_write_bytes
    from rlrun.report import plots

    xlabel = "step" if x == "step" else "wall time (s since the run's first logged point)"
    tag = curve_tag(section)
    pngs = {
        "curves": plots.curves_png(curves_data(con, section, x, tag), tag, xlabel, use_iqm),
        "final": plots.final_png({t.env: [(g.setting, s) for g, s in t.rows]
                                  for t in section.tables}, section.metric, section.stat),
    }
    if section.cross is not None:
        pngs["aggregate"] = plots.aggregate_png(section.cross.aggregate, section.metric)
        pngs["profile"] = plots.profile_png(section.cross.profiles, section.metric)
        pngs["improvement"] = plots.improvement_png(section.cross.improvement,
                                                    section.metric)
    written = []
    for kind, data in pngs.items():
        if data is not None:
            atomic_write_bytes(out / png_name(kind, section.metric), data)
            written.append(png_name(kind, section.metric))
    return written

