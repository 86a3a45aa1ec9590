"""What `algo=lm` trains on: a character corpus in memory, or token shards on disk, behind
one interface (`open_lm_data`), so the loop does not care which.

- `CharData` (`env=stdlib_docs|text_file`): the character path as it has always been
  (`rlrun.data.text.CharCorpus`): the whole text encoded in memory, batches drawn by a torch
  Generator seeded from the run's stream `batches`.
- `ShardData` (`env=tokens`): `rlrun-prepare` shards mapped with np.memmap
  (`rlrun.data.tokens.TokenShards`), random windows of `block_size + 1` tokens drawn by the
  NumPy Generator `ctx.rng("batches")`; the vocabulary size comes from meta.json, and
  prompts and samples go through the saved tokenizer.

Both give the loop the same things: `batch(n)` (inputs and next-token targets),
`eval_batches(...)` (fixed validation windows), `token_bytes` (the bytes of original text
each id stands for, for `eval/val_bpb`), `encode`/`decode`, `vocabulary()` (what each id
means: `algo.init_from` compares it with another run's) and `save(run_dir)`, which writes
the tokenizer into the run dir (`tokenizer.json` for shards, `vocab.json` for characters),
so rlrun-eval and a later `algo.init_from` read it from there, without the training data.
Under torchrun each rank holds its own batch stream (the rank is in the stream's spawn key);
the loop declares it with `ctx.track_per_rank(batches=data.rng)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlrun.core.checkpoint import atomic_write_bytes
from rlrun.data.text import CharCorpus, eval_batches, random_batch
from rlrun.data.tokens import (
    CHAR_VOCAB_FILE,
    TOKENIZER_FILE,
    TokenShards,
    Vocabulary,
    char_token_bytes,
)
from rlrun.schemas.data import TokensConfig


class CharData:
    """The in-memory character corpus (`CharCorpus`) and its torch batch generator."""

    kind = "char"

    def __init__(self, env: Any, block: int, seed: int):
        self.corpus = CharCorpus(env, block)
        self.block = block
        self.rng = torch.Generator().manual_seed(seed)
        self.token_bytes = char_token_bytes(self.corpus.chars)

    @property
    def vocab_size(self) -> int:
        return self.corpus.vocab_size

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return random_batch(self.corpus.train, n, self.block, self.rng)

    def eval_batches(self, n: int, batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return eval_batches(self.corpus.val, n, self.block, batches)

    def encode(self, text: str) -> list[int]:
        return self.corpus.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.corpus.decode(ids)

    def unknown(self, text: str) -> str:
        """The characters of `text` the corpus lacks (sorted, once each)."""
        return "".join(sorted(set(text) - set(self.corpus.stoi)))

    def unigram_entropy(self) -> float:
        return self.corpus.unigram_entropy()

    def describe(self) -> str:
        return repr("".join(self.corpus.chars))

    def vocabulary(self) -> Vocabulary:
        return Vocabulary.of_chars(self.corpus.chars, "the characters of its text")

    def save(self, run_dir: Path) -> None:
        atomic_write_bytes(Path(run_dir) / CHAR_VOCAB_FILE, json.dumps(
            {"tokenizer": "char", "tokens": self.corpus.chars}).encode())


class ShardData:
    """Token shards of rlrun-prepare, memory-mapped, and a NumPy batch generator."""

    kind = "tokens"

    def __init__(self, env: TokensConfig, block: int, rng: np.random.Generator):
        self.shards = TokenShards.open(str(env.path))
        self.shards.check_fits(block)
        self.block, self.rng = block, rng
        self.token_bytes = self.shards.token_bytes

    @property
    def vocab_size(self) -> int:
        return self.shards.vocab_size

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.from_numpy(self.shards.windows("train", n, self.block, self.rng))
        return w[:, :-1], w[:, 1:]

    def eval_batches(self, n: int, batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        w = torch.from_numpy(self.shards.eval_windows("val", n * batches, self.block))
        return [(w[i:i + n, :-1], w[i:i + n, 1:]) for i in range(0, n * batches, n)]

    def encode(self, text: str) -> list[int]:
        return self.shards.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.shards.decode(ids)

    def unknown(self, text: str) -> str:
        """Nothing: a byte-level tokenizer encodes every text."""
        return ""

    def unigram_entropy(self) -> float:
        """Cross-entropy (nats/token) of the validation tokens under the training tokens'
        frequencies (add-one smoothed): what a model that ignores context achieves."""
        v = self.vocab_size
        train = sum(np.bincount(np.asarray(s), minlength=v) for s in self.shards.shards["train"])
        val = sum(np.bincount(np.asarray(s), minlength=v) for s in self.shards.shards["val"])
        logp = np.log((train + 1) / (train.sum() + v))
        return float(-(val * logp).sum() / val.sum())

    def describe(self) -> str:
        meta = self.shards.meta
        return (f"{self.vocab_size} tokens ({self.shards.path / TOKENIZER_FILE});"
                f" train {meta['splits']['train']['tokens']:,} tokens,"
                f" val {meta['splits']['val']['tokens']:,} tokens")

    def vocabulary(self) -> Vocabulary:
        return self.shards.vocabulary()

    def save(self, run_dir: Path) -> None:
        """A copy of the shards' tokenizer.json (written atomically)."""
        src = self.shards.path / TOKENIZER_FILE
        atomic_write_bytes(Path(run_dir) / TOKENIZER_FILE, src.read_bytes())


def open_lm_data(ctx: Any, block: int) -> CharData | ShardData:
    """The data of `ctx.env`: shards for `env=tokens`, else the character corpus. The batch
    stream is the run's named stream `batches` (per rank)."""
    if isinstance(ctx.env, TokensConfig):
        return ShardData(ctx.env, block, ctx.rng("batches"))
    return CharData(ctx.env, block, ctx.seed_of("batches"))


def saved_text_codec(run_dir: Path, env: Any, block: int) -> tuple[Any, Any, int, Any]:
    """(encode, decode, vocab_size, unknown) of a finished run, for rlrun-eval: shard runs
    read the tokenizer.json saved in the run dir (no training data needed); character runs
    rebuild their corpus as they always have. `unknown(prompt)` names characters a character
    model never saw ('' when all are known; a byte-level tokenizer knows every text)."""
    if isinstance(env, TokensConfig):
        from rlrun.core.errors import CheckpointError
        from rlrun.data.tokens import load_tokenizer

        path = Path(run_dir) / TOKENIZER_FILE
        if not path.is_file():
            raise CheckpointError(f"{run_dir}: no {TOKENIZER_FILE}; the run did not save its"
                                  " tokenizer (it stopped before its first step)")
        tok = load_tokenizer(path)
        return (lambda t: tok.encode(t, add_special_tokens=False).ids,
                lambda ids: tok.decode([int(i) for i in ids], skip_special_tokens=False),
                int(tok.get_vocab_size(with_added_tokens=True)), lambda t: "")
    corpus = CharCorpus(env, block)
    return (corpus.encode, corpus.decode, corpus.vocab_size,
            lambda t: "".join(sorted(set(t) - set(corpus.stoi))))
