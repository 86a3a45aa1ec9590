"""The LM on token shards (`env=tokens`), `eval/val_bpb` for every LM run, and
`algo.init_from` for the LM and the text classifier (docs/lm.md#your-own-data).

The shards are rlrun-prepare's, made from a small ASCII corpus (tests/test_prepare.py's
synthetic prose), so that the bytes a token stands for can be checked against the decoded
text itself. Runs use a tiny network and a few steps.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlrun import testing
from rlrun.algos.init_from import architecture, open_source
from rlrun.algos.lm import evaluate
from rlrun.core.checkpoint import load_checkpoint
from rlrun.core.errors import ConfigError, DataError
from rlrun.data.tokens import RunTokenizer, TokenShards, Vocabulary, byte_level_alphabet
from rlrun.eval import evaluate as rlrun_eval
from rlrun.preflight import preflight
from rlrun.prepare import pipeline
from rlrun.prepare.settings import Settings
from rlrun.train import train

from .conftest import compose_cfg, run_train
from .test_prepare import extra_docs, prose, write_corpus

NET = ["network.d_model=32", "network.n_layers=1", "network.n_heads=2",
       "network.block_size=16", "network.d_ff=64"]
TINY = ["algo=lm", "threads=1", "checkpoint_every_s=0", *NET, "algo.batch_size=8",
        "algo.eval_batches=2", "algo.sample_chars=10", "algo.attention_stats=false"]


def prepared(folder: Path, corpus: Path, **settings) -> Path:
    pipeline.prepare([str(corpus)], Settings(out=str(folder), progress=False, **settings),
                     echo=lambda s: None)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Two corpora (prose, and other prose for a second domain), shards of the first as
    byte-level BPE (300 tokens) and as characters, shards of the second with the first's
    BPE, and an LM run on the BPE shards (the source of the init_from tests)."""
    root = tmp_path_factory.mktemp("tokens")
    corpus = write_corpus(root / "corpus", extra_docs(40))
    other = write_corpus(root / "other", extra_docs(20, start=500))
    d = {"root": root, "bpe": prepared(root / "bpe", corpus, vocab_size=300),
         "char": prepared(root / "char", corpus, tokenizer="char")}
    d["other"] = prepared(root / "other_bpe", other, tokenizer=str(d["bpe"] / "tokenizer.json"))
    run_train(root, [*TINY, "env=tokens", f"env.path={d['bpe']}", "algo.total_steps=20",
                     "algo.eval_every=10"], "source")
    d["source"] = root / "source"
    return d


def batches_stream(seed: int, rank: int = 0) -> np.random.Generator:
    """`ctx.rng("batches")` of a run with this seed on `rank` (rlrun.core.run documents it)."""
    return np.random.default_rng(np.random.SeedSequence(
        seed, spawn_key=(zlib.crc32(b"batches"), rank)))


# ---- training on shards --------------------------------------------------------------------
def test_shards_train_with_meta_vocab_rank_stream_windows_and_the_tokenizer(data, tmp_path,
                                                                            monkeypatch):
    """The vocabulary size is meta.json's, the batches are rlrun.data.tokens windows drawn
    from the run's `batches` stream, the run dir keeps a copy of the tokenizer, and the text
    sample is decoded with it."""
    from rlrun.data import lm_data

    drawn = []
    batch = lm_data.ShardData.batch
    monkeypatch.setattr(lm_data.ShardData, "batch",
                        lambda self, n: drawn.append(batch(self, n)) or drawn[-1])
    res = run_train(tmp_path, [*TINY, "env=tokens", f"env.path={data['bpe']}", "seed=3",
                               "algo.total_steps=4", "algo.batch_size=4"])
    run = tmp_path / "run"
    shards = TokenShards.open(data["bpe"])
    state = load_checkpoint(run / "checkpoints" / "last.pt")["loop"]
    assert state["model"]["emb.weight"].shape[0] == shards.meta["vocab_size"] == 300
    rng = batches_stream(3)
    for x, y in drawn:
        w = shards.windows("train", 4, 16, rng)
        assert (x.numpy() == w[:, :-1]).all() and (y.numpy() == w[:, 1:]).all()
    assert len(drawn) == 4
    assert (run / "tokenizer.json").read_bytes() == (data["bpe"] / "tokenizer.json").read_bytes()
    assert {"eval/val_bpb", "eval/val_ppl", "eval/val_loss"} <= set(res["metrics"])
    assert res["objectives"] == ["eval/val_ppl", "eval/val_bpb"]
    assert "eval/val_bpb" in res["minimize"]


def test_a_shard_run_resumes_exactly(data, tmp_path):
    """The NumPy batch stream is checkpointed with the rest: interrupted and resumed, the run
    ends where the uninterrupted one does."""
    over = [*TINY, "env=tokens", f"env.path={data['bpe']}", "algo.total_steps=6",
            "algo.eval_every=0", "deterministic=true"]
    testing.run(tmp_path, over, name="whole")
    testing.interrupt_and_resume(tmp_path, over, stop=3)
    testing.assert_same_state(tmp_path / "whole", tmp_path / "b")


def test_val_bpb_of_a_uniform_model_is_log2_vocab_per_byte(data):
    """Zero output weights give every token probability 1/V: val_bpb must be log2(V) times
    the targets that stand for text, over their bytes, counted from the decoded text itself
    (the corpus is ASCII); the end-of-text targets count in neither."""
    from rlrun.data.lm_data import ShardData
    from rlrun.nets.transformer import Transformer
    from rlrun.schemas.data import TokensConfig

    shards = ShardData(TokensConfig(path=str(data["bpe"])), 16, np.random.default_rng(0))
    val = shards.eval_batches(8, 3)
    model = Transformer(shards.vocab_size, d_model=32, n_layers=1, n_heads=2, block_size=16,
                        d_ff=64)
    with torch.no_grad():
        model.head.weight.zero_()
    loss, bpb = evaluate(model, val, torch.device("cpu"), shards.token_bytes)
    eot = shards.shards.eot_id
    targets = torch.cat([y.flatten() for _, y in val])
    text_targets = targets[targets != eot]
    n_bytes = sum(len(shards.decode([int(t)]).encode()) for t in text_targets)
    assert loss == pytest.approx(math.log(300), rel=1e-6)
    assert bpb == pytest.approx(math.log2(300) * len(text_targets) / n_bytes, rel=1e-6)
    assert (targets == eot).any()  # a document boundary is among the windows

    # a trained model: the same sums, computed here from the logits
    src = load_checkpoint(data["source"] / "checkpoints" / "last.pt")["loop"]["model"]
    model.load_state_dict(src)
    loss, bpb = evaluate(model, val, torch.device("cpu"), shards.token_bytes)
    nats = 0.0
    with torch.no_grad():
        for x, y in val:
            ce = F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten(), reduction="none")
            nats += float(ce[y.flatten() != eot].sum())
    assert bpb == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-5)


def test_the_character_path_logs_val_bpb_as_it_was(tmp_path):
    """On ASCII text every character is a byte: val_bpb = val_loss / ln 2, at every
    evaluation; the character path still writes its vocabulary for init_from."""
    text = "".join(prose(i) for i in range(60))
    (tmp_path / "t.txt").write_text(text)
    res = run_train(tmp_path, [*TINY, "env=text_file", f"env.path={tmp_path / 't.txt'}",
                               "algo.total_steps=10", "algo.eval_every=5"])
    m = res["metrics"]
    assert m["eval/val_bpb"]["last"] == pytest.approx(m["eval/val_loss"]["last"] / math.log(2),
                                                      rel=1e-6)
    saved = json.loads((tmp_path / "run" / "vocab.json").read_text())
    assert saved == {"tokenizer": "char", "tokens": sorted(set(text))}


def test_rlrun_eval_replays_a_shard_runs_sample_without_its_data(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    shards = shutil.copytree(data["bpe"], tmp_path / "shards")
    run_train(tmp_path, [*TINY, "env=tokens", f"env.path={shards}", "algo.total_steps=6"])
    shutil.rmtree(shards)  # rlrun-eval reads the run dir's tokenizer.json
    rec = rlrun_eval(tmp_path / "run", echo=lambda s: None)
    ea = EventAccumulator(str(tmp_path / "run"), size_guidance={"tensors": 0}).Reload()
    logged = ea.Tensors("eval/sample/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert logged == "    " + ("The " + rec["text"]).replace("\n", "\n    ")
    assert rlrun_eval(tmp_path / "run", {"prompt": "\u2603 "}, echo=lambda s: None)["text"]


def test_report_ranks_val_bpb_lower_is_better(data, tmp_path, capsys):
    from rlrun.report.cli import main

    root = tmp_path / "root"
    for lr in ("0.003", "0.0001"):
        run_train(root, [*TINY, "env=tokens", f"env.path={data['bpe']}", "algo.total_steps=8",
                         f"algo.lr={lr}"], f"lr{lr}")
    assert main([str(root), "--out", str(tmp_path / "out"), "--no-plot"]) == 0
    with open(tmp_path / "out" / "summary.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "eval/val_bpb"]
    assert len(rows) == 2 and {r["higher_is_better"] for r in rows} == {"False"}
    ranked = sorted(rows, key=lambda r: int(r["rank"]))
    assert float(ranked[0]["mean"]) < float(ranked[1]["mean"])
    assert "algo.lr=0.003" in ranked[0]["setting"]


# ---- init_from: the LM ---------------------------------------------------------------------
def test_init_from_starts_from_the_weights_with_a_new_optimiser_schedule_and_budget(data,
                                                                                     tmp_path):
    src = data["source"]
    digest = hashlib.sha256((src / "checkpoints" / "last.pt").read_bytes()).hexdigest()
    over = [*TINY, "env=tokens", f"env.path={data['other']}", f"algo.init_from={src}",
            "algo.total_steps=5", "algo.log_every=1", "algo.lr=0.001"]
    # the weights, before any step: an interruption at step 0 is impossible, so compare the
    # model that init_lm loads with the source's checkpoint directly
    from rlrun.algos.init_from import init_lm
    from rlrun.nets.transformer import Transformer

    model = Transformer(300, d_model=32, n_layers=1, n_heads=2, block_size=16, d_ff=64)
    rec = init_lm(model, open_source(str(src)), "same",
                  TokenShards.open(data["other"]).vocabulary())
    want = load_checkpoint(src / "checkpoints" / "last.pt")["loop"]["model"]
    assert all(torch.equal(model.state_dict()[k], want[k]) for k in want)
    assert rec["sha256"] == digest and rec["step"] == 20

    res = run_train(tmp_path, over)
    assert res["steps"] == 5 and res["init_from"] == {
        "run_dir": str(src), "checkpoint": str(src / "checkpoints" / "last.pt"), "step": 20,
        "sha256": digest, "vocab": "same"}
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["loop"]
    steps = {int(s["step"]) for s in state["opt"]["state"].values()}
    assert steps == {5}  # a new AdamW: 5 steps of its own, not 20 + 5
    first_lr = scalar_curve(tmp_path / "run", "charts/learning_rate")[0]
    assert first_lr == pytest.approx(0.001 / 30)  # the new schedule's first warm-up step
    # it learned from there: better than a model from scratch after the same 5 steps
    scratch = run_train(tmp_path, [o for o in over if not o.startswith("algo.init_from")],
                        "scratch")
    assert res["metrics"]["eval/val_bpb"]["last"] < scratch["metrics"]["eval/val_bpb"]["last"]


def scalar_curve(run_dir: Path, tag: str) -> list[float]:
    from rlrun.report.index import read_curve

    curve = read_curve(run_dir, tag)
    assert curve is not None
    return curve[1]


def test_a_resumed_init_from_run_keeps_its_record_without_the_source(data, tmp_path):
    src = shutil.copytree(data["source"], tmp_path / "source")
    over = [*TINY, "env=tokens", f"env.path={data['bpe']}", f"algo.init_from={src}",
            "algo.total_steps=6", "algo.eval_every=0"]
    stopped = testing.interrupt(tmp_path, over, stop=3)
    shutil.rmtree(src)  # a resume continues from its own checkpoint
    res = testing.resume(stopped)
    assert res["status"] == "completed" and res["init_from"]["run_dir"] == str(src)


def test_init_from_vocab_extend_maps_rows_by_bytes_and_starts_new_ones_at_the_mean(data,
                                                                                   tmp_path):
    """Source: the BPE run; target: character shards. Each character that a BPE token also
    stands for (every one: byte-level BPE starts from the 256 bytes) starts from that token's
    rows; the end-of-text token from the source's end-of-text token."""
    res = run_train(tmp_path, [*TINY, "env=tokens", f"env.path={data['char']}",
                               f"algo.init_from={data['source']}", "algo.init_from_vocab=extend",
                               "algo.total_steps=1", "algo.lr=1e-9", "algo.warmup_steps=0",
                               "algo.weight_decay=0"])
    rec = res["init_from"]
    chars = TokenShards.open(data["char"]).vocabulary()
    bpe = RunTokenizer.read(data["source"]).vocabulary()
    mapping = chars.map_from(bpe)
    assert (rec["tokens_from_source"], rec["tokens_new"]) == (len(chars), 0)
    src = load_checkpoint(data["source"] / "checkpoints" / "last.pt")["loop"]["model"]
    got = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["loop"]["model"]
    for key in ("emb.weight", "head.weight"):  # one step at lr 1e-9 moves nothing visible
        torch.testing.assert_close(got[key], src[key][torch.as_tensor(mapping)], atol=1e-6,
                                   rtol=0)
    # the other way, BPE on a character source: merged tokens are new, at the mean row
    vocab = Vocabulary((b"a", b"ab", "<|endoftext|>", b"zz"), "")
    m = vocab.map_from(Vocabulary((b"b", "<|endoftext|>", b"a"), ""))
    assert m.tolist() == [2, -1, 1, -1]
    from rlrun.algos.init_from import map_rows

    rows = map_rows(torch.zeros(4, 2), torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]]), m)
    assert rows.tolist() == [[5, 9], [3, 5], [3, 4], [3, 5]]


def test_byte_level_pieces_are_the_bytes_of_the_text(data):
    """Each byte-level token decodes to its bytes through GPT-2's table, and a document's
    pieces join to its UTF-8 bytes (non-ASCII included)."""
    tok = TokenShards.open(data["bpe"]).tokenizer()
    vocab = Vocabulary.of_tokenizer(tok, "x")
    assert len(byte_level_alphabet()) == 256
    text = "naïve café ☃ over the lazy dog\n\tdone"
    ids = tok.encode(text, add_special_tokens=False).ids
    assert b"".join(vocab.pieces[i] for i in ids) == text.encode()
    assert vocab.pieces[0] == "<|endoftext|>"


def test_init_from_refusals_name_what_differs(data, tmp_path):
    base = [*TINY, "env=tokens", f"env.path={data['bpe']}", f"algo.init_from={data['source']}"]
    with pytest.raises(ConfigError, match=r"differs in network\.d_model=64 \(init_from run:"
                                          r" 32\), network\.d_ff=96 \(init_from run: 64\);"):
        preflight(compose_cfg([*base, "network.d_model=64", "network.d_ff=96"]))
    with pytest.raises(DataError, match=r"env.path=.*char was prepared with a different"
                                        r" tokenizer than the algo.init_from run \(.*"
                                        r"characters.* against 300 tokens \(byte-level BPE"):
        preflight(compose_cfg([*base, f"env.path={data['char']}"]))
    with pytest.raises(ConfigError, match="is an algo=epsilon_greedy run"):
        bandit = tmp_path / "bandit"
        run_train(tmp_path, ["env.steps=5", "env.num_runs=2"], "bandit")
        preflight(compose_cfg([*base[:-1], f"algo.init_from={bandit}"]))
    # block_size and the routing coefficients may differ; null n_kv_heads is n_heads
    cfg = compose_cfg([*base, "network.block_size=8", "network.n_kv_heads=2",
                       "network.aux_loss_coef=0.1"])
    preflight(cfg)
    assert architecture(cfg.network)["n_kv_heads"] == 2
    # a resumed run does not check its source again (it has its own weights)
    preflight(compose_cfg([*base[:-1], "algo.init_from=/gone"]), init_from=False)
    with pytest.raises(DataError):
        train(compose_cfg([*base, f"env.path={data['char']}", "logger.progress=none"]),
              run_dir=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


# ---- init_from: the text classifier ------------------------------------------------------
CLS = ["algo=text_classifier", "threads=1", "checkpoint_every_s=0", *NET[:3], "network.d_ff=64",
       "env.packages=[urllib,wsgiref,concurrent]", "algo.total_steps=1", "algo.eval_every=0",
       "algo.lr=1e-9", "algo.warmup_steps=0", "algo.weight_decay=0"]


def test_a_classifier_encoder_starts_from_a_causal_lms_blocks(data, tmp_path):
    src = data["source"]
    res = run_train(tmp_path, [*CLS, f"algo.init_from={src}"])
    run = tmp_path / "run"
    rec = res["init_from"]
    assert rec["causal_source"] is True and rec["vocab"] == "same"
    assert (rec["tokens_from_source"], rec["tokens_new"]) == (300, 1)  # padding is new
    lm = load_checkpoint(src / "checkpoints" / "last.pt")["loop"]["model"]
    enc = {k[len("encoder."):]: v for k, v in load_checkpoint(
        run / "checkpoints" / "last.pt")["loop"]["model"].items() if k.startswith("encoder.")}
    assert set(enc) == set(lm) - {"head.weight"}
    for k in enc:
        if k != "emb.weight":
            torch.testing.assert_close(enc[k], lm[k], atol=1e-6, rtol=0)
    torch.testing.assert_close(enc["emb.weight"][:300], lm["emb.weight"], atol=1e-6, rtol=0)
    torch.testing.assert_close(enc["emb.weight"][300], lm["emb.weight"].mean(0), atol=1e-6,
                               rtol=0)
    vocab = json.loads((run / "vocab.json").read_text())
    assert (vocab["tokenizer"], vocab["pad"], vocab["unknown"]) == ("tokenizer.json", 300, None)
    # the texts went through the LM's tokenizer, and rlrun-eval labels new ones with it
    rec = rlrun_eval(run, {"text": "Return the value of the named header field."},
                     echo=lambda s: None)
    assert rec["label"] in vocab["labels"]
    # extend: the classifier's own word vocabulary, rows of words the LM also has
    res = run_train(tmp_path, [*CLS, f"algo.init_from={src}", "algo.init_from_vocab=extend"],
                    "extend")
    words = json.loads((tmp_path / "extend" / "vocab.json").read_text())["tokens"]
    pieces = set(RunTokenizer.read(src).vocabulary().pieces)
    assert res["init_from"]["tokens_from_source"] == sum(w.encode() in pieces
                                                         for w in words[2:])


def test_a_classifier_refuses_an_lm_of_another_architecture(data):
    with pytest.raises(ConfigError, match=r"network\.d_model=64 \(init_from run: 32\)"):
        preflight(compose_cfg(["algo=text_classifier", f"algo.init_from={data['source']}",
                               "env.packages=[urllib,wsgiref]"]))


# ---- docs/lm.md#your-own-data: its commands, run ---------------------------------------------
DOC = Path(__file__).resolve().parents[1] / "docs" / "lm.md"


def own_data_commands() -> list[str]:
    """The lines of the first code block of docs/lm.md's "Your own data" section."""
    text = DOC.read_text().split("\n## Your own data\n", 1)[1]
    block = text.split("```\n", 2)[1]
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_the_own_data_commands_of_the_docs_run(tmp_path, monkeypatch, capsys):
    """Each command of docs/lm.md's "Your own data" block, in order, in this process, on a
    slice of the default corpus (the 40 smallest stdlib modules of at least 3 KB) and a
    folder of notes, with a tiny network and a few steps appended to every `rlrun` line
    (torchrun: tests/test_distributed.py)."""
    import os
    import shlex

    from hydra.core.global_hydra import GlobalHydra

    from rlrun import cli
    from rlrun.eval import main as eval_main
    from rlrun.prepare import inputs
    from rlrun.prepare.cli import main as prepare_main

    full = inputs.default_sources()
    small = sorted((s for s in full[:-1] if os.path.getsize(s.path) >= 3000),
                   key=lambda s: os.path.getsize(s.path))[:40]
    monkeypatch.setattr(inputs, "default_sources", lambda: small)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["rlrun"])
    write_corpus(tmp_path / "notes", extra_docs(20, start=700))
    commands = own_data_commands()
    assert commands[0].startswith("rlrun-prepare out=data/stdlib ") and len(commands) == 9
    tiny = {"network.d_model": "32", "network.n_layers": "1", "network.n_heads": "2",
            "network.d_ff": "64", "network.block_size": "16", "algo.total_steps": "3",
            "algo.eval_batches": "1", "algo.batch_size": "4", "algo.sample_chars": "5",
            "threads": "1", "logger.progress": "none", "checkpoint_every_s": "0"}
    threads = torch.get_num_threads()
    for n, command in enumerate(commands):
        prog, *args = shlex.split(command, comments=True)
        if prog == "torchrun":
            continue
        try:
            if prog == "rlrun-prepare":
                prepare_main([*args, "progress=false"])
            elif prog == "rlrun-eval":
                eval_main(args)
            else:
                assert prog == "rlrun", command
                keys = dict(a.split("=", 1) for a in args)
                keys.update(tiny)
                if keys.get("algo") == "text_classifier":
                    keys.update({"env.packages": "[urllib,wsgiref]", "algo.total_steps": "1"})
                    for lm_only in ("algo.batch_size", "algo.eval_batches", "algo.sample_chars"):
                        keys.pop(lm_only)
                keys.setdefault("hydra.run.dir", f"runs/doc{n}")
                GlobalHydra.instance().clear()
                try:
                    cli.main([f"{k}={v}" for k, v in keys.items()])
                finally:
                    GlobalHydra.instance().clear()
        except SystemExit as e:
            raise AssertionError(f"{command}: exit {e.code}: {capsys.readouterr().err}") from None
    torch.set_num_threads(threads)
    assert json.loads(Path("runs/stdlib/eval.json").read_text())["settings"]["chars"] == 40
    fine = json.loads(Path("runs/doc4/results.json").read_text())
    assert fine["status"] == "completed" and fine["init_from"]["vocab"] == "same"
    extend = json.loads(Path("runs/doc6/results.json").read_text())["init_from"]
    assert extend["vocab"] == "extend" and extend["tokens_new"] > 0
    cls = json.loads(Path("runs/doc7/results.json").read_text())
    assert cls["status"] == "completed" and cls["init_from"]["causal_source"] is True


def test_ctx_record_may_not_replace_the_records_own_keys(tmp_path):
    from rlrun.core.logger import LoggerConfig
    from rlrun.core.run import RunContext

    ctx = RunContext(run_dir=tmp_path, algo=None, env=None, algo_name="lm", env_name="tokens",
                     seed=0, device="cpu", deterministic=False,
                     logger_cfg=LoggerConfig(tensorboard=False, progress="none"), headline="")
    with pytest.raises(ValueError, match=r"ctx.record\(objective, status=...\)"):
        ctx.record(status="completed", objective=1.0)
    ctx.record(init_from={"step": 3})
    rec = ctx.write_results("running")
    assert rec["init_from"] == {"step": 3} and rec["status"] == "running"
    ctx.close()
