"""`rlrun-drift RUN_DIR current=PATH` (docs/drift.md): the columns given to Evidently, its
verdicts read back (checked against scipy's K-S test and the run's own validation perplexity),
the outputs, exit codes and the one-line errors.

Evidently is slow to import (~9 s) and to run, so the default tier runs it once, on a
reference of more than 1000 short texts (where Evidently's text test is one domain
classifier, not 1000 random ones); the LM, the overrides and a no-shift check are `slow`.
"""

from __future__ import annotations

import csv
import json
import math
import random
import sys
from pathlib import Path

import pytest

from rlrun.drift import columns as cols
from rlrun.drift.cli import main, parse_args

from .conftest import read_results, run_train
from .test_text_classifier import TINY, WORDS, make_imdb, make_rows, write_csv

CLF = ["threads=1", "checkpoint_every_s=0", "algo=text_classifier", *TINY,
       "algo.total_steps=60", "env=text_csv", "env.test_fraction=0.05",
       "env.val_fraction=0.05"]
LM = ["algo=lm", "threads=1", "checkpoint_every_s=0", "network.d_model=32",
      "network.n_layers=1", "network.n_heads=2", "network.block_size=16", "network.d_ff=64",
      "env.max_chars=20000", "algo.batch_size=8", "algo.eval_batches=2", "algo.total_steps=20",
      "algo.sample_chars=0", "algo.attention_stats=false"]
OTHER_WORDS = ["engine", "socket", "buffer", "thread", "parser", "module", "vector", "kernel"]


def shifted_rows(n: int, seed: int = 1) -> list[tuple[str, str]]:
    """Another domain: other filler words, longer texts, mostly one class."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        cue = "red" if rng.random() < 0.8 else rng.choice(["blue", "grey"])
        words = [rng.choice(OTHER_WORDS + WORDS[:4]) for _ in range(rng.randint(10, 16))]
        words.insert(rng.randrange(len(words) + 1), cue)
        rows.append((" ".join(words) + f" m{i}!", {"red": "warm", "blue": "cold",
                                                     "grey": "neutral"}[cue]))
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny classifier on ~1,250 training texts (the learnable cue-word task) and a tiny LM,
    trained once per module, on first use."""
    root, done = tmp_path_factory.mktemp("drift_runs"), {}

    def get(name: str) -> Path:
        if name not in done:
            if name == "clf":
                data = write_csv(root / "train.csv", make_rows(1400))
                run_train(root, [*CLF, f"env.path={data}"], name)
            elif name == "lm":
                run_train(root, LM, name)
            else:  # a run with nothing rlrun-drift reads
                run_train(root, ["algo=ucb", "env.num_runs=10", "env.steps=20"], name)
            done[name] = root / name
        return done[name]

    return get


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- the columns, without Evidently ------------------------------------------------------
def test_reads_every_format_the_runs_env_reads(tmp_path):
    from rlrun.data.text_classification import read_documents

    rows = make_rows(6)
    a = read_documents(str(write_csv(tmp_path / "a.csv", rows)))
    assert a == rows
    j = tmp_path / "b.jsonl"
    j.write_text("\n".join(json.dumps({"body": t}) for t, _ in rows))  # no label column
    assert read_documents(str(j), text_col="body") == [(t, None) for t, _ in rows]
    txt = tmp_path / "c.txt"
    txt.write_text("first document\n\n   \nsecond one\n")
    assert read_documents(str(txt)) == [("first document", None), ("second one", None)]
    imdb = make_imdb(tmp_path / "aclImdb", 3)
    docs = read_documents(str(imdb / "test"))
    assert len(docs) == 6 and {lab for _, lab in docs} == {"neg", "pos"}


def test_oov_percent_counts_the_runs_own_vocabulary(runs):
    from rlrun.eval import load_hook, open_run

    ctx, hook, _, _ = open_run(runs("clf"), {})
    clf = load_hook(ctx, hook)
    oov = cols.oov_percent_of("labels", clf=clf)
    assert "red" in clf.stoi and "zebra" not in clf.stoi
    assert oov("red red zebra quokka") == 50.0  # tokens, not types: 2 of 4 unknown
    assert oov("Red, RED!") == 0.0  # the run's tokenizer lower-cases and drops punctuation
    assert math.isnan(oov("!!!"))  # no token at all
    chars = cols.oov_percent_of("text", chars=set("abc "))
    assert chars("abcd") == 25.0


def test_model_columns_are_the_runs_own_predictions(runs):
    from rlrun.data.text_classification import classify
    from rlrun.eval import load_hook, open_run

    run = runs("clf")
    ctx, hook, _, _ = open_run(run, {})
    clf = load_hook(ctx, hook)
    texts = [t for t, _ in shifted_rows(40)]
    got = cols.classifier_columns(clf, texts, 16)
    assert got["prediction"] == classify(run, texts)
    probs = clf.probabilities(texts)
    assert got["confidence"] == pytest.approx(probs.max(-1).values.tolist(), abs=1e-6)
    assert all(0 < c <= 1 for c in got["confidence"])


def test_lm_perplexity_is_the_runs_own_validation_perplexity(runs):
    """Scored as documents, the run's own validation windows give back its eval/val_ppl: the
    geometric mean of per-document perplexities over equal-length documents is exp of the
    mean cross-entropy, which the loop logs."""
    from rlrun.data.text import CharCorpus, eval_batches
    from rlrun.eval import load_hook, open_run

    run = runs("lm")
    ctx, hook, _, _ = open_run(run, {})
    load_hook(ctx, hook)
    block = int(ctx.network.block_size)
    corpus = CharCorpus(ctx.env, block)
    windows = [corpus.decode(w.tolist()) for x, y in eval_batches(
        corpus.val, ctx.algo.batch_size, block, ctx.algo.eval_batches)
        for w in __import__("torch").cat([x, y[:, -1:]], 1)]
    ppl = cols.perplexities(ctx.tracked("model"), corpus.stoi, block, windows)
    logged = read_results(run)["metrics"]["eval/val_ppl"]["last"]
    assert math.exp(sum(map(math.log, ppl)) / len(ppl)) == pytest.approx(logged, rel=1e-5)
    assert math.isnan(cols.perplexities(ctx.tracked("model"), corpus.stoi, block, ["a"])[0])


# ---- one Evidently run -----------------------------------------------------------------------
def test_a_shifted_current_drifts_and_every_output_says_so(runs, tmp_path, capsys):
    from scipy.stats import ks_2samp

    from rlrun.data.text_classification import TextClassificationConfig, load_splits

    run = runs("clf")
    current = shifted_rows(150)
    path = write_csv(tmp_path / "new.csv", current)
    code, out, err = run_main([str(run), f"current={path}", "--fail-on-drift"], capsys)
    assert code == 1, err  # dataset drift, and --fail-on-drift
    (stamp,) = (run / "drift").iterdir()
    rec = json.loads((stamp / "drift.json").read_text())
    assert list(rec["columns"]) == ["text", "length_chars", "length_words", "oov_percent",
                                    "non_letter_percent", "prediction", "confidence", "label"]
    for v in rec["columns"].values():
        assert set(v) == {"type", "test", "score", "threshold", "drifted"}
    c = rec["columns"]
    # the reference is the run's training split (> 1000 texts): Evidently's large-sample tests
    reference = load_splits(TextClassificationConfig(source="csv", path=str(
        run.parent / "train.csv"), test_fraction=0.05, val_fraction=0.05))[0]
    assert rec["reference"] == {"source": "the run's training split",
                                "documents": len(reference), "labels": True}
    assert len(reference) > 1000 and rec["current"]["documents"] == 150
    assert c["text"]["test"] == "Absolute text content drift" and c["text"]["drifted"]
    assert c["text"]["threshold"] == 0.55 and c["text"]["score"] > 0.9
    assert c["length_chars"]["test"] == "Wasserstein distance (normed)"
    assert c["prediction"]["test"] == c["label"]["test"] == "Jensen-Shannon distance"
    assert c["length_chars"]["drifted"] and c["oov_percent"]["drifted"]
    assert c["label"]["drifted"] and c["prediction"]["drifted"]  # 80% warm vs a third
    # the normed Wasserstein distance, from scipy: W1 / std of the reference
    from scipy.stats import wasserstein_distance

    ref_len = [len(t) for t, _ in reference]
    cur_len = [len(t) for t, _ in current]
    import numpy as np

    assert c["length_chars"]["score"] == pytest.approx(
        wasserstein_distance(ref_len, cur_len) / np.std(ref_len), rel=1e-6)
    assert ks_2samp(ref_len, cur_len).pvalue < 1e-6  # and scipy agrees it moved
    assert rec["dataset_drift"] and rec["drift_share"] == 0.5
    assert rec["drifted_columns"] == sum(v["drifted"] for v in c.values())
    assert rec["share_drifted"] == pytest.approx(rec["drifted_columns"] / len(c))
    words = rec["characteristic_words"]
    assert len(words["current"]) == len(words["reference"]) == 10
    assert set(words["current"]) & set(OTHER_WORDS)  # the new domain's words
    assert not set(words["reference"]) & set(OTHER_WORDS)
    html = (stamp / "report.html").read_text()
    assert "<html" in html[:2000].lower() and len(html) > 100_000  # Evidently's page
    assert set(rec["timings_s"]) == {"load", "import", "inference", "evidently", "write"}
    lines = out.splitlines()
    assert lines[0].startswith(f"text_classifier on text_csv (checkpoint at step 60): current"
                               f" {path} (150 documents) against the run's training split")
    assert any(line.startswith("text ") and line.endswith("DRIFT") for line in lines)
    assert f"dataset drift: yes ({rec['drifted_columns']} of 8 columns drifted" in out
    assert lines[-1] == f"wrote {stamp / 'report.html'} and drift.json"
    # only drift/ was written: the run's own files are as they were
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("drift")) == ["drift"]


# ---- slow: the LM, the overrides, no shift ----------------------------------------------
@pytest.mark.slow
def test_an_lm_run_gets_perplexity_and_the_descriptors(runs, tmp_path, capsys):
    from rlrun.data.text import stdlib_docs_text

    run = runs("lm")
    cur = tmp_path / "mail.txt"  # e-mail headers: another register than the docs corpus
    cur.write_text("\n".join(f"From: user{i}@example.org To: list@example.org Subject: RE:"
                             f" meeting {i} Date: Mon, {i % 28 + 1} Dec 2026" for i in range(300)))
    ref = tmp_path / "docs.txt"
    paragraphs = [p.replace("\n", " ") for p in stdlib_docs_text()[:20000].split("\n\n")
                  if p.strip()]
    ref.write_text("\n".join(paragraphs))
    code, out, err = run_main([str(run), f"current={cur}", f"reference={ref}"], capsys)
    assert code == 0, err
    rec = json.loads(next((run / "drift").glob("*/drift.json")).read_text())
    assert list(rec["columns"]) == ["text", "length_chars", "length_words", "oov_percent",
                                    "non_letter_percent", "perplexity"]
    assert rec["columns"]["perplexity"]["drifted"] and rec["columns"]["text"]["drifted"]
    assert rec["reference"]["documents"] == len(paragraphs)


@pytest.mark.slow
def test_method_and_threshold_overrides_and_no_shift(runs, tmp_path, capsys):
    run = runs("clf")
    rows = make_rows(400, seed=5)
    a = write_csv(tmp_path / "a.csv", rows[:200])
    b = write_csv(tmp_path / "b.csv", rows[200:])
    code, out, err = run_main([str(run), f"current={b}", f"reference={a}", "method=psi",
                               "threshold=0.3", "--fail-on-drift"], capsys)
    assert code == 0, err  # the same task on both sides: no dataset drift
    rec = json.loads(sorted((run / "drift").glob("*/drift.json"))[-1].read_text())
    assert rec["settings"]["method"] == "psi" and rec["settings"]["threshold"] == 0.3
    for name, v in rec["columns"].items():
        if name == "text":  # PSI does not take text: Evidently's default, under 1000 rows
            assert v["test"] == "Percentile text content drift" and v["threshold"] == 0.95
        else:
            assert v["test"] == "PSI" and v["threshold"] == 0.3, name
    assert not rec["dataset_drift"] and rec["characteristic_words"] is None


# ---- errors: one line, exit 2, the offending value named -----------------------------------
def _files(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "empty.csv").write_text("")
    (d / "blank.txt").write_text("\n  \n")
    with (d / "other.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["review", "stars"], ["a text", "5"]])
    make_imdb(d / "aclImdb", 2)
    return d


BATTERY = [
    ([], "name a run dir"),
    (["{clf}"], "give the new data: current=PATH"),
    (["{clf}", "current={data}/nope.csv"], "current={data}/nope.csv: no such file"),
    (["{clf}", "current={data}/empty.csv"], "current={data}/empty.csv holds no rows"),
    (["{clf}", "current={data}/blank.txt"], "current={data}/blank.txt holds no documents"),
    (["{clf}", "current={data}/other.csv"],
     "text_column='text': 1 of 1 rows of {data}/other.csv lack it; its columns are review,"
     " stars"),
    (["{clf}", "current={data}/aclImdb"], "current={data}/aclImdb is an aclImdb root"),
    (["{clf}", "current={data}/aclImdb/test", "reference={data}/nope.txt"],
     "reference={data}/nope.txt: no such file"),
    (["{ucb}", "current={data}/other.csv"],
     "rlrun-drift reads text classification (algo=text_classifier) and text generation"
     " (algo=lm) runs; algo=ucb is neither"),
    (["{novocab}", "current={data}/other.csv"], "no saved vocabulary (vocab.json)"),
    (["{data}", "current=x.csv"], "is not a run dir (no .hydra/config.yaml)"),
    (["{clf}", "current=x.csv", "threshold=1.5"], "threshold='1.5' must be a number in (0, 1)"),
    (["{clf}", "current=x.csv", "threshold=0"], "threshold='0' must be a number in (0, 1)"),
    (["{clf}", "current=x.csv", "threshold=nan"], "threshold='nan' must be a number in (0, 1)"),
    (["{clf}", "current=x.csv", "threshold=high"], "threshold='high' must be a number"),
    (["{clf}", "current=x.csv", "curent=y.csv"], "curent= is not an option of rlrun-drift;"
                                                 " did you mean current?"),
    (["{clf}", "current=x.csv", "current=y.csv"], "current= is given twice"),
    (["{clf}", "current=x.csv", "--fail-on-drfit"], "unknown flag --fail-on-drfit; did you"
                                                    " mean --fail-on-drift?"),
    (["{clf}", "current="], "current= is empty"),
    (["{clf}", "current=x.csv", "device=tpu"], "device='tpu' must be one of cpu, cuda, auto"),
    (["{clf}", "x.csv"], "'x.csv': options are key=value"),
]


@pytest.mark.parametrize("argv, expected", BATTERY, ids=[" ".join(a)[:60] for a, _ in BATTERY])
def test_bad_input_is_one_line_and_exit_2(argv, expected, runs, tmp_path, capsys):
    data = _files(tmp_path)
    where = {"{data}": str(data)}
    if any("{clf}" in a or "{novocab}" in a for a in argv):
        where["{clf}"] = str(runs("clf"))
    if any("{ucb}" in a for a in argv):
        where["{ucb}"] = str(runs("ucb"))
    if any("{novocab}" in a for a in argv):  # a classifier run stopped before vocab.json
        import shutil

        novocab = tmp_path / "novocab"
        shutil.copytree(runs("clf"), novocab, ignore=shutil.ignore_patterns("vocab.json"))
        where["{novocab}"] = str(novocab)
    for k, v in where.items():
        argv = [a.replace(k, v) for a in argv]
        expected = expected.replace(k, v)
    code, _, err = run_main(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("rlrun-drift: error: "), err
    assert expected in err, err


def test_without_the_extra_it_says_what_to_install(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "evidently", None)  # as if not installed
    code, _, err = run_main([str(runs("clf")), f"current={tmp_path}/x.csv"], capsys)
    assert code == 2 and err == ("rlrun-drift: error: rlrun-drift needs Evidently: pip install"
                                 " 'rlrun[drift]'\n")


def test_parse_args_and_help(capsys):
    run, opts, fail = parse_args(["R", "current=c.csv", "--fail-on-drift", "threshold=0.01",
                                  "method=ks", "reference=r.txt", "text_column=body"])
    assert run == Path("R") and fail
    assert opts == {"current": "c.csv", "threshold": 0.01, "method": "ks",
                    "reference": "r.txt", "text_column": "body"}
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0 and out.startswith("usage: rlrun-drift RUN_DIR current=PATH")
    for key in ("current=", "reference=", "method=", "threshold=", "text_column=",
                "label_column=", "device=", "--fail-on-drift"):
        assert key in out


def test_the_console_script_is_declared():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    meta = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert meta["scripts"]["rlrun-drift"] == "rlrun.drift.cli:main"
    extras = meta["optional-dependencies"]
    assert "evidently==0.7.23" in extras["drift"] and "pandas<3" in extras["drift"]
    assert any(d.startswith("captum") for d in extras["explain"])
    assert "drift" in extras["test"][-1] and "explain" in extras["test"][-1]


# ---- the commands docs/drift.md and docs/eval.md show ---------------------------------------
DOCS = Path(__file__).resolve().parents[1] / "docs"


def shown(page: str, tool: str) -> list[list[str]]:
    """The argument lists of every `tool ...` line in the code blocks of docs/`page`."""
    import shlex

    found, block = [], False
    for line in (DOCS / page).read_text().splitlines():
        if line.strip().startswith("```"):
            block = not block
        elif block and line.startswith(tool + " "):
            found.append(shlex.split(line, comments=True)[1:])
    return found


def doc_files(root: Path) -> None:
    """The files the documented commands name, in `root`: shifted data for new.*, the task's
    own texts for old.txt, e-mail headers for mail.txt."""
    new, old = shifted_rows(120), make_rows(200, seed=3)
    write_csv(root / "reviews.csv", new, "review", "stars")
    (root / "new.jsonl").write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                                            for t, lab in new))
    (root / "new.txt").write_text("\n".join(t for t, _ in new))
    (root / "old.txt").write_text("\n".join(t for t, _ in old))
    (root / "mail.txt").write_text("\n".join(f"From: user{i}@example.org Subject: RE: meeting"
                                             f" {i}" for i in range(200)))


def test_every_shown_command_parses():
    from rlrun.eval import parse_args as eval_args

    drift = shown("drift.md", "rlrun-drift")
    assert len(drift) >= 5
    for argv in drift:
        if argv != ["--help"]:
            parse_args(argv)
    explain = [a for a in shown("eval.md", "rlrun-eval") if "explain=true" in a]
    assert explain
    for argv in explain:
        assert eval_args(argv)[1]["explain"] is True


@pytest.mark.slow
def test_every_shown_command_runs(runs, tmp_path, monkeypatch, capsys):
    (tmp_path / "runs").mkdir()
    for name in ("clf", "lm"):
        (tmp_path / "runs" / name).symlink_to(runs(name))
    doc_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    for argv in shown("drift.md", "rlrun-drift"):
        code, out, err = run_main(argv, capsys)
        assert code in ((0, 1) if "--fail-on-drift" in argv else (0,)), (argv, err)
        assert out.startswith("usage:" if argv == ["--help"] else "text_classifier on"
                              if argv[0] == "runs/clf" else "lm on"), (argv, out)


@pytest.mark.slow
def test_method_errors_come_before_the_scoring(runs, tmp_path, capsys):
    """Evidently's own names only, and a test that takes one of the check's column types
    (both need Evidently imported: slow)."""
    cur = tmp_path / "c.txt"
    cur.write_text("some text\nmore text\n")
    code, _, err = run_main([str(runs("clf")), f"current={cur}", "method=kss"], capsys)
    assert code == 2 and "method='kss' is not one of Evidently's drift tests: " in err
    assert "ks, " in err and err.count("\n") == 1
    checks = lambda: len(list((runs("lm") / "drift").glob("*")))  # noqa: E731
    before = checks()
    code, _, err = run_main([str(runs("lm")), f"current={cur}", "method=z"], capsys)
    assert code == 2 and err.count("\n") == 1 and (
        "method=z tests categorical columns; this check has none (its columns: text (text),"
        " perplexity (numerical), length_chars (numerical)") in err
    assert checks() == before  # refused before anything was written


def test_nothing_heavy_before_the_arguments_are_checked():
    import subprocess

    code = ("import sys; from rlrun.drift.cli import HELP, parse_args\n"
            "try:\n    parse_args(['R', 'threshold=2', 'current=x'])\nexcept Exception: pass\n"
            "print(sorted(m for m in ('torch', 'evidently', 'pandas', 'hydra') if m in"
            " sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


# ---- the scripts (slow: each runs Evidently several times) --------------------------------
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
STDLIB_TINY = ["threads=1", "checkpoint_every_s=0", "algo=text_classifier", *TINY,
               "env.packages=[asyncio,collections,concurrent,email]", "algo.total_steps=20"]


@pytest.mark.slow
def test_the_demo_and_the_benchmark_run_on_a_small_run(tmp_path):
    import subprocess

    run_train(tmp_path, STDLIB_TINY, "clf")
    run = tmp_path / "clf"
    env = {**__import__("os").environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, str(SCRIPTS / "drift_demo.py"), "--run", str(run),
                          "--out", str(tmp_path / "demo"), "--repeats", "1"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert res["training_texts"] > 400 and res["shift"]["columns"]["text"]["drifted"]
    assert res["label_shift"]["columns"]["label"]["drifted"]
    assert set(res["no_shift"]) == {"defaults", "TVD", "chi_square_expected_rate"}
    assert res["no_shift"]["TVD"]["tests"]["label"] == "Total-Variation-Distance"
    assert "| column | test | flagged |" in out.stdout
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench_drift.py"), str(run), "--out",
                          str(tmp_path / "bench"), "--repeats", "1", "--texts", "2"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    bench = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert bench["documents"] == [2000, 2000] and bench["explain_s_per_text"] > 0
    assert set(bench["rlrun_drift_s"]) >= {"wall", "load", "import", "inference", "evidently"}
