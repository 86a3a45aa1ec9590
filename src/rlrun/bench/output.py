"""The table (bench.md), every number (bench.json) and the curves figure (curves.png)."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrun.core.escape import one_line


@dataclass
class Row:
    """One pair's line of the table, with what bench.json keeps besides."""

    pair: str
    kind: str
    verdict: str
    why: str
    n: int
    iqm: float | None
    ci: tuple[float, float] | None
    values: list[float]
    reference: str
    source: str
    wall_s: float
    steps_per_s: float | None
    sb3_steps_per_s: float | None = None
    rlrun_train_steps_per_s: float | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.sb3_steps_per_s and self.rlrun_train_steps_per_s:
            return self.rlrun_train_steps_per_s / self.sb3_steps_per_s
        return None


def _num(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def machine() -> dict[str, Any]:
    """What ran the suite: CPU, cores, Python, torch, rlrun and its git commit."""
    import importlib.metadata as md

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    cpu = platform.processor() or platform.machine()
    with_name = Path("/proc/cpuinfo")
    if with_name.is_file():
        for line in with_name.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": version("torch"),
            "rlrun": version("rlrun"), "stable_baselines3": version("stable-baselines3"),
            "commit": git_commit()}


def git_commit() -> str | None:
    """The commit of the rlrun checkout this code runs from (None when not a git checkout),
    with `+dirty` when it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def table(rows: list[Row], vs_sb3: bool) -> str:
    head = ["pair", "IQM final return", "95% CI", "n", "reference (source)", "verdict",
            "wall time", "steps/s"]
    if vs_sb3:
        head += ["rlrun train steps/s", "SB3 steps/s", "ratio to SB3"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ci = f"[{_num(r.ci[0])}, {_num(r.ci[1])}]" if r.ci else "-"
        cells = [r.pair, _num(r.iqm, ".2f" if r.kind == "exact" else ".1f"), ci, str(r.n),
                 f"{r.reference} ({r.source})", f"**{r.verdict}**", f"{r.wall_s:.0f} s",
                 _num(r.steps_per_s, ".0f")]
        if vs_sb3:
            ratio = f"{r.ratio:.2f}x" if r.ratio else "-"
            cells += [_num(r.rlrun_train_steps_per_s, ".0f"), _num(r.sb3_steps_per_s, ".0f"),
                      ratio]
        lines.append("| " + " | ".join(one_line(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def write(out: Path, rows: list[Row], meta: dict[str, Any], notes: list[str],
          curves: dict[str, list[tuple[list[float], list[float]]]], vs_sb3: bool) -> str:
    """Write bench.md, bench.json and curves.png (when matplotlib is installed) into `out`;
    returns the table."""
    out.mkdir(parents=True, exist_ok=True)
    text = table(rows, vs_sb3)
    png = None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        notes = [*notes, "no curves.png: matplotlib is not installed (pip install 'rlrun[plot]')"]
    else:
        from rlrun.report.plots import curves_png

        panels = {pair: {"rlrun": [(list(x), list(y)) for x, y in cs]}
                  for pair, cs in curves.items() if cs}
        png = curves_png({p: {s: [(_arr(x), _arr(y)) for x, y in c] for s, c in by.items()}
                          for p, by in panels.items()}, "eval/return", "env steps")
        if png:
            (out / "curves.png").write_bytes(png)
    m = meta["machine"]
    md = [f"# rlrun-bench{' (smoke: not judged)' if meta['smoke'] else ''}", "",
          f"`{meta['command']}`", "",
          f"- machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']},"
          f" torch {m['torch']}, rlrun {m['rlrun']}"
          + (f", stable-baselines3 {m['stable_baselines3']}" if vs_sb3 else ""),
          f"- commit: {m['commit'] or 'not a git checkout'}",
          f"- seeds: {meta['seeds']}; started {meta['started']}; took {meta['wall_s']:.0f} s",
          "- verdict: PASS when the IQM's 95% CI lies at or above the band's low edge, FAIL"
          " when it lies below, UNSURE when it straddles it (docs/benchmark.md)", ""]
    md += [f"- {one_line(n)}" for n in notes] + ([""] if notes else [])
    md += [text, ""]
    why = [f"- {r.pair}: {r.why}" for r in rows]
    md += ["## Why each verdict", "", *why, ""]
    if png:
        md += ["## Curves", "", "![eval/return: IQM over seeds, 95% bootstrap band](curves.png)",
               ""]
    (out / "bench.md").write_text("\n".join(md))
    (out / "bench.json").write_text(json.dumps(
        {**meta, "notes": notes, "pairs": [_row_json(r) for r in rows]}, indent=1,
        allow_nan=False, default=str))
    return text


def _arr(x: list[float]) -> Any:
    import numpy as np

    return np.asarray(x, dtype=float)


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    return x


def _row_json(r: Row) -> dict[str, Any]:
    return _finite({"pair": r.pair, "kind": r.kind, "verdict": r.verdict, "why": r.why,
                    "n": r.n, "iqm": r.iqm, "ci95": list(r.ci) if r.ci else None,
                    "values": r.values, "reference": r.reference, "source": r.source,
                    "wall_s": r.wall_s, "steps_per_s": r.steps_per_s,
                    "rlrun_train_steps_per_s": r.rlrun_train_steps_per_s,
                    "sb3_steps_per_s": r.sb3_steps_per_s, "ratio_to_sb3": r.ratio,
                    "checks": r.checks, "runs": r.runs})
