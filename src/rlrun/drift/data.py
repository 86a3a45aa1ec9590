"""The documents of both sides of a drift check, read through the run's own readers.

- `current=PATH` (and `reference=PATH`): any format the run's env reads
  (`rlrun.data.text_classification.read_documents`): CSV or JSONL with a text column and an
  optional label column, a folder in the aclImdb layout, or a text file of one document a
  line.
- The default reference is the run's own **training split**, re-read with the run's saved env
  config: for the classifier `load_splits(env)[0]` (the same deduplicated, hash-split texts it
  trained on, `env.limit` included); for the LM, the training part of its corpus
  (`CharCorpus(env).train`), cut into documents at blank lines (paragraphs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass
class Documents:
    texts: list[str]
    labels: list[str] | None  # true labels, where the data has them (all or none)
    source: str  # where they came from, for the summary

    def __len__(self) -> int:
        return len(self.texts)


def read_side(path: str, key: str, text_column: str, label_column: str) -> Documents:
    """The documents of `key=path` (current= or reference=)."""
    from rlrun.data.text_classification import read_documents

    rows = read_documents(path, text_column, label_column, key)
    labels = [lab for _, lab in rows]
    if any(lab is None for lab in labels):
        labels = None
    return Documents([t for t, _ in rows], labels, path)


def training_split(env: Any, mode: str, block_size: int = 0, corpus: Any = None) -> Documents:
    """The run's training split, read with its saved env config (the LM's from `corpus`, a
    `CharCorpus` of it, when one is at hand)."""
    if mode == "labels":
        from rlrun.data.text_classification import load_splits

        train = load_splits(env)[0]
        return Documents([t for t, _ in train], [lab for _, lab in train],
                         "the run's training split")
    if corpus is None:
        from rlrun.data.text import CharCorpus

        corpus = CharCorpus(env, block_size)
    text = corpus.decode(corpus.train.tolist())
    docs = [d.strip() for d in re.split(r"\n\s*\n", text) if d.strip()]
    return Documents(docs, None, "the run's training split (paragraphs)")
