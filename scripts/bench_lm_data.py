"""Training throughput of `algo=lm` on token shards against the in-memory character path, at
equal tokens per step (docs/lm.md#your-own-data).

    python scripts/bench_lm_data.py                  # threads=1, the default network
    python scripts/bench_lm_data.py --rounds 9 --steps 20

Three data paths feed the same training step (the default `network=transformer`, AdamW,
batches of 32 windows of 64 tokens):

- `chars in memory`: `env=stdlib_docs`, the character path (`CharCorpus`: the text encoded
  into a tensor, windows gathered with torch indexing);
- `char shards`: the same documentation topics prepared by rlrun-prepare with
  `tokenizer=char` and read through np.memmap (`ShardData`): the same model size up to the
  end-of-text token, so the ratio to the first is the cost of the data path itself;
- `BPE shards`: the same text as byte-level BPE of `--vocab` tokens: the same tokens per step,
  each standing for more text, through a bigger output layer.

Each round times `--steps` whole training steps (draw a batch, forward, backward, AdamW) of
each path in turn (A, B, C, A, B, C...), so load from other processes on a shared machine
hits all of them alike; the table has the medians and the ratios to the in-memory path, and
the time of the batch draw alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rlrun.algos.lm import make_optimizer
from rlrun.data.lm_data import CharData, ShardData
from rlrun.nets.transformer import Transformer
from rlrun.schemas.data import TextConfig, TokensConfig
from rlrun.schemas.lm import LMConfig


def prepare(root: Path, vocab: int) -> dict[str, Path]:
    """The documentation topics as one file per topic, prepared as characters and as BPE."""
    from rlrun.prepare import inputs, pipeline
    from rlrun.prepare.settings import Settings

    txt = root / "docs_txt"
    if not txt.is_dir():
        txt.mkdir(parents=True)
        for k, text in inputs.topics_documents():
            (txt / f"{k}.txt").write_text(text, encoding="utf-8")
    out = {}
    for name, tok in (("char", "char"), (f"bpe{vocab}", "bpe")):
        out[name] = root / name
        pipeline.prepare([str(txt)], Settings(out=str(out[name]), tokenizer=tok,
                                              vocab_size=vocab, min_words=None,
                                              progress=False), echo=print)
    return out


def step_fn(data, batch: int):
    model = Transformer(data.vocab_size, block_size=64)
    opt = make_optimizer(model, LMConfig(name="lm", loop="rlrun.algos.lm.run"))

    def step() -> None:
        x, y = data.batch(batch)
        logits, aux = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten()) + aux.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("runs/bench_lm_data"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10, help="training steps per round and path")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dirs = prepare(args.root, args.vocab)
    paths = {
        "chars in memory": CharData(TextConfig(name="stdlib_docs", kind="text"), 64, 0),
        "char shards": ShardData(TokensConfig(path=str(dirs["char"])), 64,
                                 np.random.default_rng(0)),
        f"BPE-{args.vocab} shards": ShardData(TokensConfig(path=str(dirs[f"bpe{args.vocab}"])),
                                              64, np.random.default_rng(0)),
    }
    steps = {name: step_fn(d, args.batch) for name, d in paths.items()}
    for s in steps.values():  # warm up: first-call allocations, page-ins of the shards
        s()
    times: dict[str, list[float]] = {n: [] for n in paths}
    draws: dict[str, list[float]] = {n: [] for n in paths}
    for _ in range(args.rounds):
        for name, s in steps.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                s()
            times[name].append((time.perf_counter() - t) / args.steps)
            t = time.perf_counter()
            for _ in range(100):
                paths[name].batch(args.batch)
            draws[name].append((time.perf_counter() - t) / 100)
    base = statistics.median(times["chars in memory"])
    tokens = args.batch * 64
    print(f"\nbatches of {args.batch} x 64 tokens, threads={args.threads}, median of"
          f" {args.rounds} rounds of {args.steps} steps (alternating)\n")
    print("| data | vocab | bytes/token | training tokens/s | vs in memory | batch draw |")
    print("|---|---|---|---|---|---|")
    for name, d in paths.items():
        med = statistics.median(times[name])
        bpt = (d.shards.meta["splits"]["train"]["bytes"] / d.shards.meta["splits"]["train"][
            "tokens"]) if isinstance(d, ShardData) else float(np.mean(d.token_bytes[
                d.corpus.train.numpy()]))
        print(f"| {name} | {d.vocab_size} | {bpt:.2f} | {tokens / med:,.0f} |"
              f" {base / med:.2f}x | {1e6 * statistics.median(draws[name]):.0f} us |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
