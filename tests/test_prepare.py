"""`rlrun-prepare` (docs/prepare.md) and the shards' reading side (`rlrun.data.tokens`).

A small synthetic corpus plants one document per fate (an exact duplicate that differs only
in whitespace and line ends, a near duplicate with two words changed, one failure per
filter) and each test asserts what happens to it. The full default corpus runs in `slow`.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pytest

from rlrun.core.errors import DataError
from rlrun.data.tokens import TokenShards, bits_per_byte, char_token_bytes, token_bytes
from rlrun.prepare import filters, neardup, pipeline
from rlrun.prepare.cli import main
from rlrun.prepare.normalize import normalize
from rlrun.prepare.settings import Settings

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "pe", "da", "gu", "fi"]
# ~300 distinct words of 3-8 letters (mean length about 5), then a handful of stop words
WORDS = sorted({a + b + c[: (i % 3)] for i, (a, b, c) in enumerate(
    (a, b, c) for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES)})[:300]
WORDS += ["the", "of", "and", "to", "with"]


def prose(seed: int, n_words: int = 160, per_line: int = 12) -> str:
    rng = np.random.default_rng(seed)
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), n_words)]
    lines = [" ".join(words[i:i + per_line]) + "." for i in range(0, n_words, per_line)]
    return "\n".join(lines) + "\n"


def planted() -> dict[str, str]:
    """name -> text: one document per fate (and two kept ones)."""
    base = prose(1)
    words = base.split(" ")
    words[40], words[90] = "zzzalpha", "zzzbeta"  # 2 of 160 words: Jaccard about 0.88
    bullets = "\n".join("- " + " ".join(prose(50 + i, 12).split()) for i in range(12))
    ellipsis = "\n".join(" ".join(prose(60 + i, 14).split()).rstrip(".") + "..."
                         for i in range(10))
    dup_lines = "\n".join([prose(7, 12).strip()] * 6 + [prose(8, 60).strip()])
    return {
        "a_kept.txt": base,
        "b_exact.txt": base.replace("\n", "  \r\n") + "\n\n\n",
        "c_near.txt": " ".join(words),
        "d_kept.txt": prose(2),
        "e_short.txt": prose(3, 20),
        "f_long_words.txt": " ".join(w * 4 for w in prose(4).split()),
        "g_hashes.txt": "\n".join("# " + line for line in prose(5, 160, 6).splitlines()),
        "h_bullets.txt": bullets,
        "i_ellipsis.txt": ellipsis,
        "j_dup_lines.txt": dup_lines,
        "k_empty.txt": " \n\n \t\n",
    }


FATES = {"a_kept.txt": "kept", "b_exact.txt": "exact_dup", "c_near.txt": "near_dup",
         "d_kept.txt": "kept", "e_short.txt": "min_words",
         "f_long_words.txt": "max_mean_word_length", "g_hashes.txt": "max_symbol_ratio",
         "h_bullets.txt": "max_bullet_lines", "i_ellipsis.txt": "max_ellipsis_lines",
         "j_dup_lines.txt": "max_dup_lines", "k_empty.txt": "empty"}


def write_corpus(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_bytes(text.encode())
    return folder


def extra_docs(n: int, start: int = 100) -> dict[str, str]:
    return {f"p{start + i:03d}.txt": prose(start + i) for i in range(n)}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main([*argv, "progress=false"])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def stages(out: Path) -> list[dict]:
    rel = duckdb.sql(f"SELECT * FROM '{out / 'stages.parquet'}' ORDER BY doc")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), {**planted(), **extra_docs(30)})


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "out"
    meta = pipeline.prepare([str(corpus)], Settings(out=str(out), vocab_size=300,
                                                    progress=False), echo=lambda s: None)
    assert meta["documents"]["in"] == len(planted()) + 30
    return out


def test_every_planted_document_meets_its_fate(prepared):
    rows = {Path(r["source"]).name: r for r in stages(prepared)}
    assert {name: rows[name]["fate"] for name in FATES} == FATES
    assert all(r["fate"] == "kept" for n, r in rows.items() if n.startswith("p"))
    a = rows["a_kept.txt"]["doc"]
    assert rows["b_exact.txt"]["dup_of"] == a and rows["c_near.txt"]["dup_of"] == a
    assert 0.8 <= rows["c_near.txt"]["jaccard"] < 1
    assert rows["k_empty.txt"]["chars"] == 0 and rows["a_kept.txt"]["split"] in ("train", "val")
    assert rows["b_exact.txt"]["split"] is None and rows["b_exact.txt"]["tokens"] is None
    # scores as defined (Gopher): 12 of 12 bullet lines, 10 of 10 ellipsis lines, 5 of 7
    assert rows["h_bullets.txt"]["bullet_lines"] == 1.0
    assert rows["i_ellipsis.txt"]["ellipsis_lines"] == 1.0
    assert rows["j_dup_lines.txt"]["dup_lines"] == pytest.approx(5 / 11)
    assert rows["e_short.txt"]["words"] == 20
    meta = json.loads((prepared / "meta.json").read_text())
    assert meta["documents"]["fates"]["kept"] == 32 and meta["documents"]["in"] == 41
    assert sum(r["tokens"] or 0 for r in rows.values()) == sum(
        s["tokens"] for s in meta["splits"].values())


def test_near_dup_confirmation_uses_exact_jaccard():
    a = neardup.shingles(prose(1), 5)
    words = prose(1).split(" ")
    words[40] = "zzz"
    b = neardup.shingles(" ".join(words), 5)
    inter = len(set(a.tolist()) & set(b.tolist()))
    assert neardup.jaccard(a, b) == inter / (len(a) + len(b) - inter)
    assert neardup.shingles("Hello, world!", 5).size == 1  # shorter than n: one shingle
    assert neardup.shingles("...", 5).size == 0
    # LSH with one band of all rows finds only identical signatures; a chain keeps its end
    sigs = np.array([[1, 1], [1, 1], [2, 2]], dtype=np.uint32)
    sets = [np.array([1, 2], np.uint64), np.array([1, 2], np.uint64), np.array([9], np.uint64)]
    dup, best = neardup.near_duplicates(sigs, [True] * 3, sets.__getitem__, 1, 2, 0.8)
    assert dup == [None, 0, None] and best == [None, 1.0, None]


def test_filters_follow_gopher_definitions():
    s = filters.scores("a bb ccc\n# x ...\n- item\na bb ccc\n")
    assert s["words"] == 11 and s["mean_word_length"] == pytest.approx(22 / 11)
    assert s["symbol_ratio"] == pytest.approx(1 / 11)  # one '#', one '...': the larger
    assert filters.scores("# # a ... b c")["symbol_ratio"] == pytest.approx(2 / 6)
    assert s["bullet_lines"] == s["dup_lines"] == s["ellipsis_lines"] == 0.25
    off = Settings(min_words=None, max_symbol_ratio=None, min_mean_word_length=None)
    assert filters.failed_rule(s, off) is None
    assert filters.failed_rule(s, Settings()) == "min_words"


def test_normalise_is_nfc_and_whitespace_and_idempotent():
    raw = "  Cafe\u0301 \r\nline two\t \r\n\r\n\r\n\r\n  indented\n\n"
    assert normalize(raw) == "  Caf\u00e9\nline two\n\n  indented"
    assert normalize(normalize(raw)) == normalize(raw)


def test_same_inputs_same_bytes(corpus, prepared, tmp_path):
    other = tmp_path / "again"
    pipeline.prepare([str(corpus)], Settings(out=str(other), vocab_size=300, progress=False),
                     echo=lambda s: None)
    names = sorted(p.name for p in prepared.iterdir() if not p.name.startswith("."))
    assert names == sorted(p.name for p in other.iterdir() if not p.name.startswith("."))
    for name in names:
        if name != "meta.json":
            assert (prepared / name).read_bytes() == (other / name).read_bytes(), name
    a, b = (json.loads((d / "meta.json").read_text()) for d in (prepared, other))
    for key in ("created", "seconds"):
        a.pop(key), b.pop(key)
    assert a == b


def test_rerun_is_up_to_date_and_other_settings_need_force(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    args = [str(corpus), f"out={out}", "vocab_size=300"]
    assert run(args, capsys)[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name[0] != "."}
    code, said, _ = run(args, capsys)
    assert code == 0 and "is up to date" in said
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name[0] != "."} == before
    code, _, err = run([*args[:2], "vocab_size=280"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "other settings (vocab_size: 300 -> 280); add --force" in err
    (corpus.parent / "more").mkdir(exist_ok=True)
    write_corpus(corpus.parent / "more", extra_docs(2, 500))
    code, _, err = run([*args, str(corpus.parent / "more")], capsys)
    assert code == 2 and "prepared from other inputs" in err and err.count("\n") == 1
    code, said, _ = run([*args[:2], "vocab_size=280", "--force"], capsys)
    assert code == 0 and json.loads((out / "meta.json").read_text())["vocab_size"] == 280
    assert "wrote" in said
    (out / "val_000000.bin").unlink()  # a damaged dir is prepared again, not "up to date"
    code, said, _ = run([*args[:2], "vocab_size=280"], capsys)
    assert code == 0 and "incomplete" in said and (out / "val_000000.bin").is_file()


def test_ctrl_c_while_writing_leaves_no_shard(corpus, tmp_path, capsys, monkeypatch):
    from rlrun.prepare import shards

    calls = []
    original = shards.ShardWriter._flush

    def flush_then_ctrl_c(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(shards.ShardWriter, "_flush", flush_then_ctrl_c)
    out = tmp_path / "out"
    code, _, err = run([str(corpus), f"out={out}", "vocab_size=300", "shard_tokens=500"],
                       capsys)
    assert code == 130 and "interrupted" in err and len(calls) == 3
    assert [p.name for p in out.iterdir()] == [".rlrun.lock"]  # no shard, no meta.json
    # over a finished corpus: an interrupted --force leaves the old one whole
    monkeypatch.setattr(shards.ShardWriter, "_flush", original)
    assert run([str(corpus), f"out={out}", "vocab_size=300"], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    calls.clear()
    monkeypatch.setattr(shards.ShardWriter, "_flush", flush_then_ctrl_c)
    code, _, _ = run([str(corpus), f"out={out}", "vocab_size=290", "shard_tokens=500",
                      "--force"], capsys)
    assert code == 130
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    TokenShards.open(out)


def test_split_is_stable_when_documents_are_added(corpus, prepared, tmp_path):
    bigger = write_corpus(tmp_path / "bigger", {**planted(), **extra_docs(30),
                                                **extra_docs(40, 300)})
    out = tmp_path / "out"
    pipeline.prepare([str(bigger)], Settings(out=str(out), vocab_size=300, progress=False),
                     echo=lambda s: None)
    old = {r["hash"]: r["split"] for r in stages(prepared) if r["fate"] == "kept"}
    new = {r["hash"]: r["split"] for r in stages(out) if r["fate"] == "kept"}
    assert set(old) < set(new) and all(new[h] == s for h, s in old.items())
    assert {"train", "val"} <= set(new.values())


def _documents(shards: TokenShards, split: str) -> list[np.ndarray]:
    ids = np.concatenate([np.asarray(s) for s in shards.shards[split]])
    cuts = np.flatnonzero(ids == shards.eot_id)
    assert cuts[-1] == len(ids) - 1  # every document ends with the end-of-text token
    starts = np.concatenate([[0], cuts[:-1] + 1])
    return [ids[a:b] for a, b in zip(starts, cuts, strict=True)]


@pytest.mark.parametrize("tokenizer", ["bpe", "char"])
def test_round_trip_and_bytes(corpus, tmp_path, tokenizer):
    out = tmp_path / "out"
    meta = pipeline.prepare([str(corpus)], Settings(out=str(out), vocab_size=300,
                                                    tokenizer=tokenizer, shard_tokens=700,
                                                    progress=False), echo=lambda s: None)
    shards = TokenShards.open(out)
    assert len(shards.shards["train"]) > 1 and shards.vocab_size == meta["vocab_size"]
    rows = [r for r in stages(out) if r["fate"] == "kept"]
    texts = {r["doc"]: normalize(Path(r["source"]).read_text()) for r in rows}
    for split in ("train", "val"):
        docs = _documents(shards, split)
        want = [texts[r["doc"]] for r in rows if r["split"] == split]
        assert [shards.decode(d) for d in docs] == want
        assert [shards.encode(t) for t in want] == [d.tolist() for d in docs]
        # bytes of the tokens add up to the text's bytes; the eot token has none
        assert shards.bytes_of(np.concatenate([np.asarray(s) for s in shards.shards[split]])) \
            == meta["splits"][split]["bytes"] == sum(len(t.encode()) for t in want)
    assert meta["token_bytes_exact"] and shards.token_bytes[shards.eot_id] == 0
    if tokenizer == "char":
        chars = sorted(set("".join(texts.values())))
        assert shards.vocab_size == len(chars) + 1
        assert list(shards.token_bytes[1:]) == list(char_token_bytes(chars))
    # a document holding the end-of-text token's text keeps it as text
    assert shards.eot_id not in shards.encode("a <|endoftext|> b")


def test_char_tokenizer_matches_its_saved_file(corpus, tmp_path):
    """The corpus is encoded through a lookup table; tokenizer.json must give the same ids."""
    from tokenizers import Tokenizer

    from rlrun.prepare.tokenizer import build_char

    text = normalize((corpus / "a_kept.txt").read_text()) + " é☃\ttab"
    tok = build_char([text], "<|endoftext|>")
    tok.save(tmp_path / "t.json")
    saved = Tokenizer.from_file(str(tmp_path / "t.json"))
    assert saved.encode(text).ids == tok.encode_batch([text])[0].tolist()


def test_shard_dtype_follows_the_vocabulary(tmp_path):
    from tokenizers import AddedToken, Tokenizer, decoders, models

    # a character vocabulary of 70,000 code points: ids past 65,535 need uint32
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 73_000) if not 0xD800 <= c < 0xE000][:70_000]
    vocab = {"<|endoftext|>": 0, **{c: i for i, c in enumerate(chars, 1)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    tok.save(str(tmp_path / "big.json"))
    text = "".join(chars[-40:]) + "".join(chars[:40])
    (tmp_path / "in").mkdir()
    for i in range(8):
        (tmp_path / "in" / f"{i}.txt").write_text(text[i:] + text[:i])
    out = tmp_path / "out"
    meta = pipeline.prepare([str(tmp_path / "in")], Settings(
        out=str(out), tokenizer=str(tmp_path / "big.json"), filters=False, near_dedup=False,
        val_fraction=0.3, progress=False), echo=lambda s: None)
    shards = TokenShards.open(out)
    assert meta["dtype"] == "uint32" and shards.shards["train"][0].dtype == np.uint32
    assert max(int(s.max()) for s in shards.shards["train"]) == 70_000
    assert meta["tokenizer"]["from"] == str(tmp_path / "big.json")
    assert (out / "tokenizer.json").read_bytes() != b""


def test_shard_writer_cuts_shards_at_shard_tokens(tmp_path):
    from rlrun.prepare.shards import ShardWriter

    w = ShardWriter(tmp_path, "train", "uint16", 7, eot_id=0)
    docs = [np.arange(1, n + 1) for n in (3, 10, 0, 5)]
    for d in docs:
        w.add(d)
    shards = w.close()
    assert [s["tokens"] for s in shards] == [7, 7, 7, 1] and w.tokens == 22
    got = np.concatenate([np.fromfile(tmp_path / s["file"], dtype=np.uint16) for s in shards])
    assert got.tolist() == [t for d in docs for t in [*d.tolist(), 0]]


def test_windows_draw_from_every_start(prepared):
    shards = TokenShards.open(prepared)
    rng = np.random.default_rng(0)
    w = shards.windows("train", 4000, 16, rng)
    assert w.shape == (4000, 17) and w.dtype == np.int64
    flat = np.asarray(shards.shards["train"][0])
    starts = {int(np.flatnonzero((np.lib.stride_tricks.sliding_window_view(flat, 17) == row)
                                 .all(1))[0]) for row in w[:200]}
    assert len(starts) > 150  # spread over the shard, not a few places
    again = shards.windows("train", 4000, 16, np.random.default_rng(0))
    assert (again == w).all()
    ev = shards.eval_windows("val", 8, 16)
    assert (ev == shards.eval_windows("val", 8, 16)).all() and ev.shape == (8, 17)
    assert ev[0].tolist() == np.asarray(shards.shards["val"][0][:17]).tolist()


def test_bits_per_byte():
    # a uniform guess over 256 byte values costs 8 bits a byte
    assert bits_per_byte(1000 * math.log(256), 1000) == pytest.approx(8.0)
    # the same text as 4 BPE tokens or 12 characters: the same nats give the same bpb
    assert bits_per_byte(12.0, 12) == bits_per_byte(12.0, 12)
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0)


def test_token_bytes_of_a_byte_level_tokenizer(prepared):
    shards = TokenShards.open(prepared)
    tok = shards.tokenizer()
    tb = token_bytes(tok)
    for i in range(1, shards.vocab_size):
        text = tok.decode([i])
        if "\ufffd" not in text:  # a whole character (or several)
            assert tb[i] == len(text.encode()), (i, text)


# --- the error battery: one line on stderr, exit 2, the offending value named -------------

def _errors(tmp_path: Path) -> list[tuple[list[str], str]]:
    good = write_corpus(tmp_path / "good", {"a.txt": prose(1), "b.txt": prose(2)})
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode() + b"\xe9t\xe9")
    (tmp_path / "rows.jsonl").write_text('{"text": "x"}\n{"body": "y", "id": 2}\n')
    (tmp_path / "rows.csv").write_text("id,body\n1,hello\n")
    (tmp_path / "bad.jsonl").write_text('{"text": "x"}\nnot json\n')
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "fake.parquet").write_text("not parquet")
    (tmp_path / "notok.json").write_text("{}")
    from tokenizers import Tokenizer, models

    Tokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[])).save(str(tmp_path / "noeot.json"))
    out = f"out={tmp_path / 'out'}"
    return [
        ([str(tmp_path / "nope"), out], f"no input found: {tmp_path / 'nope'}"),
        ([str(tmp_path / "*.nothing"), out], "matches no file"),
        ([str(tmp_path / "empty_dir"), out], f"no input found in {tmp_path / 'empty_dir'}"),
        ([str(tmp_path / "latin1.txt"), out],
         f"{tmp_path / 'latin1.txt'} is not UTF-8 (invalid continuation byte at byte 5)"),
        ([str(tmp_path / "rows.jsonl"), out],
         f"{tmp_path / 'rows.jsonl'} line 2 has no 'text' key (keys seen: body, id)"),
        ([str(tmp_path / "rows.csv"), out], "has no 'text' column (keys seen: id, body)"),
        ([str(tmp_path / "rows.csv"), out, "text_key=title"], "no 'title' column"),
        ([str(tmp_path / "bad.jsonl"), out], f"{tmp_path / 'bad.jsonl'} line 2 is not JSON"),
        ([str(tmp_path / "fake.parquet"), out], f"{tmp_path / 'fake.parquet'} is not a Parquet"),
        ([str(good), out, "vocab_size=200"], "vocab_size=200 is too small for byte-level BPE"),
        ([str(good), f"out={tmp_path / 'afile'}"], f"out={tmp_path / 'afile'} is a file"),
        ([str(good), out, "vocab_sise=300"], "vocab_sise= is not an option of rlrun-prepare;"
                                             " did you mean vocab_size?"),
        ([str(good), out, "threshold=1.5"], "threshold=1.5 must be >= 0 and <= 1"),
        ([str(good), out, "min_words=many"], "min_words='many' must be an integer >= 0"),
        ([str(good), out, "executor=pbs"], "executor='pbs' must be local or slurm"),
        ([str(good), out, f"tokenizer={tmp_path / 'none.json'}"],
         f"tokenizer={tmp_path / 'none.json'}: no such file"),
        ([str(good), out, f"tokenizer={tmp_path / 'notok.json'}"],
         f"tokenizer={tmp_path / 'notok.json'} is not a tokenizers JSON file"),
        ([str(good), out, f"tokenizer={tmp_path / 'noeot.json'}"],
         f"tokenizer={tmp_path / 'noeot.json'} has no <|endoftext|> token"),
        ([str(good), str(tmp_path / "latin1.txt"), out, "workers=2"],
         f"{tmp_path / 'latin1.txt'} is not UTF-8"),  # raised in a worker process
        ([str(good), out, "--fast"], "unknown flag --fast"),
        ([str(good), out, "min_words=10000"], "no document is left to tokenize"),
        ([str(good), out, "min_words=200", "max_words=100"], "min_words=200 is above"),
    ]


def test_help_lists_every_option(capsys):
    from rlrun.prepare.settings import OPTIONS

    main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: rlrun-prepare [INPUT ...]")
    assert all(f"  {k}=" in out for k in OPTIONS) and "[8192]" in out


def test_error_battery(tmp_path, capsys):
    cases = _errors(tmp_path)
    for argv, expected in cases:
        code, _, err = run(argv, capsys)
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and err.startswith("rlrun-prepare: error: "), err
        assert expected in err, (argv, err)
    assert len(cases) >= 20


@pytest.mark.skipif(__import__("shutil").which("sbatch") is not None, reason="SLURM is here")
def test_slurm_without_a_cluster_is_one_line(tmp_path, capsys):
    good = write_corpus(tmp_path / "good", {"a.txt": prose(1)})
    code, _, err = run([str(good), f"out={tmp_path / 'out'}", "executor=slurm"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "executor=slurm needs a SLURM cluster, and sbatch is not found here" in err
    assert not (tmp_path / "out").exists()


def test_unreadable_file_is_named(tmp_path, capsys, monkeypatch):
    """As root every file is readable, so the refusal is the OS's, made to happen."""
    from rlrun.prepare import inputs

    secret = tmp_path / "secret.txt"
    secret.write_text(prose(1))

    def no_access(path, *a, **k):
        if Path(path) == secret:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *a, **k)

    monkeypatch.setattr(inputs, "open", no_access, raising=False)
    code, _, err = run([str(secret), f"out={tmp_path / 'out'}"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"cannot read {secret}: Permission denied" in err


def test_reader_errors(prepared, tmp_path):
    lone = tmp_path / "lone"
    lone.mkdir()
    np.zeros(10, np.uint16).tofile(lone / "train_000000.bin")
    with pytest.raises(DataError, match=r"has token shards \(train_000000.bin\) but no meta"):
        TokenShards.open(lone)
    with pytest.raises(DataError, match="no such folder"):
        TokenShards.open(tmp_path / "nowhere")
    shards = TokenShards.open(prepared)
    longest = max(len(s) for s in shards.shards["val"])
    with pytest.raises(DataError, match=f"block_size={longest} needs windows of {longest + 1}"
                                        f" tokens, but the longest val shard of .* holds"
                                        f" {longest}"):
        shards.windows("val", 2, longest, np.random.default_rng(0))
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in prepared.iterdir():
        if p.is_file():
            (copy / p.name).write_bytes(p.read_bytes())
    with open(copy / "train_000000.bin", "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(DataError, match="train_000000.bin has .* bytes, but meta.json says"):
        TokenShards.open(copy)
    for e in (DataError,):
        assert "\n" not in str(e)


def test_inputs_jsonl_csv_parquet_and_lines(tmp_path):
    rows = [{"body": prose(i), "n": i} for i in range(3)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    import csv

    with open(tmp_path / "b.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["n", "body"])
        w.writeheader()
        w.writerows(rows)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (n INT, body VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(r["n"], r["body"]) for r in rows])
    con.execute(f"COPY t TO '{tmp_path / 'c.parquet'}' (FORMAT parquet)")
    (tmp_path / "d.txt").write_text("first line\n\n second line \n")
    from rlrun.prepare.inputs import find_sources, read_documents

    sources = find_sources([str(tmp_path)], ".jsonl,.csv,parquet")
    assert [Path(s.path).name for s in sources] == ["a.jsonl", "b.csv", "c.parquet"]
    for s in sources:
        assert read_documents(s, False, "body") == [(i + 1, prose(i)) for i in range(3)]
    (d,) = find_sources([str(tmp_path / "*.txt")], "")
    assert read_documents(d, True, "text") == [(1, "first line"), (3, " second line ")]
    assert read_documents(d, False, "text") == [(0, "first line\n\n second line \n")]


def test_workers_give_the_same_corpus(corpus, prepared, tmp_path):
    out = tmp_path / "out"
    pipeline.prepare([str(corpus)], Settings(out=str(out), vocab_size=300, workers=2,
                                             progress=False), echo=lambda s: None)
    for name in ("train_000000.bin", "val_000000.bin", "tokenizer.json", "stages.parquet"):
        assert (out / name).read_bytes() == (prepared / name).read_bytes(), name


def test_default_corpus_is_the_stdlib():
    from rlrun.prepare.inputs import TOPICS, default_sources

    sources = default_sources()
    names = [Path(s.path).name for s in sources]
    assert sources[-1].path == TOPICS and "os.py" in names and "__init__.py" in names
    assert not any("/test/" in s.path or "site-packages" in s.path for s in sources)


@pytest.mark.slow
def test_the_default_corpus(tmp_path, capsys):
    out = tmp_path / "stdlib"
    code, said, err = run([f"out={out}", "vocab_size=4096", "workers=2"], capsys)
    assert code == 0, err
    meta = json.loads((out / "meta.json").read_text())
    fates = meta["documents"]["fates"]
    assert fates["exact_dup"] >= 2 and fates["near_dup"] >= 10, fates  # encodings/cp*.py
    assert fates["kept"] > 0.6 * meta["documents"]["in"]
    shards = TokenShards.open(out)
    val = _documents(shards, "val")
    assert shards.bytes_of(np.concatenate(val)) == meta["splits"]["val"]["bytes"]
    assert meta["splits"]["train"]["tokens"] > 2_000_000 and meta["token_bytes_exact"]
    code, said, _ = run([f"out={out}", "vocab_size=4096"], capsys)
    assert code == 0 and "up to date" in said


# --- docs/prepare.md: every command, the SQL and the Python shown run here ---------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "prepare.md"


def doc_blocks(lang: str) -> list[str]:
    """The code blocks of docs/prepare.md fenced as ```lang (lang "" for plain ones)."""
    blocks, current, fence = [], None, ""
    for line in DOC.read_text().splitlines():
        text = line.strip()
        if current is None and text.startswith("```"):
            current, fence = [], text[3:].strip()
        elif current is not None and text == "```":
            if fence == lang:
                blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return [textwrap.dedent(b) for b in blocks]


def doc_commands() -> list[str]:
    return [line.strip() for block in doc_blocks("") for line in block.splitlines()
            if line.strip().startswith("rlrun-prepare ")]


def test_docs_commands_sql_and_python_run(tmp_path, capsys, monkeypatch):
    """On a small slice of the default corpus (the slow test runs all of it)."""
    import shlex

    from rlrun.prepare import inputs

    full = inputs.default_sources()  # the 60 smallest stdlib modules of at least 3 KB
    small = sorted((s for s in full[:-1] if os.path.getsize(s.path) >= 3000),
                   key=lambda s: os.path.getsize(s.path))[:60]
    monkeypatch.setattr(inputs, "default_sources", lambda: small)
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "notes", extra_docs(20))
    (tmp_path / "posts").mkdir()
    for k in range(2):
        (tmp_path / "posts" / f"{k}.jsonl").write_text("".join(
            json.dumps({"body": prose(200 + 10 * k + i), "id": i}) + "\n" for i in range(10)))
    commands = doc_commands()
    assert len(commands) >= 6 and "rlrun-prepare out=data/stdlib" in commands
    for command in commands:
        code, _, err = run(shlex.split(command, comments=True)[1:], capsys)
        assert code == 0, (command, err)
    (query,) = doc_blocks("sql")
    rows = duckdb.sql(query).fetchall()
    n_in = json.loads(Path("data/stdlib/meta.json").read_text())["documents"]["in"]
    assert "kept" in [r[0] for r in rows] and sum(r[1] for r in rows) == n_in
    (code,) = doc_blocks("python")
    exec(compile(code, str(DOC), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("(8, 65) '") and 0 < float(printed[1]) < 10


def _console(args: list[str], cwd: Path, **kw):
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[1] / "src")  # this checkout's code
    env = {**os.environ, "PYTHONPATH": src, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "rlrun.prepare.cli", *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)


def test_console_script_one_line_exit_2(tmp_path):
    proc = _console([str(tmp_path / "nope"), "out=x"], tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err == f"rlrun-prepare: error: no input found:" \
        f" {tmp_path / 'nope'} (no such file or folder)\n", err


@pytest.mark.slow
def test_a_real_ctrl_c_leaves_out_as_it_was(tmp_path):
    """SIGINT to the whole process group (as a terminal's Ctrl-C) mid-run, with 2 workers."""
    import signal
    import time

    from rlrun.prepare.pipeline import TMP_PREFIX

    proc = _console(["out=out", "workers=2", "progress=false"], tmp_path,
                    start_new_session=True)
    # signal once the build has begun (its staging dir exists), plus a moment for the
    # workers: a fixed sleep raced the whole run on an idle machine (done in under 8 s)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "out").glob(f"{TMP_PREFIX}*")) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "rlrun-prepare: interrupted; out is as it was\n"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".rlrun.lock"]
