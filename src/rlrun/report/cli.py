"""`rlrun-report ROOT...`: index the runs under ROOTs, print per-setting statistics, write
summary.md, summary.csv and PNGs; or answer `--sql "SELECT ..."` over the index.

Imports stay light until needed: DuckDB when the index is opened, matplotlib for the PNGs
(without it, `pip install rlrun[plot]`, the tables are still written), tensorboard only for
runs made before rlrun wrote scalars.parquet.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from rlrun.core.escape import one_line, spreadsheet_safe, terminal_safe
from rlrun.report.summary import ReportError

PROG = "rlrun-report"
STATS = ("last", "tail_mean", "best")
FORMATS = ("table", "csv", "md", "json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Index rlrun runs (every run dir under the ROOTs) into DuckDB and answer "
                    "which setting won: per setting and task the IQM, mean, median and std "
                    "over seeds with bootstrap 95%% CIs, normalised cross-task statistics, "
                    "and learning-curve PNGs; or run SQL over the tables runs, metrics and "
                    "scalars (docs/report.md).")
    p.add_argument("roots", type=Path, nargs="+", metavar="ROOT",
                   help="a sweep dir, a multirun/ or outputs/ folder, or one run dir; "
                        "searched recursively")
    p.add_argument("--sql", metavar="QUERY",
                   help="print the result of this query over runs, metrics and scalars "
                        "instead of the summary")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="output of --sql: an aligned table (default), csv, md or json")
    p.add_argument("--metric", action="append", default=None, metavar="TAG",
                   help="scalar tag(s) to report, repeatable or comma-separated; all go into "
                        "one summary (default: each algorithm's declared objective)")
    p.add_argument("--stat", choices=STATS, default="last",
                   help="which summary of each run enters the statistics: last value, "
                        "tail_mean (mean of the last 10%% of points) or best (default: last)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where to write summary.md, summary.csv and the PNGs (default: the "
                        "ROOT; required with several ROOTs)")
    p.add_argument("--x", choices=("step", "wall"), default="step",
                   help="x axis of the learning curves: steps or wall time (default: step)")
    p.add_argument("--mean", action="store_true",
                   help="learning curves show the mean over seeds instead of the IQM")
    p.add_argument("--scores", type=Path, default=None, metavar="FILE",
                   help="YAML of per-env `random` and `reference` returns for normalised "
                        "scores (default: rlrun/report/scores.yaml)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNGs")
    p.add_argument("--no-cache", action="store_true",
                   help="index in memory instead of the cached index (~/.cache/rlrun/index/)")
    return p


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise ReportError("the run index needs DuckDB: pip install duckdb "
                          "(a dependency of rlrun; reinstall rlrun)") from None
    return duckdb


def load_scores(path: Path | None) -> dict[str, dict[str, Any]]:
    import yaml

    path = path or Path(__file__).with_name("scores.yaml")
    if path.is_dir():
        raise ReportError(f"--scores {path} is a directory: name a YAML file")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ReportError(f"--scores {path} is not a text file (byte {e.start} is not UTF-8):"
                          " name a YAML file") from None
    except OSError as e:
        from rlrun.core.errors import describe_os_error

        raise ReportError(f"--scores: {describe_os_error(e)}") from None
    except yaml.YAMLError as e:
        raise ReportError(f"--scores {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict) or not all(
            isinstance(v, dict) and {"random", "reference"} <= set(v)
            and v["random"] != v["reference"] for v in data.values()):
        raise ReportError(f"--scores {path}: expected `ENV: {{random: R, reference: R}}` "
                          "entries with random != reference")
    return data


# ---- --sql -----------------------------------------------------------------------------------
def format_rows(columns: list[str], rows: list[tuple], fmt: str) -> str:
    """A query result as an aligned table, CSV, Markdown or JSON records."""
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v)

    if fmt == "json":
        return json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str,
                          indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([spreadsheet_safe(c) for c in columns])
        w.writerows([["" if v is None else spreadsheet_safe(v) if isinstance(v, str) else v
                      for v in r] for r in rows])
        return buf.getvalue().rstrip("\n")
    body = [[cell(v) for v in r] for r in rows]
    right = [bool(rows) and all(isinstance(r[i], int | float) or r[i] is None for r in rows)
             for i in range(len(columns))]
    if fmt == "md":
        from rlrun.report.summary import md_table

        return "\n".join(md_table(columns, body, right))
    widths = [max([len(c)] + [len(b[i]) for b in body]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for b in body:
        lines.append("  ".join(c.rjust(w) if r else c.ljust(w)
                               for c, w, r in zip(b, widths, right, strict=True)).rstrip())
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def run_sql(con: Any, query: str, fmt: str) -> str:
    duckdb = _duckdb()
    if not query.strip().strip(";").strip():
        raise ReportError('--sql is empty: give a query, e.g. --sql "SELECT * FROM runs"')
    try:
        rel = con.execute(query)
        columns = [d[0] for d in rel.description] if rel.description else []
        rows = rel.fetchall() if columns else []
    except duckdb.Error as e:
        raise ReportError(f"--sql: {' '.join(str(e).split())[:400]}") from None
    return format_rows(columns, rows, fmt)


# ---- the summary ----------------------------------------------------------------------------
def report(roots: list[Path], metrics: list[str] | None = None, stat: str = "last",
           out: Path | None = None, plot: bool = True, x: str = "step",
           use_iqm: bool = True, scores: Path | None = None, cache: bool = True) -> int:
    """The whole report on `roots`: print tables and a closing line; return 0."""
    from rlrun.core.checkpoint import atomic_write_bytes
    from rlrun.report import summary as S
    from rlrun.report.groups import group_runs, load_runs

    if out is None and len(roots) > 1:
        raise ReportError("with several ROOTs, say where the summary goes: --out DIR")
    if out is not None and out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file: name a directory (made if missing)")
    norms = load_scores(scores)
    con = _open(roots, cache)
    runs = load_runs(con)
    if not runs:
        raise ReportError(f"no runs under {', '.join(map(str, roots))} (no folder with "
                          "results.json or .hydra/config.yaml)")
    out = roots[0] if out is None else out
    groups = group_runs(runs)
    chosen = S.check_metrics(metrics, runs)
    sections = [S.build_section(groups, runs, m, stat, norms) for m in chosen]
    several_envs = len({g.env for g in groups}) > 1
    texts = ["\n".join(S.section_markdown(sec, several_envs)) for sec in sections]
    if not chosen:
        texts = ["No run has a metric yet (all failed early or have not started)."]
    notes = S.seed_notes(groups)
    print(terminal_safe("\n".join(texts).rstrip()))
    for note in notes:
        print(terminal_safe(f"note: {note}"))

    written = ["summary.md", "summary.csv"]
    if plot and sections:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("note: matplotlib is not installed, no PNGs drawn (pip install 'rlrun[plot]')")
        else:
            out.mkdir(parents=True, exist_ok=True)
            for sec in sections:
                sec.pngs = S.draw(con, sec, out, x, use_iqm)
                written += sec.pngs
    names = ", ".join(Path(r).resolve().name for r in roots)
    md = [f"# rlrun report: {names}", "", S.status_line(runs, groups), ""]
    for sec, text in zip(sections, texts, strict=False):
        md += [text.rstrip(), ""]
        md += [f"![{p}]({p})" for p in sec.pngs] + ([""] if sec.pngs else [])
    if not sections:
        md += [texts[0], ""]
    md += S.problems_markdown(runs)
    if notes:
        md += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "summary.md", terminal_safe("\n".join(md)).encode())
    atomic_write_bytes(out / "summary.csv", S.csv_text(sections).encode())
    print(f"wrote {', '.join(written)} to {out}")
    print(terminal_safe(S.status_line(runs, groups)))
    return 0


def _open(roots: list[Path], cache: bool) -> Any:
    from rlrun.report.index import IndexError_, open_index

    _duckdb()
    try:
        return open_index(roots, cache=cache, quiet=False)
    except IndexError_ as e:
        raise ReportError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of `rlrun-report` (and `python -m rlrun.report`); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.sql is None:
            if args.format is not None:
                raise ReportError("--format applies to --sql output; the summary is written "
                                  "as summary.md and summary.csv")
            return report(args.roots, args.metric, args.stat, args.out,
                          plot=not args.no_plot, x=args.x, use_iqm=not args.mean,
                          scores=args.scores, cache=not args.no_cache)
        con = _open(args.roots, not args.no_cache)
        text = run_sql(con, args.sql, args.format or "table")
        print(text if args.format == "json" else terminal_safe(text))
        return 0
    except ReportError as e:
        print(f"{PROG}: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full --out / ROOT, a file where a folder goes
        from rlrun.core.errors import describe_os_error

        print(f"{PROG}: error: {one_line(describe_os_error(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rlrun-report DIR | head`: stop quietly, files are written
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (keeps the exit flush quiet)
        return 1
