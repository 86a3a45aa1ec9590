"""Evidently, run on the columns of both sides (`rlrun[drift]`: evidently 0.7.23, pandas<3).

One `Report([DataDriftPreset()], include_tests=True)` over the text column, its descriptors
(`columns.descriptors`) and the model's columns. Evidently picks each column's test by type
and size (below 1000 reference rows: K-S for numbers, chi-squared or a Z-test for
categories, and for the text a domain classifier's ROC AUC against the 95th percentile of
random classifiers'; above: normed Wasserstein, Jensen-Shannon, and ROC AUC > 0.55), and calls
the dataset drifted when at least half the columns drift (`DRIFT_SHARE`). The text column's
domain classifier (TF-IDF + SGD) also yields the characteristic words of each side when the
text drifted.

`method=NAME` sets the test of every column that test can take (by Evidently's own
`allowed_feature_types`; the others keep their default); `threshold=X` sets the threshold
of those columns, or of every column without `method=`, as Evidently's own `threshold=`
does (each test reads it its own way: p-values drift below it, distances and ROC AUCs
above).

The per-column results (test, score, threshold, drifted) and the dataset verdict are read
from the `DataDriftTable` that the preset's report renders (the same numbers the HTML shows),
found in the report's context by the preset's own parameters.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlrun.core.errors import ConfigError

DRIFT_SHARE = 0.5  # Evidently's default: the dataset drifts when half the columns do
TYPES = {"num": "numerical", "cat": "categorical", "text": "text"}
INSTALL = "pip install 'rlrun[drift]'"


def require_evidently() -> None:
    """One line, before anything loads, when the drift extra is not installed."""
    try:
        found = importlib.util.find_spec("evidently") is not None
    except ValueError:  # sys.modules["evidently"] is None: its import is blocked
        found = False
    if not found:
        raise ConfigError(f"rlrun-drift needs Evidently: {INSTALL}")


def import_evidently() -> None:
    """Import Evidently (~9 s); an install that does not import (pandas 3) is one line."""
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry (only its UI sends)
    try:
        import evidently  # noqa: F401
        from evidently.presets import DataDriftPreset  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"Evidently does not import ({type(e).__name__}: {e}); {INSTALL}"
                          " installs it with the pins it needs (pandas<3)") from None


def method_types(method: str) -> set[str]:
    """The column types ('num', 'cat', 'text') Evidently's test `method` takes."""
    from evidently.legacy.calculations import stattests
    from evidently.legacy.calculations.stattests.registry import StatTest

    known = {t.name: t for t in vars(stattests).values() if isinstance(t, StatTest)}
    if method not in known:
        raise ConfigError(f"method={method!r} is not one of Evidently's drift tests: "
                          + ", ".join(sorted(known, key=str.lower)))
    return {t.value for t in known[method].allowed_feature_types}


@dataclass
class Outcome:
    snapshot: Any  # Evidently's Snapshot (save_html, dict)
    table: Any  # the DataDriftTable result: drift_by_columns, dataset_drift, ...


def overrides(method: str | None, threshold: float | None, typed: dict[str, str]
              ) -> dict[str, Any]:
    """DataDriftPreset's arguments for `method=` and `threshold=` over the columns `typed`
    (name -> 'num'|'cat'|'text', descriptors included); a method that takes none of them is
    a one-line error."""
    if method is None:
        return {"threshold": threshold}
    takes = method_types(method)
    fits = [c for c, t in typed.items() if t in takes]
    if not fits:
        raise ConfigError(f"method={method} tests {' and '.join(TYPES[t] for t in sorted(takes))}"
                          " columns; this check has none (its columns: "
                          + ", ".join(f"{c} ({TYPES[t]})" for c, t in typed.items()) + ")")
    return {"per_column_method": dict.fromkeys(fits, method),
            "per_column_threshold": None if threshold is None else dict.fromkeys(fits, threshold)}


def run_report(reference: Any, current: Any, columns: dict[str, str], descriptors: list[Any],
               method: str | None = None, threshold: float | None = None) -> Outcome:
    """Evidently's data-drift report of `current` against `reference` (pandas frames holding
    `columns`, name -> 'num'|'cat'|'text'; the descriptors are added by Evidently)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.report import _default_input_data_generator
    from evidently.legacy.metrics import DataDriftTable
    from evidently.presets import DataDriftPreset

    chosen = overrides(method, threshold, {**columns, **{d.alias: "num" for d in descriptors}})
    definition = DataDefinition(
        text_columns=[c for c, t in columns.items() if t == "text"],
        numerical_columns=[c for c, t in columns.items() if t == "num"],
        categorical_columns=[c for c, t in columns.items() if t == "cat"])
    preset = DataDriftPreset(drift_share=DRIFT_SHARE, **chosen)
    with warnings.catch_warnings():  # numpy and pandas warnings from inside Evidently
        warnings.simplefilter("ignore")
        cur = Dataset.from_pandas(current, data_definition=definition, descriptors=descriptors)
        ref = Dataset.from_pandas(reference, data_definition=definition,
                                  descriptors=descriptors)
        snapshot = Report([preset], include_tests=True).run(cur, ref)
        # the table the preset rendered, found by the preset's own parameters (no new run)
        table = snapshot.context.get_legacy_metric(DataDriftTable(
            columns=preset.columns, stattest=preset.method, cat_stattest=preset.cat_method,
            num_stattest=preset.num_method, text_stattest=preset.text_method,
            per_column_stattest=preset.per_column_method, stattest_threshold=preset.threshold,
            cat_stattest_threshold=preset.cat_threshold,
            num_stattest_threshold=preset.num_threshold,
            text_stattest_threshold=preset.text_threshold,
            per_column_stattest_threshold=preset.per_column_threshold),
            _default_input_data_generator, None)[0]
    return Outcome(snapshot, table)


def frame(texts: list[str], extra: dict[str, list]) -> Any:
    """The pandas frame of one side: the text and the model's (and label) columns."""
    import pandas as pd

    return pd.DataFrame({"text": texts, **extra})


def save_html(outcome: Outcome, write: Callable[[bytes], None]) -> None:
    """Evidently's self-contained HTML page, handed to `write` as bytes."""
    write(outcome.snapshot.get_html_str(as_iframe=False).encode())
