"""Character-level text corpora: the default one ships with every Python install.

`env=stdlib_docs` reads `pydoc_data/topics.py` (the text `help()` shows: ~465k characters of
English prose and code from the Python documentation), so `rlrun algo=lm` works offline.
`env=text_file env.path=...` reads a user's UTF-8 file. The split is deterministic: the text is
cut into blocks of `split_block` characters and every `1/val_fraction`-th block goes to
validation, so both halves sample the whole document rather than train on A-M and validate on
N-Z (a text shorter than 40 blocks gets shorter blocks). The vocabulary is every character
of the whole text, sorted.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import torch

from rlrun.core.errors import DataError
from rlrun.schemas.data import LabelledTextConfig, TextConfig, TextFileConfig


def stdlib_docs_text() -> str:
    """The documentation topics of the running Python (what `help('if')` prints), in key
    order, so the corpus is the same on every run of one Python version."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def load_text(cfg: TextConfig | LabelledTextConfig) -> str:
    """The whole text of the corpus (cut to `max_chars`); a missing, non-UTF-8 or empty file
    is one DataError (preflight calls this through `TextConfig.check`). `env=labelled_docstrings`
    (`LabelledTextConfig`) is the labelled documents, each under its header line."""
    if not cfg.path and isinstance(cfg, TextFileConfig):
        raise DataError("env=text_file needs a file: env.path=/path/to/text.txt")
    if isinstance(cfg, LabelledTextConfig):  # labelled documents under their headers
        from rlrun.data.labelled_text import labelled_corpus

        text = labelled_corpus(cfg, cfg.splits)
    elif cfg.path is None:
        text = stdlib_docs_text()
    else:
        text = read_utf8(cfg.path, "a UTF-8 text file")
        if not text.strip():
            raise DataError(f"env.path={cfg.path} is empty; give a file with some text")
    return text[:cfg.max_chars] if cfg.max_chars else text


class CharCorpus:
    """Encoded train/validation tensors plus the character vocabulary. `text` (e.g.
    `rlrun.data.labelled_text.labelled_corpus`) replaces the text `cfg` names; the split,
    `max_chars` and the checks are the same."""

    def __init__(self, cfg: TextConfig, min_len: int, text: str | None = None):
        given = text is not None
        text = load_text(cfg) if text is None else text[:cfg.max_chars or None]
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        data = torch.tensor([self.stoi[c] for c in text], dtype=torch.long)
        every = max(2, round(1 / cfg.val_fraction))
        # a short text gets shorter blocks: at least 4 of them go to validation
        blocks = data.split(max(1, min(cfg.split_block, len(data) // (4 * every))))
        self.train = torch.cat([b for i, b in enumerate(blocks) if i % every != every - 1])
        val = [b for i, b in enumerate(blocks) if i % every == every - 1]
        self.val = torch.cat(val) if val else data[:0]
        need = min_len + 1
        if len(self.train) < need or len(self.val) < need:
            where = "the given text" if given else cfg.path or "the default corpus"
            raise DataError(
                f"{where}: {len(text)} characters give {len(self.train)} for training and"
                f" {len(self.val)} for validation, but a sequence needs {need}: use a longer"
                " text or a smaller network.block_size / env.split_block")

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def encode(self, text: str) -> list[int]:
        return [self.stoi[c] for c in text if c in self.stoi]

    def unigram_entropy(self) -> float:
        """Cross-entropy (nats/char) of validation text under train character frequencies
        (add-one smoothed): what a model that ignores context achieves."""
        counts = Counter(self.train.tolist())
        total = len(self.train) + self.vocab_size
        logp = {i: math.log((counts.get(i, 0) + 1) / total) for i in range(self.vocab_size)}
        vc = Counter(self.val.tolist())
        return -sum(n * logp[i] for i, n in vc.items()) / len(self.val)


def random_batch(data: torch.Tensor, batch: int, length: int,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` random windows of `length` + their next-character targets."""
    start = torch.randint(0, len(data) - length, (batch,), generator=gen)
    idx = start[:, None] + torch.arange(length + 1)
    w = data[idx]
    return w[:, :-1], w[:, 1:]


def eval_batches(data: torch.Tensor, batch: int, length: int, n_batches: int):
    """Fixed, evenly spaced validation windows: every evaluation scores the same text."""
    n = batch * n_batches
    starts = torch.linspace(0, len(data) - length - 1, n).long()
    idx = starts[:, None] + torch.arange(length + 1)
    w = data[idx]
    return [(w[i:i + batch, :-1], w[i:i + batch, 1:]) for i in range(0, n, batch)]


def read_utf8(path: str, what: str, key: str = "env.path") -> str:
    """The text of the file named by option `key`; a missing, unreadable or non-UTF-8 file
    is one DataError."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise DataError(f"{key}={path} is a directory; give {what}")
    if not p.exists():
        raise DataError(f"{key}={path}: no such file; give {what}")
    if not p.is_file():  # /dev/zero, a FIFO: reading it would not end
        raise DataError(f"{key}={path} is not a regular file; give {what}")
    try:
        return p.read_text(encoding="utf-8")
    except PermissionError:
        raise DataError(f"env.path={path}: permission denied; give {what} you can read"
                        ) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{key}={path} is not UTF-8 text ({e.reason} at byte"
                        f" {e.start}); convert it first, e.g. iconv -t utf-8") from None
