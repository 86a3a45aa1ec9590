"""The whole of `rlrun-drift`: read the run and both sides, score them with the run's model,
run Evidently, write `drift/<timestamp>/report.html` and `drift.json`, print the table.

The run dir is read as rlrun-eval reads it (`rlrun.eval.open_run`: the saved config held to
the trust rules, the loop module's hook, the last checkpoint loaded by `load_hook`), and only
`drift/` is written: no lock, no results.json, so a live run is never blocked.

Checks that cost nothing come first (options, the extra, the run, its vocabulary, the
current file), then the model loads, then Evidently is imported (~9 s), then the two sides
are scored and tested.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlrun.core.errors import ConfigError, DataError
from rlrun.drift import columns as cols
from rlrun.drift import engine, summary
from rlrun.drift.data import Documents, read_side, training_split

PROG = "rlrun-drift"
OUT_DIR, HTML_FILE, JSON_FILE = "drift", "report.html", "drift.json"


def _out_dir(run_dir: Path) -> Path:
    """RUN/drift/<date>_<time>, made now (a suffix when two checks start in one second)."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    root = run_dir / OUT_DIR
    root.mkdir(exist_ok=True)
    for n in range(1, 1000):
        out = root / (stamp if n == 1 else f"{stamp}_{n}")
        try:
            out.mkdir()
            return out
        except FileExistsError:
            continue
    raise FileExistsError(f"{root}: 999 checks started in the second {stamp}")


def check(run_dir: str | Path, opts: dict[str, Any],
          echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run one drift check (options as parsed by `rlrun.drift.cli.parse_args`); returns the
    drift.json record. User errors are RlrunErrors."""
    from rlrun.eval import load_hook, open_run

    t0 = time.perf_counter()
    engine.require_evidently()
    ctx, hook, mode, _ = open_run(run_dir, {k: opts[k] for k in ("device",) if k in opts},
                                  modes=("labels", "text"), prog=PROG)
    run = ctx.run_dir
    if mode == "labels" and not (run / "vocab.json").is_file():
        raise DataError(f"{run}: no saved vocabulary (vocab.json), which the out-of-vocabulary"
                        " share is measured against; the run stopped before writing it, or is"
                        " not an algo=text_classifier run")
    text_col = opts.get("text_column", getattr(ctx.env, "text_column", "text"))
    label_col = opts.get("label_column", getattr(ctx.env, "label_column", "label"))
    current = read_side(opts["current"], "current", text_col, label_col)
    given = read_side(opts["reference"], "reference", text_col, label_col) \
        if "reference" in opts else None

    model = load_hook(ctx, hook)
    if mode == "labels":
        if not hasattr(model, "probabilities"):
            raise ConfigError(f"algo={ctx.algo_name}'s load_text_classifier hook returns no"
                              " probabilities; rlrun-drift reads rlrun's text classifier")
        reference = given or training_split(ctx.env, mode)
        oov = cols.oov_percent_of(mode, clf=model)
    else:
        from rlrun.data.text import CharCorpus, TextConfig

        if not isinstance(ctx.env, TextConfig):
            raise ConfigError(f"algo={ctx.algo_name} on env={ctx.env_name}: rlrun-drift reads"
                              " character LMs (algo=lm on env=stdlib_docs or env=text_file)")
        block = int(ctx.network.block_size)
        corpus = CharCorpus(ctx.env, block)
        reference = given or training_split(ctx.env, mode, block, corpus)
        oov = cols.oov_percent_of(mode, chars=set(corpus.stoi))
    t_load = time.perf_counter()

    # the columns besides the descriptors: the true labels only where both sides have them
    labelled = mode == "labels" and reference.labels is not None and current.labels is not None
    types = {cols.TEXT: "text", "perplexity": "num"} if mode == "text" else {
        cols.TEXT: "text", "prediction": "cat", "confidence": "num",
        **({"label": "cat"} if labelled else {})}
    engine.import_evidently()
    method, threshold = opts.get("method"), opts.get("threshold")
    # a test that is not Evidently's, or takes none of these columns, fails before the scoring
    engine.overrides(method, threshold, {**types, **dict.fromkeys(cols.DESCRIPTORS, "num")})
    t_import = time.perf_counter()

    if mode == "labels":
        batch = int(getattr(ctx.algo, "eval_batch_size", 256))
        sides = [cols.classifier_columns(model, d.texts, batch) for d in (reference, current)]
        if labelled:
            for extra, docs in zip(sides, (reference, current), strict=True):
                extra["label"] = docs.labels
    else:
        lm = ctx.tracked("model")
        sides = [{"perplexity": cols.perplexities(lm, corpus.stoi, block, d.texts)}
                 for d in (reference, current)]
    t_infer = time.perf_counter()

    outcome = engine.run_report(engine.frame(reference.texts, sides[0]),
                                engine.frame(current.texts, sides[1]), types,
                                cols.descriptors(oov), method, threshold)
    t_evidently = time.perf_counter()

    from rlrun.core.checkpoint import atomic_write_bytes, atomic_write_json

    out = _out_dir(run)
    engine.save_html(outcome, lambda data: atomic_write_bytes(out / HTML_FILE, data))
    order = [cols.TEXT, *cols.DESCRIPTORS, *(c for c in types if c != cols.TEXT)]
    rec: dict[str, Any] = {
        "algo": ctx.algo_name, "env": ctx.env_name, "run_dir": str(run),
        "checkpoint_step": ctx.step,
        "reference": _side(reference), "current": _side(current),
        "settings": {"method": method, "threshold": threshold, "text_column": text_col,
                     "label_column": label_col, "device": ctx.device},
        **summary.record(outcome.table, order, engine.DRIFT_SHARE),
        "report": HTML_FILE,
    }
    rec["timings_s"] = {"load": round(t_load - t0, 3), "import": round(t_import - t_load, 3),
                        "inference": round(t_infer - t_import, 3),
                        "evidently": round(t_evidently - t_infer, 3),
                        "write": round(time.perf_counter() - t_evidently, 3)}
    atomic_write_json(out / JSON_FILE, rec)

    echo(f"{ctx.algo_name} on {ctx.env_name} (checkpoint at step {ctx.step}): current"
         f" {current.source} ({len(current)} documents) against {reference.source}"
         f" ({len(reference)} documents)")
    for line in summary.table_lines(rec):
        echo(line)
    tm = rec["timings_s"]
    echo(f"took {sum(tm.values()):.1f} s: loading {tm['load']:.1f}, importing Evidently"
         f" {tm['import']:.1f}, inference {tm['inference']:.1f}, Evidently"
         f" {tm['evidently']:.1f}, writing {tm['write']:.1f}")
    echo(f"wrote {out / HTML_FILE} and {JSON_FILE}")
    return rec


def _side(docs: Documents) -> dict[str, Any]:
    return {"source": docs.source, "documents": len(docs), "labels": docs.labels is not None}
