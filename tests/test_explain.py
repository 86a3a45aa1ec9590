"""`rlrun-eval RUN text=... explain=true` (docs/eval.md): integrated gradients over the token
embeddings with Captum. On the cue-word task (the label is one word among random filler)
the attributions must find the cue, satisfy completeness against the baseline rlrun states,
and beat random deletion (the check scripts/explain_deletion.py runs on a real run)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from rlrun.eval import evaluate, load_hook, main, open_run, parse_args
from rlrun.explain import STEPS, attribute, explain

from .conftest import run_train
from .test_drift import CLF
from .test_text_classifier import make_rows, write_csv

ROOT = Path(__file__).resolve().parents[1]
CUES = {"red", "blue", "grey"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    data = write_csv(root / "d.csv", make_rows(400))
    run_train(root, [*CLF, f"env.path={data}", "env.test_fraction=0.2"], "clf")
    return root / "clf"


@pytest.fixture(scope="module")
def clf(run):
    ctx, hook, _, _ = open_run(run, {})
    return load_hook(ctx, hook)


def test_the_cue_word_gets_the_largest_attribution(clf):
    """Three classes need two cues: the model learns blue -> cold, grey -> neutral and warm
    for the rest, so "red" is no evidence (a warm text's attributions spread over every word
    that moves it away from the baseline). Cold and neutral texts rest on their cue."""
    rows = [(t, lab) for t, lab in make_rows(80, seed=11) if lab != "warm"]
    found = 0
    for text, _ in rows:
        ex = explain(clf, text)
        found += max(ex.tokens, key=lambda t: t["attribution"])["token"] in CUES
    assert len(rows) > 40 and found >= 0.9 * len(rows), (found, len(rows))


def test_completeness_against_the_stated_baseline(clf):
    """Captum's delta is sum(attributions) - (p(text) - p(baseline)), where the baseline is
    the padding embedding at the text's positions, read with the text's own mask."""
    ex = explain(clf, "apple red stone music n5")
    total = sum(t["attribution"] for t in ex.tokens)
    assert total - (ex.probability - ex.baseline_probability) == pytest.approx(
        ex.convergence_delta, abs=1e-5)
    assert abs(ex.convergence_delta) < 0.02 and ex.steps == STEPS == 50
    ids = clf.encode(["apple red stone music n5"])
    with torch.no_grad():  # the baseline: padding ids, the text's mask
        p0 = clf.model(torch.zeros_like(ids), ids != 0)[0].softmax(-1)[0]
        empty = clf.model(torch.zeros_like(ids))[0].softmax(-1)[0]  # an empty text differs
    assert ex.baseline_probability == pytest.approx(float(p0[clf.labels.index(ex.label)]),
                                                    abs=1e-6)
    assert not torch.allclose(p0, empty)
    assert ex.probability == pytest.approx(max(clf.probabilities(["apple red stone music n5"])
                                               [0].tolist()), abs=1e-6)
    attr, delta = attribute(clf, ids, torch.tensor([clf.labels.index(ex.label)]))
    assert attr.shape == ids.shape and float(attr[0, ids[0] == 0].abs().max()) == 0.0


def test_attributions_beat_random_deletion(clf):
    spec = importlib.util.spec_from_file_location("explain_deletion",
                                                  ROOT / "scripts" / "explain_deletion.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    res = script.deletion_curves(clf, [t for t, _ in make_rows(40, seed=12)], draws=3)
    assert res["texts"] > 30
    for k, a, r in zip(res["k"], res["attributed"], res["random"], strict=True):
        assert a > r + 0.1, (k, a, r)  # the cue is one word: deleting it flips the label


def test_explain_true_prints_writes_json_and_html(run, capsys, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    text = "An apple & a <b>red</b> stone."
    rec = evaluate(run, {"text": text, "explain": True})
    out = capsys.readouterr().out.splitlines()
    ex = json.loads((run / "explain.json").read_text())
    assert rec["label"] == ex["label"] == "warm" and rec["settings"]["explain"] is True
    assert rec["explain"] == {"file": "explain.json", "html": "explain.html", "steps": 50,
                              "convergence_delta": ex["convergence_delta"]}
    assert [t["token"] for t in ex["tokens"]] == ["an", "apple", "a", "b", "red", "b",
                                                   "stone"][:len(ex["tokens"])]
    assert {"text", "label", "probability", "tokens", "steps", "convergence_delta",
            "baseline", "method", "probabilities"} <= set(ex)
    assert out[0] == "warm"
    assert out[1].startswith(f"why warm (p={ex['probability']:.3f}): integrated gradients")
    assert "50 steps" in out[1] and "convergence delta" in out[1]
    red = next(t for t in ex["tokens"] if t["token"] == "red")
    assert out[2].startswith("An[") and f"red[{red['attribution']:+.3f}]" in out[2]
    assert "\x1b[" not in "\n".join(out)  # not a terminal: signed numbers, no colour
    page = (run / "explain.html").read_text()
    assert "&lt;" in page and "<b>red</b>" not in page  # the text is escaped
    assert page.count('class="tok"') == len(ex["tokens"])


@pytest.mark.parametrize("env, colour", [({"FORCE_COLOR": "1"}, True),
                                         ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False)])
def test_colour_where_the_terminal_takes_it(run, capsys, monkeypatch, env, colour):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    evaluate(run, {"text": "blue river", "explain": True})
    out = capsys.readouterr().out
    assert ("\x1b[30;48;5;" in out) == colour and ("river[" in out) != colour


def test_several_texts_get_one_label_each(run):
    _, opts = parse_args(["R", "text=apple red stone", "text=blue river"])
    assert opts == {"text": ["apple red stone", "blue river"]}
    rec = evaluate(run, opts)
    assert rec["labels"] == ["warm", "cold"] and "label" not in rec


def _fails(argv, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("rlrun-eval: error: ")
    return err


def test_explain_errors(run, capsys, monkeypatch):
    assert "explain=true explains one text at a time; got 2 text= options" in _fails(
        [str(run), "text=a", "text=b", "explain=true"], capsys)
    assert "explain='yes' must be true or false" in _fails([str(run), "text=a", "explain=yes"],
                                                           capsys)
    monkeypatch.setitem(sys.modules, "captum", None)  # as if not installed
    assert _fails([str(run), "text=a", "explain=true"], capsys) == (
        "rlrun-eval: error: explain=true needs Captum: pip install 'rlrun[explain]'\n")
    assert not (run / "eval.json").exists() or \
        json.loads((run / "eval.json").read_text())["settings"]["text"] != "a"


def test_the_commands_docs_eval_shows_for_the_classifier_run(run, tmp_path, monkeypatch,
                                                              capsys):
    from .test_drift import shown

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "clf").symlink_to(run)
    monkeypatch.chdir(tmp_path)
    commands = [a for a in shown("eval.md", "rlrun-eval") if a[0] == "runs/clf"]
    assert len(commands) >= 3
    for argv in commands:
        capsys.readouterr()
        main(argv)
        out = capsys.readouterr().out.splitlines()
        n = sum(a.startswith("text=") for a in argv)
        assert len(out) >= n + 1 and out[-1] == f"wrote {run / 'eval.json'}", (argv, out)
        if "explain=true" in argv:
            assert out[1].startswith(f"why {out[0]} (p=")


@pytest.mark.slow
def test_the_deletion_script_reports_both_curves(run, tmp_path):
    import subprocess

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "explain_deletion.py"),
                          str(run), "--json", str(tmp_path / "d.json"), "--draws", "2"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "d.json").read_text())
    assert res["k"] == [1, 3, 5] and len(res["attributed"]) == len(res["random"]) == 3
    assert "attributions beat random deletion at every k" in out.stdout
