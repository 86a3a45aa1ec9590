"""The `rlrun-drift` console script: arguments, help, one-line errors, exit codes.

Exit codes: 0 after a check (drift or not), 1 with `--fail-on-drift` when Evidently finds
dataset drift (for CI pipelines), 2 for bad input (one line on stderr), 130 on Ctrl-C.
Nothing heavy is imported before the arguments are checked.
"""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path
from typing import Any

from rlrun.core.errors import ConfigError, RlrunError

PROG = "rlrun-drift"
FAIL_FLAG = "--fail-on-drift"
OPTIONS = {
    "current": "the new data (required): CSV or JSONL with a text column and an optional label"
               " column, an aclImdb-style folder (<label>/*.txt), or a text file of one"
               " document a line",
    "reference": "what current is compared with, in the same formats (default: the run's own"
                 " training split, re-read through its saved config)",
    "method": "Evidently's drift test for every column it can take, e.g. ks, chisquare, z,"
              " wasserstein, jensenshannon, psi, perc_text_content_drift (default:"
              " Evidently's choice per column, by type and size)",
    "threshold": "the drift threshold, in (0, 1), of the columns method= sets, or of every"
                 " column (default: each test's own)",
    "text_column": "the text's column in CSV/JSONL (default: the run's env.text_column, else"
                   " text)",
    "label_column": "the true label's column, if any (default: the run's env.label_column,"
                    " else label)",
    "device": "cpu, cuda or auto (default: the run's device)",
}
DEVICES = ("cpu", "cuda", "auto")

HELP = f"""usage: {PROG} RUN_DIR current=PATH [reference=PATH] [key=value ...] [{FAIL_FLAG}]

Does new data still look like what a text classifier (algo=text_classifier) or a character
LM (algo=lm) was trained on? Evidently tests, column by column, the text (a domain
classifier, which also names each side's characteristic words), its length in characters
and words, its out-of-vocabulary share against the run's own vocabulary and its non-letter
share; for the classifier also its predicted label, its confidence and, where the current
data has them, the true labels; for the LM each document's perplexity. The dataset drifts
when half the columns do. Writes RUN_DIR/drift/<date>_<time>/report.html (Evidently's report)
and drift.json (per column the test, score, threshold and verdict). Needs
pip install 'rlrun[drift]'.

options (key=value):
""" + "\n".join(textwrap.fill(h, 92, initial_indent=f"  {k + '=':<15}",
                              subsequent_indent=" " * 17) for k, h in OPTIONS.items()) + f"""
  {FAIL_FLAG:<15}exit with code 1 when Evidently finds dataset drift (CI pipelines)

examples:
  {PROG} outputs/text_classifier/stdlib_docstrings/2026-12-01_10-00-00 current=new.jsonl
  {PROG} RUN current=reviews.csv text_column=review label_column=stars
  {PROG} RUN current=new.txt reference=old.txt method=ks threshold=0.01 {FAIL_FLAG}
  {PROG} LM_RUN current=emails.txt

Exit codes: 0 checked, 1 drift with {FAIL_FLAG}, 2 bad input (one line on stderr).
docs/drift.md"""


def parse_args(argv: list[str]) -> tuple[Path, dict[str, Any], bool]:
    """RUN_DIR, the typed options and whether --fail-on-drift was given; a bad argument is a
    one-line ConfigError."""
    from rlrun.core.config import did_you_mean

    fail = FAIL_FLAG in argv
    args = [a for a in argv if a != FAIL_FLAG]
    usage = f"{PROG} RUN_DIR current=PATH [key=value ...] (see {PROG} --help)"
    if not args:
        raise ConfigError(f"name a run dir: {usage}")
    run_dir, *rest = args
    if run_dir.startswith("-"):
        raise ConfigError(f"unknown flag {run_dir}: {usage}")
    opts: dict[str, Any] = {}
    for arg in rest:
        key, eq, value = arg.partition("=")
        if arg.startswith("-"):
            raise ConfigError(f"unknown flag {arg}{did_you_mean(arg, [FAIL_FLAG])}")
        if not eq or not key:
            raise ConfigError(f"{arg!r}: options are key=value, e.g. current=new.jsonl"
                              " (see --help)")
        if key not in OPTIONS:
            raise ConfigError(f"{key}= is not an option of {PROG}"
                              f"{did_you_mean(key, list(OPTIONS))}")
        if key in opts:
            raise ConfigError(f"{key}= is given twice")
        opts[key] = _typed(key, value)
    if "current" not in opts:
        raise ConfigError(f"give the new data: current=PATH ({usage})")
    return Path(run_dir), opts, fail


def _typed(key: str, value: str) -> Any:
    if key == "threshold":
        try:
            x = float(value)
        except ValueError:
            x = math.nan
        if not 0 < x < 1:
            raise ConfigError(f"threshold={value!r} must be a number in (0, 1): a p-value,"
                              " distance or ROC AUC that the test compares its score with")
        return x
    if key == "device" and value not in DEVICES:
        raise ConfigError(f"device={value!r} must be one of {', '.join(DEVICES)}")
    if not value:
        raise ConfigError(f"{key}= is empty")
    return value


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rlrun-drift` console script."""
    from rlrun.core.errors import describe_os_error

    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(HELP)
        return
    try:
        run_dir, opts, fail = parse_args(argv)
        from rlrun.drift.check import check

        rec = check(run_dir, opts)
    except RlrunError as e:
        _fail(str(e))
    except OSError as e:
        _fail(describe_os_error(e))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)
    if fail and rec["dataset_drift"]:
        sys.exit(1)


def _fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
