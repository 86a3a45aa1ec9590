"""rlrun-prepare's throughput per stage, in MB/s of input (docs/prepare.md#speed).

On the default corpus (the stdlib's source and docs), and on that corpus repeated `--repeat`
times as files in a temp dir (every copy after the first an exact duplicate, so the stages
after exact dedup see one copy): each stage's own function timed on its real input, then
the whole `rlrun-prepare` run, then the ceiling: `tokenizers`' raw `encode_batch` on the
same kept text with the same tokenizer (what the encode stage adds to it is the shard
writing), alternated with the encode stage over `--rounds` rounds (medians shown). MB/s is
of the *input* (what a user feeds in); the stages after dedup also show the MB they
processed.

    python scripts/bench_prepare.py --repeat 20

The machine may be shared: run it when idle, or read the figures as noisy.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from rlrun.prepare import exact, filters, neardup, pipeline, split
from rlrun.prepare.inputs import default_sources, find_sources, read_documents
from rlrun.prepare.normalize import normalize
from rlrun.prepare.settings import Settings


def make_repeated(folder: Path, repeat: int) -> list[str]:
    """The default corpus as one file per document, `repeat` times over."""
    docs = [t for s in default_sources() for _, t in read_documents(s, False, "")]
    for r in range(repeat):
        d = folder / f"copy_{r:02d}"
        d.mkdir(parents=True)
        for k, text in enumerate(docs):
            (d / f"{k:05d}.txt").write_text(text)
    return [str(folder)]


def stage_times(inputs: list[str], s: Settings,
                rounds: int) -> tuple[float, list[tuple[str, float, float]]]:
    """(input MB, [(stage, seconds, MB the stage processed)]), each stage on its own input."""
    rows = []
    t = time.perf_counter()
    sources = find_sources(inputs, ".txt")
    raw = [text for src in sources for _, text in read_documents(src, False, "text")]
    mb_in = sum(len(x.encode()) for x in raw) / 1e6
    rows.append(("read", time.perf_counter() - t, mb_in))
    t = time.perf_counter()
    texts = [normalize(x) for x in raw]
    rows.append(("normalise (NFC, whitespace)", time.perf_counter() - t, mb_in))
    t = time.perf_counter()
    hashes = [exact.text_hash(x) for x in texts]
    dup = exact.exact_duplicates(hashes, [bool(x.strip()) for x in texts])
    rows.append(("exact dedup (hash, first kept)", time.perf_counter() - t, mb_in))
    alive = [d is None and bool(x.strip()) for d, x in zip(dup, texts, strict=True)]
    t = time.perf_counter()
    sets = [neardup.shingles(x, s.ngram) for x in texts]
    sigs = neardup.signatures(sets, s.num_perm, s.minhash_seed)
    rows.append(("MinHash signatures (5-grams, rensa)", time.perf_counter() - t, mb_in))
    t = time.perf_counter()
    alive = [a and len(sh) > 0 for a, sh in zip(alive, sets, strict=True)]
    near, _ = neardup.near_duplicates(sigs, alive, sets.__getitem__, s.bands, s.rows,
                                      s.threshold)
    unique_mb = sum(len(x.encode()) for x, a in zip(texts, alive, strict=True) if a) / 1e6
    rows.append(("LSH + exact Jaccard check", time.perf_counter() - t, unique_mb))
    alive = [a and n is None for a, n in zip(alive, near, strict=True)]
    t = time.perf_counter()  # every document is scored (stages.parquet has every score)
    scores = [filters.scores(x) for x in texts]
    kept = [i for i, a in enumerate(alive) if a and not filters.failed_rule(scores[i], s)]
    rows.append(("quality filters (scores)", time.perf_counter() - t, mb_in))
    t = time.perf_counter()
    train = [i for i in kept if split.split_of(hashes[i], s.val_fraction) == "train"]
    rows.append(("split", time.perf_counter() - t, mb_in))
    kept_mb = sum(len(texts[i].encode()) for i in kept) / 1e6
    from rlrun.prepare.tokenizer import train_bpe

    t = time.perf_counter()
    tok = train_bpe(lambda: (texts[i] for i in train), len(train), s.vocab_size,
                    s.min_frequency, s.eot, False)
    rows.append((f"BPE training (vocab {s.vocab_size}, train split)", time.perf_counter() - t,
                 sum(len(texts[i].encode()) for i in train) / 1e6))
    from rlrun.prepare.shards import ShardWriter

    kept_texts = [texts[i] for i in kept]

    def encode_and_write() -> None:
        with tempfile.TemporaryDirectory() as d:
            w = ShardWriter(Path(d), "train", tok.dtype, s.shard_tokens, tok.eot_id)
            for batch in pipeline._batches(list(range(len(kept_texts))), kept_texts):
                for ids in tok.encode_batch([kept_texts[i] for i in batch]):
                    w.add(ids)
            w.close()

    timed = {"encode + write shards": encode_and_write,
             "ceiling: tokenizers encode_batch": lambda: tok.tokenizer.encode_batch(
                 kept_texts, add_special_tokens=False),
             "ceiling: tokenizers encode_batch_fast": lambda: tok.tokenizer.encode_batch_fast(
                 kept_texts, add_special_tokens=False)}
    best: dict[str, list[float]] = {k: [] for k in timed}
    for _ in range(rounds):  # alternating, so load from others hits all three alike
        for name, fn in timed.items():
            t = time.perf_counter()
            fn()
            best[name].append(time.perf_counter() - t)
    rows += [(name, statistics.median(v), kept_mb) for name, v in best.items()]
    return mb_in, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of the encoders")
    args = ap.parse_args()
    s = Settings(vocab_size=args.vocab_size, progress=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    try:
        for label, repeat in (("default corpus", 1), (f"repeated {args.repeat}x", args.repeat)):
            inputs = make_repeated(tmp / f"in{repeat}", repeat)
            mb_in, rows = stage_times(inputs, s, args.rounds)
            t = time.perf_counter()
            meta = pipeline.prepare(inputs, Settings(out=str(tmp / f"out{repeat}"),
                                                     vocab_size=args.vocab_size,
                                                     progress=False), echo=lambda m: None)
            whole = time.perf_counter() - t
            print(f"\n{label}: {mb_in:.1f} MB in {meta['documents']['in']} documents,"
                  f" {meta['documents']['kept']} kept")
            print("| stage | seconds | MB/s of input | MB processed |")
            print("|---|---|---|---|")
            for name, sec, mb in rows:
                print(f"| {name} | {sec:.2f} | {mb_in / sec:.1f} | {mb:.1f} |")
            print(f"| whole rlrun-prepare (workers=1) | {whole:.2f} | {mb_in / whole:.1f} |"
                  f" {mb_in:.1f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n(numpy {np.__version__}; the machine may be shared: see docs/prepare.md)")


if __name__ == "__main__":
    main()
