"""Which runs are seeds of one setting: grouping by the resolved config, not override text.

Two runs belong together when their resolved configs (.hydra/config.yaml) are equal after
leaving out what does not change what a run learns (seed, threads, checkpointing, logging,
the objective a sweeper reads, resume). Values compare as numbers where they are numbers, so
`algo.epsilon=0` and `algo.epsilon=0.0` are one group. A group is named by the keys that
vary between groups of the same algorithm on the same task (the swept keys), plus the
algorithm and the task where those vary; its `setting` is that name without the task, which
is what matches a setting across tasks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrun.core.escape import one_line
from rlrun.core.run_keys import identifies_configuration

RUNNING = ("running", "interrupted", "pending")


@dataclass
class RunRow:
    """One run as the report needs it (a row of `runs` plus its metric summaries)."""

    run_dir: str
    rel: str
    algo: str | None
    env: str | None
    seed: int | None
    status: str
    error: str | None
    label: str | None
    objective_tag: str | None
    headline: str | None
    config: dict[str, Any]
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    has_config: bool = True
    metric_counts: dict[str, int] = field(default_factory=dict)
    minimize: tuple[str, ...] = ()  # tags its algorithm declares lower-is-better
    problem: str | None = None  # a file of the run that could not be read (index.read_run)
    objectives: tuple[str, ...] = ()  # reported by default: the objective, then others


@dataclass
class Group:
    """Runs of one configuration on one task, differing only in the seed."""

    key: tuple[tuple[str, Any], ...]
    runs: list[RunRow] = field(default_factory=list)
    name: str = ""
    setting: str = ""
    env: str = ""

    def count(self, *statuses: str) -> int:
        return sum(r.status in statuses for r in self.runs)

    def completed_with(self, metric: str) -> list[RunRow]:
        return [r for r in self.runs if r.status == "completed" and metric in r.metrics]


def natural_key(path: Path | str) -> list[Any]:
    """Sort `10_x` after `9_x` (Hydra's job numbers are not zero-padded)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _ignored(key: str) -> bool:
    return not identifies_configuration(key)


def load_runs(con: Any) -> list[RunRow]:
    """Every indexed run with its config and metric summaries, in natural dir order."""
    cfg: dict[str, dict[str, Any]] = {}
    for run_dir, key, num, text in con.execute(
            "SELECT run_dir, key, num, text FROM config").fetchall():
        cfg.setdefault(run_dir, {})[key] = num if num is not None else text
    met: dict[str, dict[str, dict[str, float | None]]] = {}
    counts: dict[str, dict[str, int]] = {}
    for run_dir, tag, last, tail, best, count in con.execute(
            "SELECT run_dir, tag, last, tail_mean, best, count FROM metrics").fetchall():
        met.setdefault(run_dir, {})[tag] = {"last": last, "tail_mean": tail, "best": best}
        counts.setdefault(run_dir, {})[tag] = int(count or 0)
    rows = con.execute("SELECT run_dir, root, rel, algo, env, seed, status, error, label, "
                       "objective_tag, headline, minimize, problem, objectives FROM runs"
                       ).fetchall()
    out = []
    one_root = len({r[1] for r in rows}) == 1
    for (run_dir, root, rel, algo, env, seed, status, error, label, obj, head, mini,
         problem, objectives) in rows:
        c = cfg.get(run_dir, {})
        out.append(RunRow(run_dir, rel if one_root else
                          f"{root.rsplit('/', 1)[-1]}/{rel}", algo, env, seed, status, error,
                          label, obj, head, c, met.get(run_dir, {}), has_config=bool(c),
                          metric_counts=counts.get(run_dir, {}),
                          minimize=tuple(json.loads(mini)) if mini else (),
                          problem=problem,
                          objectives=tuple(json.loads(objectives)) if objectives else ()))
    return sorted(out, key=lambda r: natural_key(r.run_dir))


def group_key(run: RunRow) -> tuple[tuple[str, Any], ...]:
    """The run's resolved config minus seed & co.; algo and task from results.json when the
    run has no .hydra/config.yaml (then it is a group of its own kind)."""
    if not run.has_config:
        return (("algo.name", run.algo), ("env.name", run.env), ("(no .hydra/)", True))
    items = {k: v for k, v in run.config.items() if not _ignored(k)}
    if run.label is not None:
        items["label"] = run.label
    return tuple(sorted(items.items(), key=lambda kv: kv[0]))


def _fmt_value(v: Any) -> str:
    """A config value in a setting's name (tables, legends): control characters escaped."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, float):
        return f"{v:g}"
    return one_line(str(v))


def group_runs(runs: Sequence[RunRow]) -> list[Group]:
    """Groups in order of first appearance, named by what sets them apart."""
    groups: dict[tuple[tuple[str, Any], ...], Group] = {}
    for run in runs:
        groups.setdefault(group_key(run), Group(group_key(run))).runs.append(run)
    out = list(groups.values())
    dicts = [dict(g.key) for g in out]
    algos = {d.get("algo.name") for d in dicts}
    envs = {d.get("env.name") for d in dicts}
    # keys that vary among groups of one algorithm on one task: the swept ones
    by_family: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for d in dicts:
        by_family.setdefault((d.get("algo.name"), d.get("env.name")), []).append(d)
    varying: dict[tuple[Any, Any], list[str]] = {}
    for fam, members in by_family.items():
        keys = set().union(*members) - {"algo.name", "env.name", "label"}
        varying[fam] = sorted(k for k in keys if len({json.dumps(m.get(k), default=str)
                                                      for m in members}) > 1)
    for g, d in zip(out, dicts, strict=True):
        fam = (d.get("algo.name"), d.get("env.name"))
        parts = [f"{k}={_fmt_value(d[k])}" for k in varying[fam] if k in d]
        if "label" in d:
            parts = [one_line(str(d["label"]))]
        head = [str(d.get("algo.name"))] if len(algos) > 1 or not parts else []
        if "(no .hydra/)" in d:
            head.append("(no .hydra/)")
        g.setting = " ".join(head + parts)
        g.env = str(d.get("env.name"))
        g.name = f"{g.setting} on {g.env}" if len(envs) > 1 else g.setting
    return out
