"""Text classification: the readers (IMDB layout, CSV, JSONL), the deterministic deduplicated
split, the offline default's size, the encoder's bidirectional attention, learning above the
majority baseline, router metrics, exact resume and the one-line errors."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch

from rlrun.core.errors import ConfigError, DataError
from rlrun.data.text_classification import (
    LabelledText,
    TextClassificationConfig,
    classify,
    read_imdb,
    read_table,
    split_rows,
    stdlib_docstrings,
)
from rlrun.nets.transformer import Transformer

from .conftest import interrupt_and_resume, read_results, run_train

FAST = ["threads=1", "checkpoint_every_s=0", "algo=text_classifier"]
TINY = ["network.d_model=32", "network.n_layers=1", "network.n_heads=2", "network.d_ff=32",
        "env.max_len=12", "algo.batch_size=16", "algo.eval_every=20", "algo.log_every=10",
        "algo.warmup_steps=5"]
WORDS = ["apple", "river", "stone", "cloud", "green", "table", "music", "paper", "light",
         "north", "glass", "horse", "seven", "plain", "tower", "sugar"]


def labelled(**settings) -> TextClassificationConfig:
    """A labelled-text env's settings, as `env=...` would give them."""
    return TextClassificationConfig(name="test", kind="text_classification", **settings)


def make_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A learnable 3-class task: the label is the cue word hidden among random filler."""
    rng = random.Random(seed)
    cues = {"red": "warm", "blue": "cold", "grey": "neutral"}
    rows = []
    for i in range(n):
        cue = rng.choice(sorted(cues))
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 9))]
        words.insert(rng.randrange(len(words) + 1), cue)
        rows.append((" ".join(words) + f" n{i}", cues[cue]))
    return rows


def write_csv(path: Path, rows, text="text", label="label") -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([text, label])
        w.writerows(rows)
    return path


def make_imdb(root: Path, n: int = 12) -> Path:
    for split in ("train", "test"):
        for lab, word in (("pos", "great"), ("neg", "awful")):
            (root / split / lab).mkdir(parents=True)
            for i in range(n):
                (root / split / lab / f"{i}_7.txt").write_text(
                    f"A {word} film<br />number {split} {i}.")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("unlabelled review")
    return root


# ---- readers --------------------------------------------------------------------------------
def test_imdb_reader_reads_the_aclimdb_layout_and_skips_unsup(tmp_path):
    root = make_imdb(tmp_path / "aclImdb")
    train, test = read_imdb(str(root))
    assert len(train) == len(test) == 24
    assert {lab for _, lab in train} == {"neg", "pos"}
    data = LabelledText(labelled(source="imdb", path=str(root), max_len=6, val_fraction=0.3))
    assert data.labels == ["neg", "pos"] and len(data.splits["test"][1]) == 24
    n = sum(len(data.splits[s][1]) for s in ("train", "val"))
    assert n == 24 and len(data.splits["val"][1]) > 0
    assert "br" not in data.vocab  # the <br /> line breaks are not words
    ids = data.encode(["a great film and more words than fit"])
    assert ids.shape == (1, 6) and ids[0, 1] == data.stoi["great"]


def test_the_keras_io_imdb_preset_runs_on_a_generated_aclimdb_folder(tmp_path):
    root = make_imdb(tmp_path / "aclImdb", 30)
    r = run_train(tmp_path, ["threads=1", "checkpoint_every_s=0", "experiment=switch/imdb",
                             f"env.path={root}", "algo.total_steps=6", "algo.eval_every=0"])
    m = r["metrics"]
    assert m["data/classes"]["last"] == 2 and m["data/test"]["last"] == 60
    assert "moe/dropped_fraction/layer0" in m and "test/accuracy" in m


def test_csv_and_jsonl_map_string_labels_to_sorted_ids(tmp_path):
    rows = make_rows(60)
    p = write_csv(tmp_path / "d.csv", rows, "review", "stars")
    j = tmp_path / "d.jsonl"
    j.write_text("\n".join(json.dumps({"review": t, "stars": s, "x": 1}) for t, s in rows))
    assert read_table(str(p), "review", "stars") == rows
    assert read_table(str(j), "review", "stars") == rows
    data = LabelledText(labelled(source="csv", path=str(j), text_column="review",
                                 label_column="stars", max_len=4, tokenizer="char",
                                 vocab_size=10))
    assert data.labels == ["cold", "neutral", "warm"] and data.n_classes == 3
    assert len(data.vocab) == 10 and data.splits["train"][0].shape[1] == 4
    assert data.to_json()["labels"] == data.labels


def test_split_is_deterministic_order_free_and_deduplicated_across_splits():
    rows = make_rows(400)
    dupes = [(t.upper() + "  ", lab) for t, lab in rows[:50]]  # same text once normalised
    a = split_rows(rows + dupes, 0.1, 0.1)
    b = split_rows(list(reversed(rows)), 0.1, 0.1)
    assert [sorted(p) for p in a] == [sorted(p) for p in b]
    norm = [{" ".join(t.lower().split()) for t, _ in p} for p in a]
    assert sum(len(p) for p in a) == 400
    assert not (norm[0] & norm[1] or norm[0] & norm[2] or norm[1] & norm[2])
    assert 20 < len(a[1]) < 60 and 20 < len(a[2]) < 60


def test_offline_default_has_2000_texts_in_at_least_4_classes():
    cfg = labelled()
    rows = stdlib_docstrings(tuple(cfg.packages), cfg.min_chars)
    train, val, test = split_rows(rows, cfg.val_fraction, cfg.test_fraction)
    assert len(train) + len(val) + len(test) >= 2000
    assert len({lab for _, lab in rows}) >= 4


def test_the_encoder_sees_later_tokens_and_the_decoder_does_not():
    torch.manual_seed(0)
    for causal in (True, False):
        m = Transformer(20, d_model=16, n_layers=1, n_heads=2, block_size=8, d_ff=16,
                        causal=causal, lm_head=False)
        a, b = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 3, 9]])
        changed = not torch.allclose(m.hidden(a)[0][0, 0], m.hidden(b)[0][0, 0])
        assert changed == (not causal)


@pytest.mark.parametrize("ffn", ["dense", "switch"])
def test_masked_padding_changes_nothing_the_real_tokens_see(ffn):
    """With keep=, a text's hidden states do not depend on how much padding follows it, and
    the MoE routes only the real tokens."""
    torch.manual_seed(0)
    m = Transformer(20, d_model=16, n_layers=2, n_heads=2, block_size=10, d_ff=16, ffn=ffn,
                    n_experts=4, capacity_factor=0.0, causal=False, lm_head=False).eval()
    short, padded = torch.tensor([[3, 4, 5]]), torch.tensor([[3, 4, 5, 0, 0, 0, 0]])
    a, _ = m.hidden(short, keep=short != 0)
    b, aux = m.hidden(padded, keep=padded != 0)
    assert torch.allclose(a, b[:, :3], atol=1e-5)
    if ffn == "switch":
        assert int(aux.moe[0]["counts"].sum()) == 3
    assert not torch.allclose(a, m.hidden(padded)[0][:, :3], atol=1e-5)  # unmasked differs


# ---- training -------------------------------------------------------------------------------
def test_switch_learns_above_the_majority_baseline_and_logs_router_metrics(tmp_path):
    p = write_csv(tmp_path / "d.csv", make_rows(300))
    r = run_train(tmp_path, [*FAST, *TINY, "env=text_csv", f"env.path={p}",
                             "network.ffn=switch", "network.n_experts=4",
                             "algo.total_steps=60"])
    m = r["metrics"]
    assert m["test/accuracy"]["last"] > m["test/majority_baseline"]["last"] + 0.3
    assert m["eval/accuracy"]["last"] > m["eval/majority_baseline"]["last"] + 0.3
    for tag in ("entropy", "top1_share", "dropped_fraction", "aux_loss"):
        assert f"moe/{tag}" in m and f"moe/{tag}/layer0" in m
    assert r["objective_mode"] == "max" and "eval/loss" in r["minimize"]
    vocab = json.loads((tmp_path / "run" / "vocab.json").read_text())
    assert vocab["labels"] == ["cold", "neutral", "warm"] and "red" in vocab["tokens"]
    texts = ["apple red stone music", "blue river", "grey tower paper north"]
    assert classify(tmp_path / "run", texts) == ["warm", "cold", "neutral"]
    from rlrun.eval import evaluate  # rlrun-eval RUN text=... labels new text the same way

    rec = evaluate(tmp_path / "run", {"text": texts[0]})
    assert rec["label"] == "warm" and rec["mode"] == "labels"
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["label"] == "warm"


def test_resume_continues_exactly(tmp_path, monkeypatch):
    p = write_csv(tmp_path / "d.csv", make_rows(120))
    args = [*FAST, *TINY, "env=text_csv", f"env.path={p}", "network.ffn=mixtral",
            "network.n_experts=4", "algo.total_steps=24", "deterministic=true"]
    a = run_train(tmp_path, args, "a")
    b = interrupt_and_resume(tmp_path, monkeypatch, args, 13)
    for tag in ("losses/train", "eval/accuracy", "eval/loss", "test/loss", "moe/aux_loss"):
        assert b["metrics"][tag]["last"] == pytest.approx(a["metrics"][tag]["last"], rel=1e-6)
    assert read_results(tmp_path / "b")["status"] == "completed"


# ---- errors ---------------------------------------------------------------------------------
def test_bad_data_and_settings_are_one_line_errors(tmp_path):
    one = write_csv(tmp_path / "one.csv", [(t, "same") for t, _ in make_rows(60)])
    unseen = tmp_path / "unseen.csv"
    rows = make_rows(200)
    # labels decided by the split's hash: give every validation/test text a new label
    val_test = {t for p in split_rows(rows, 0.1, 0.1)[1:] for t, _ in p}
    write_csv(unseen, [(t, "new" if t in val_test else lab) for t, lab in rows])
    (tmp_path / "empty").mkdir()
    cases = [
        (["env=imdb", f"env.path={tmp_path}/missing"], DataError, "no such folder"),
        (["env=imdb", f"env.path={tmp_path}/empty"], DataError, "train/ holds no"),
        (["env=text_csv", f"env.path={one}", "env.label_column=stars"], DataError,
         "env.label_column='stars'"),
        (["env=text_csv", f"env.path={one}"], DataError, "at least two classes"),
        (["env=text_csv", f"env.path={unseen}"], DataError, "never occur in training"),
        (["network.causal=true"], ConfigError, "network.causal=true"),
    ]
    for i, (extra, err, words) in enumerate(cases):
        with pytest.raises(err, match=words) as e:
            run_train(tmp_path, [*FAST, *TINY, *extra], f"err{i}")
        assert "\n" not in str(e.value)
        # found by preflight, before the run dir is made (the network's causal attention too)
        assert not (tmp_path / f"err{i}").exists()
