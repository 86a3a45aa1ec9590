"""Stage 6: the tokenizer, saved as `tokenizer.json` (Hugging Face `tokenizers`).

- `tokenizer=bpe`: byte-level BPE (GPT-2's scheme: every byte is a token to start with, so
  any text encodes and decodes back exactly), trained on the train split only, with the
  end-of-text token as its only special token (id 0).
- `tokenizer=char`: one token per character: the end-of-text token (id 0), then every
  character of the kept documents of both splits, sorted, as the existing character-level
  path (`env=stdlib_docs`) builds its vocabulary. It is stored as a BPE without merges, so
  one loader reads both; the corpus itself is encoded through a lookup table (`tokenizers`
  runs a merge-free BPE at about 0.5 MB/s, the table at tens of MB/s, with the same ids).
- `tokenizer=PATH`: an existing `tokenizer.json`, which must hold the `eot=` token.

In every case a document that contains the end-of-text token's text is encoded as plain
text (`encode_special_tokens`), so only the separator written between documents is the
token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.core.errors import DataError


class CorpusTokenizer:
    """A `tokenizers.Tokenizer` plus how the corpus is encoded with it."""

    def __init__(self, tokenizer: Any, kind: str, eot: str, chars: list[str] | None = None):
        self.tokenizer, self.kind, self.eot = tokenizer, kind, eot
        self.tokenizer.encode_special_tokens = True
        eot_id = tokenizer.token_to_id(eot)
        if eot_id is None:
            raise DataError(f"the tokenizer has no {eot} token: name its end-of-text token with"
                            " eot=...")
        self.eot_id = int(eot_id)
        self.vocab_size = int(tokenizer.get_vocab_size(with_added_tokens=True))
        self._lut = None
        if chars is not None:
            cps = np.array([ord(c) for c in chars], dtype=np.int64)
            self._lut = np.full(int(cps.max()) + 1 if len(cps) else 1, -1, dtype=np.int64)
            self._lut[cps] = np.arange(1, len(chars) + 1)

    @property
    def dtype(self) -> str:
        """uint16 while every id fits, else uint32."""
        return "uint16" if self.vocab_size <= 1 << 16 else "uint32"

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """The ids of each text (no end-of-text token added)."""
        if self._lut is not None:
            return [self._encode_chars(t) for t in texts]
        # encode_batch_fast: no character offsets, which shards do not need (about 20% faster)
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        return [np.asarray(e.ids, dtype=np.int64)
                for e in encode(texts, add_special_tokens=False)]

    def _encode_chars(self, text: str) -> np.ndarray:
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        ids = self._lut[np.minimum(cps, len(self._lut) - 1)]
        bad = (cps >= len(self._lut)) | (ids < 0)
        if bad.any():  # the vocabulary is built from these very texts
            raise AssertionError(f"character {chr(int(cps[bad][0]))!r} is not in the vocabulary")
        return ids

    def save(self, path: Path) -> None:
        self.tokenizer.save(str(path))


def train_bpe(texts: Callable[[], Iterator[str]], n_texts: int, vocab_size: int,
              min_frequency: int, eot: str, progress: bool) -> CorpusTokenizer:
    """Byte-level BPE trained on `texts()` (the train split)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[eot],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=progress)
    tok.train_from_iterator(texts(), trainer, length=n_texts)
    return CorpusTokenizer(tok, "bpe", eot)


def build_char(texts: Iterable[str], eot: str) -> CorpusTokenizer:
    """One token per character of `texts`, after the end-of-text token."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    chars: set[str] = set()
    for t in texts:
        chars.update(t)
    ordered = sorted(chars)
    vocab = {eot: 0, **{c: i for i, c in enumerate(ordered, 1)}}
    if len(vocab) != len(ordered) + 1:  # the corpus is one character long and it is eot
        raise DataError(f"eot={eot!r} is a character of the corpus; pick another eot=")
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([AddedToken(eot, special=True)])
    return CorpusTokenizer(tok, "char", eot, chars=ordered)


def load_tokenizer_file(path: str, eot: str) -> CorpusTokenizer:
    """A saved `tokenizer.json` (of rlrun-prepare or any `tokenizers` user)."""
    from tokenizers import Tokenizer

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"tokenizer={path}: no such file; give bpe, char or a tokenizer.json")
    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as e:  # tokenizers raises a bare Exception for a malformed file
        detail = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise DataError(f"tokenizer={path} is not a tokenizers JSON file ({detail})") from None
    try:
        return CorpusTokenizer(tok, "file", eot)
    except DataError:
        raise DataError(f"tokenizer={path} has no {eot} token: name its end-of-text token"
                        " with eot=...") from None
