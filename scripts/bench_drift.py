"""Speed of `rlrun-drift` on 2,000 vs 2,000 documents and of `explain=true` per text
(docs/drift.md, docs/eval.md).

    python scripts/bench_drift.py RUN_DIR        # a text_classifier run on env=stdlib_docstrings

1. `rlrun-drift RUN reference=R current=C` as a user runs it (a subprocess of the console
   script's code): reference = 2,000 standard-library docstrings, current = 2,000 `#`
   comments of the same packages (scripts/drift_demo.py reads them). Its wall time and the
   split drift.json records: loading (run, data, model), importing Evidently, the model's
   inference, Evidently, writing. Reference runs in the same script, alternated with it:
   a bare `python -c "import evidently.presets"` (the import alone), and Evidently's own
   `Report([DataDriftPreset()])` on the same eight columns built in this process (what
   rlrun-drift's Evidently stage costs without rlrun around it).
2. `explain=true` per text: `rlrun.explain.explain` on test-split texts (in process, after a
   warm-up), against labelling the same text alone (`clf([text])`), alternated.

The machine may be shared: each figure is the median of `--repeats` alternated rounds, and
ratios against the references taken in the same rounds are what to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def drift_demo():
    import importlib.util

    spec = importlib.util.spec_from_file_location("drift_demo", HERE / "drift_demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def timed_subprocess(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True,
                   env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, default=Path("bench_drift"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--texts", type=int, default=30, help="explain: texts timed per round")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    demo = drift_demo()

    from rlrun.data.text_classification import STDLIB_PACKAGES, load_splits, stdlib_docstrings
    from rlrun.eval import load_hook, open_run

    docs = stdlib_docstrings(tuple(STDLIB_PACKAGES), 20)
    comments = demo.stdlib_comments(STDLIB_PACKAGES)
    rng = random.Random(0)
    ref = demo.write_jsonl(args.out / "reference.jsonl", rng.sample(docs, 2000))
    cur = demo.write_jsonl(args.out / "current.jsonl", rng.sample(comments, 2000))
    drift_cmd = ["-c", "import sys; from rlrun.drift.cli import main; sys.argv[0] ="
                 " 'rlrun-drift'; main()", str(args.run), f"reference={ref}", f"current={cur}"]

    # ---- 1. rlrun-drift, alternated with the references ----------------------------------
    import pandas as pd

    rounds = []
    for r in range(args.repeats):
        imp = timed_subprocess(["-c", "import evidently.presets"])
        wall = timed_subprocess(drift_cmd)
        stamp = sorted((args.run / "drift").iterdir())[-1]
        rec = json.loads((stamp / "drift.json").read_text())
        bare = bare_evidently(args.run, ref, cur, pd)
        rounds.append({"wall": wall, **rec["timings_s"], "import_alone": imp,
                       "bare_evidently": bare})
        print(f"round {r}: " + ", ".join(f"{k} {v:.2f}" for k, v in rounds[-1].items()),
              flush=True)
    med = {k: statistics.median(x[k] for x in rounds) for k in rounds[0]}

    # ---- 2. explain per text ----------------------------------------------------------------
    from rlrun.explain import explain

    ctx, hook, _, _ = open_run(args.run, {}, modes=("labels",))
    clf = load_hook(ctx, hook)
    texts = [t for t, _ in load_splits(ctx.env)[2]][:args.texts]
    explain(clf, texts[0])
    clf(texts[:1])
    ex_t, cl_t = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for text in texts:
            explain(clf, text)
        ex_t.append((time.perf_counter() - t) / len(texts))
        t = time.perf_counter()
        for text in texts:
            clf([text])
        cl_t.append((time.perf_counter() - t) / len(texts))
    ex, cl = statistics.median(ex_t), statistics.median(cl_t)

    res = {"documents": [2000, 2000], "rlrun_drift_s": med,
           "ratios": {"wall / import alone": med["wall"] / med["import_alone"],
                      "evidently stage / bare Evidently": med["evidently"]
                      / med["bare_evidently"]},
           "explain_s_per_text": ex, "classify_s_per_text": cl, "explain / classify": ex / cl,
           "threads": __import__("torch").get_num_threads(), "repeats": args.repeats}
    (args.out / "bench.json").write_text(json.dumps(res, indent=1))
    stages = sum(med[k] for k in ("load", "import", "inference", "evidently", "write"))
    print(f"\nrlrun-drift, 2,000 vs 2,000 documents (median of {args.repeats}):"
          f" wall {med['wall']:.1f} s = start-up and loading {med['load']:.1f}"
          f" + importing Evidently {med['import']:.1f} + inference {med['inference']:.1f}"
          f" + Evidently {med['evidently']:.1f} + writing {med['write']:.1f}"
          f" (+ Python start-up and torch import {med['wall'] - stages:.1f})")
    print(f"references: `import evidently.presets` alone {med['import_alone']:.1f} s; bare"
          f" Evidently report on the same columns {med['bare_evidently']:.1f} s")
    for k, v in res["ratios"].items():
        print(f"  {k}: {v:.2f}")
    print(f"explain=true: {ex * 1000:.0f} ms per text; labelling the text alone"
          f" {cl * 1000:.1f} ms; ratio {ex / cl:.0f}x")
    print(f"wrote {args.out / 'bench.json'}")


def bare_evidently(run: Path, ref: Path, cur: Path, pd) -> float:
    """Evidently's DataDriftPreset on the eight columns rlrun-drift tests, built here from
    rlrun-drift's own drift.json inputs (the text, descriptors computed by Evidently, the
    prediction and confidence and label): the Evidently stage without rlrun around it."""
    from rlrun.drift import columns as cols
    from rlrun.drift import engine
    from rlrun.drift.data import read_side
    from rlrun.eval import load_hook, open_run

    ctx, hook, _, _ = open_run(run, {}, modes=("labels",))
    clf = load_hook(ctx, hook)
    sides = [read_side(str(p), "x", "text", "label") for p in (ref, cur)]
    frames = []
    for s in sides:
        extra = cols.classifier_columns(clf, s.texts, 256)
        extra["label"] = s.labels
        frames.append(engine.frame(s.texts, extra))
    engine.import_evidently()
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    t = time.perf_counter()
    definition = DataDefinition(text_columns=["text"], numerical_columns=["confidence"],
                                categorical_columns=["prediction", "label"])
    oov = cols.oov_percent_of("labels", clf=clf)
    ds = [Dataset.from_pandas(f, data_definition=definition, descriptors=cols.descriptors(oov))
          for f in frames]
    Report([DataDriftPreset()]).run(ds[1], ds[0])
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
