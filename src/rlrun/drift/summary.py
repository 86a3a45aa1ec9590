"""`drift.json` and the table on stdout, from Evidently's per-column results.

drift.json: per column the test, score, threshold and drifted flag (Evidently's); the
dataset verdict (drifted columns, their share, Evidently's rule at share 0.5); the top
`WORDS` characteristic words of each side when the text column drifted (Evidently computes
them only then: the words its domain classifier weighs most for that side); where both sides
came from and how many documents each has; the settings; the time each stage took.
"""

from __future__ import annotations

import math
from typing import Any

WORDS = 10


def _number(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None  # JSON has no NaN or inf


def columns_of(table: Any, order: list[str]) -> dict[str, dict[str, Any]]:
    """Per column, in `order` (then any other Evidently tested): test, score, threshold,
    drifted."""
    by = table.drift_by_columns
    names = [c for c in order if c in by] + sorted(set(by) - set(order))
    return {c: {"type": by[c].column_type, "test": by[c].stattest_name,
                "score": _number(by[c].drift_score),
                "threshold": _number(by[c].stattest_threshold),
                "drifted": bool(by[c].drift_detected)} for c in names}


def characteristic_words(table: Any, column: str = "text") -> dict[str, list[str]] | None:
    """The top WORDS words of each side, or None when the text did not drift (Evidently
    looks for them only then)."""
    m = table.drift_by_columns.get(column)
    if m is None or not m.drift_detected or m.current.characteristic_words is None:
        return None
    return {"current": list(m.current.characteristic_words)[:WORDS],
            "reference": list(m.reference.characteristic_words)[:WORDS]}


def record(table: Any, order: list[str], drift_share: float) -> dict[str, Any]:
    cols = columns_of(table, order)
    return {"dataset_drift": bool(table.dataset_drift),
            "drifted_columns": int(table.number_of_drifted_columns),
            "columns_tested": int(table.number_of_columns),
            "share_drifted": _number(table.share_of_drifted_columns),
            "drift_share": drift_share, "columns": cols,
            "characteristic_words": characteristic_words(table)}


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.3f}".rstrip("0").rstrip(".")


def table_lines(rec: dict[str, Any]) -> list[str]:
    """The short table rlrun-drift prints."""
    cols = rec["columns"]
    w = max(len("column"), *(len(c) for c in cols))
    t = max(len("test"), *(len(v["test"]) for v in cols.values()))
    lines = [f"{'column':<{w}}  {'type':<4}  {'test':<{t}}  {'score':>9}  {'threshold':>9}  drift"]
    for name, v in cols.items():
        lines.append(f"{name:<{w}}  {v['type']:<4}  {v['test']:<{t}}  {_fmt(v['score']):>9}"
                     f"  {_fmt(v['threshold']):>9}  {'DRIFT' if v['drifted'] else 'no'}")
    verdict = "yes" if rec["dataset_drift"] else "no"
    rule = ">=" if rec["dataset_drift"] else "<"
    lines.append(f"dataset drift: {verdict} ({rec['drifted_columns']} of {rec['columns_tested']}"
                 f" columns drifted, share {_fmt(rec['share_drifted'])} {rule}"
                 f" {rec['drift_share']:g})")
    words = rec["characteristic_words"]
    if words:
        lines.append("characteristic words of current: " + ", ".join(words["current"]))
        lines.append("characteristic words of reference: " + ", ".join(words["reference"]))
    return lines
