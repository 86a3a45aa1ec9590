"""The offline demonstration of docs/drift.md: what `rlrun-drift` flags on a text classifier of
the standard library's docstrings (`rlrun algo=text_classifier`, the offline default), with
data that ships with Python. Three cases:

1. **Shift**: reference = the run's own training split (docstrings of 11 packages); current
   = the comments of the same packages' source (`#` lines, consecutive ones joined into one
   document, at least 20 characters), labelled by package. Another register of text about
   the same code: the text and its descriptors should drift.
2. **Label-only shift**: reference = a random half of the training split; current = the other
   half with a different class balance (`LABEL_SHIFT`: three classes kept whole, every other
   class cut to a quarter). The same kind of text: labels and predictions should drift, the
   text should not.
3. **No shift**: random halves of the training split, `--repeats` times (seeds 1000, 1001,
   ...). The share of checks flagged as dataset drift, and of columns flagged, is the
   false-alarm rate; each column's test runs at Evidently's nominal level (p = 0.05, or the
   95th percentile of random classifiers for the text). Twice: with Evidently's defaults,
   and with `method=TVD threshold=0.05` (a permutation test) for the categorical columns,
   because Evidently's default for them, chi-squared, takes the reference's proportions as
   exact (`chi_square_expected_rate` is what that alone makes it flag).

    python scripts/drift_demo.py                         # trains the default classifier (~1 min)
    python scripts/drift_demo.py --run RUN_DIR --repeats 20 --png docs/figures/drift_report.png

Everything is offline. The checks run in this process through `rlrun.drift.check.check`
(what the console script runs), so Evidently is imported once. Results go to
OUT/demo.json (default OUT: drift_demo/) and are printed as the tables of docs/drift.md.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import subprocess
import sys
import sysconfig
import tokenize
from collections import Counter
from pathlib import Path

LABEL_SHIFT = {"keep": ("asyncio", "email", "logging"), "others": 0.25}


def stdlib_comments(packages: list[str], min_chars: int = 20) -> list[tuple[str, str]]:
    """(comment, package): the `#` comments of the packages' source files (tests skipped, as
    the docstring reader skips them), consecutive comment lines joined. Read with
    `tokenize`; nothing is imported."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            if {"test", "tests", "idle_test"} & set(f.relative_to(root).parts):
                continue
            try:
                toks = list(tokenize.generate_tokens(io.StringIO(
                    f.read_text(encoding="utf-8")).readline))
            except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
                continue
            block: list[str] = []
            last = -10
            for t in toks:
                if t.type != tokenize.COMMENT:
                    continue
                if t.start[0] != last + 1 and block:
                    docs.append((" ".join(block), pkg))
                    block = []
                body = t.string.lstrip("#").strip()
                if body:
                    block.append(body)
                last = t.start[0]
            if block:
                docs.append((" ".join(block), pkg))
    return [(d, p) for d, p in docs if len(d) >= min_chars]


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    return path


def halves(rows: list, seed: int) -> tuple[list, list]:
    order = list(rows)
    random.Random(seed).shuffle(order)
    return order[:len(order) // 2], order[len(order) // 2:]


def relabel_balance(rows: list[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
    """LABEL_SHIFT applied to `rows`: the kept classes whole, the others cut."""
    rng = random.Random(seed)
    out = []
    for lab in sorted({lab for _, lab in rows}):
        mine = [r for r in rows if r[1] == lab]
        if lab not in LABEL_SHIFT["keep"]:
            mine = rng.sample(mine, round(len(mine) * LABEL_SHIFT["others"]))
        out += mine
    rng.shuffle(out)
    return out


def train_default(out: Path) -> Path:
    run = out / "run"
    if not (run / "checkpoints" / "last.pt").is_file():
        subprocess.run([sys.executable, "-m", "rlrun", "algo=text_classifier", "threads=1",
                        "logger.progress=none", f"hydra.run.dir={run}"], check=True)
    return run


def screenshot(html: Path, png: Path, size: str = "1280,1500") -> None:
    """The top of Evidently's report (the dataset verdict and the first columns) as a PNG,
    rendered by headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("--png needs Chromium: apt-get install -y chromium")
    png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--virtual-time-budget=10000", f"--screenshot={png.resolve()}",
                    f"--window-size={size}", html.resolve().as_uri()],
                   check=True, capture_output=True)


def brief(rec: dict) -> dict:
    return {"dataset_drift": rec["dataset_drift"],
            "drifted": [c for c, v in rec["columns"].items() if v["drifted"]],
            "columns": {c: {k: v[k] for k in ("test", "score", "threshold", "drifted")}
                        for c, v in rec["columns"].items()},
            "characteristic_words": rec["characteristic_words"],
            "documents": [rec["reference"]["documents"], rec["current"]["documents"]],
            "timings_s": rec["timings_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="a text_classifier run on env=stdlib_docstrings"
                    " (default: train the default one into OUT/run)")
    ap.add_argument("--out", type=Path, default=Path("drift_demo"))
    ap.add_argument("--repeats", type=int, default=20, help="no-shift repetitions")
    ap.add_argument("--png", type=Path, help="write the shift report's summary as this PNG")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run = args.run or train_default(args.out)

    from omegaconf import OmegaConf

    from rlrun.core.config import validate
    from rlrun.data.text_classification import TextClassificationConfig, load_splits
    from rlrun.drift.check import check

    env = validate(OmegaConf.load(run / ".hydra" / "config.yaml").env,
                   TextClassificationConfig, "env")  # the run's own data settings
    train = load_splits(env)[0]
    data = args.out / "data"
    data.mkdir(exist_ok=True)
    results: dict = {"run": str(run), "training_texts": len(train)}
    quiet = lambda line: None  # noqa: E731

    # 1. shift: comments of the same packages against the training split
    comments = stdlib_comments(list(env.packages))
    rec = check(run, {"current": str(write_jsonl(data / "comments.jsonl", comments))}, print)
    results["shift"] = brief(rec)
    if args.png:
        html = Path(rec["run_dir"]) / "drift" / sorted(
            p.name for p in (Path(rec["run_dir"]) / "drift").iterdir())[-1] / "report.html"
        screenshot(html, args.png)

    # 2. label-only shift: half of train against the other half, rebalanced
    a, b = halves(train, 0)
    shifted = relabel_balance(b, 0)
    rec = check(run, {"reference": str(write_jsonl(data / "half_a.jsonl", a)),
                      "current": str(write_jsonl(data / "half_b_rebalanced.jsonl", shifted))},
                print)
    results["label_shift"] = brief(rec)
    results["label_shift"]["balance"] = {
        "reference": dict(Counter(lab for _, lab in a).most_common()),
        "current": dict(Counter(lab for _, lab in shifted).most_common())}

    # 3. no shift: random halves, repeated; Evidently's defaults, and a two-sample test for
    # the categorical columns (TVD: a permutation test) at the nominal 0.05
    results["no_shift"] = {}
    for variant, extra in (("defaults", {}), ("TVD", {"method": "TVD", "threshold": 0.05})):
        runs = []
        for seed in range(args.repeats):
            a, b = halves(train, 1000 + seed)
            rec = check(run, {"reference": str(write_jsonl(data / "nosh_a.jsonl", a)),
                              "current": str(write_jsonl(data / "nosh_b.jsonl", b)), **extra},
                        quiet)
            runs.append(brief(rec))
            print(f"no shift ({variant}), seed {1000 + seed}: dataset drift"
                  f" {rec['dataset_drift']}, drifted columns {runs[-1]['drifted']}", flush=True)
        per_column = Counter(c for r in runs for c in r["drifted"])
        results["no_shift"][variant] = {
            "repeats": args.repeats, "settings": extra,
            "dataset_drift_flags": sum(r["dataset_drift"] for r in runs),
            "column_flags": sum(len(r["drifted"]) for r in runs),
            "column_tests": len(runs[0]["columns"]) * len(runs),
            "flags_per_column": {c: per_column.get(c, 0) for c in runs[0]["columns"]},
            "tests": {c: v["test"] for c, v in runs[0]["columns"].items()},
            "runs": runs}
    # what Evidently's chi-squared test should flag here: it tests the current counts against
    # the reference's proportions taken as exact, so with equal halves its statistic is about
    # twice a chi-squared variable with k - 1 degrees of freedom
    from scipy.stats import chi2

    k = len({lab for _, lab in train})
    results["no_shift"]["chi_square_expected_rate"] = float(
        chi2.sf(chi2.isf(0.05, k - 1) / 2, k - 1))
    (args.out / "demo.json").write_text(json.dumps(results, indent=1))

    # the tables of docs/drift.md
    for case in ("shift", "label_shift"):
        r = results[case]
        print(f"\n{case}: dataset drift {'yes' if r['dataset_drift'] else 'no'};"
              f" {r['documents'][0]} reference vs {r['documents'][1]} current documents")
        print("| column | test | score | threshold | drift |\n|---|---|---|---|---|")
        for c, v in r["columns"].items():
            print(f"| {c} | {v['test']} | {v['score']:.4g} | {v['threshold']:.4g} |"
                  f" {'**yes**' if v['drifted'] else 'no'} |")
        if r["characteristic_words"]:
            print("characteristic words:", r["characteristic_words"])
    for variant in ("defaults", "TVD"):
        ns = results["no_shift"][variant]
        print(f"\nno shift ({variant}), {ns['repeats']} repeats: dataset drift flagged"
              f" {ns['dataset_drift_flags']}/{ns['repeats']}; columns flagged"
              f" {ns['column_flags']}/{ns['column_tests']}"
              f" ({ns['column_flags'] / ns['column_tests']:.3f})")
        print("| column | test | flagged |\n|---|---|---|")
        for c, n in ns["flags_per_column"].items():
            print(f"| {c} | {ns['tests'][c]} | {n}/{ns['repeats']} |")
    print("Evidently's chi-squared on equal halves should flag"
          f" {results['no_shift']['chi_square_expected_rate']:.2f} of no-shift checks")
    print(f"wrote {args.out / 'demo.json'}")


if __name__ == "__main__":
    main()
