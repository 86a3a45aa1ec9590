"""The columns Evidently tests, besides the text itself.

Descriptors of the text (computed by Evidently when it builds its datasets):
- `length_chars`: Evidently's `TextLength`;
- `length_words`: Evidently's `WordCount` (words of ASCII letters, as Evidently counts them);
- `oov_percent`: the share (%) of the text's tokens that the **run's own vocabulary** lacks:
  for the classifier, its tokenizer's tokens missing from `vocab.json` (the tokens it reads
  as `<unk>`); for the LM, characters missing from its corpus's character set. Not
  Evidently's `OOVWordsPercentage`, which checks an English dictionary (NLTK's, downloaded);
  it is an Evidently `CustomColumnDescriptor`;
- `non_letter_percent`: Evidently's `NonLetterCharacterPercentage` (characters that are
  neither letters nor spaces, %).

The model's columns (computed here, by the run's model):
- classifier: `prediction` (the predicted label) and `confidence` (its softmax
  probability), batched as the run's own evaluation (`algo.eval_batch_size`);
- LM: `perplexity`, exp of the mean next-character cross-entropy over the document's first
  `PERPLEXITY_WINDOWS` windows of `network.block_size` characters (context restarts at each
  window; characters outside the model's vocabulary are skipped, and counted by
  `oov_percent`). A document with fewer than two known characters has none (NaN, which
  Evidently leaves out).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

TEXT = "text"
DESCRIPTORS = ("length_chars", "length_words", "oov_percent", "non_letter_percent")
PERPLEXITY_WINDOWS = 8


def oov_percent_of(mode: str, clf: Any = None, chars: set[str] | None = None
                   ) -> Callable[[str], float]:
    """text -> the share (%) of its tokens outside the run's vocabulary (NaN: no token)."""
    if mode == "labels":
        from rlrun.data.text_classification import tokens

        stoi, kind = clf.stoi, clf.kind

        def oov(text: str) -> float:
            toks = tokens(text, kind)
            return 100.0 * sum(t not in stoi for t in toks) / len(toks) if toks else math.nan
    else:
        known = chars or set()

        def oov(text: str) -> float:
            return 100.0 * sum(c not in known for c in text) / len(text) if text else math.nan
    return oov


def descriptors(oov: Callable[[str], float]) -> list[Any]:
    """Evidently's descriptors of the text column, named as in DESCRIPTORS."""
    import pandas as pd
    from evidently.core.datasets import DatasetColumn
    from evidently.descriptors import (
        CustomColumnDescriptor,
        NonLetterCharacterPercentage,
        TextLength,
        WordCount,
    )
    from evidently.legacy.core import ColumnType

    def oov_percent(column: DatasetColumn) -> DatasetColumn:
        values = [oov(str(t)) for t in column.data]
        return DatasetColumn(type=ColumnType.Numerical,
                             data=pd.Series(values, index=column.data.index, dtype=float))

    length_chars, length_words, oov_name, non_letter = DESCRIPTORS
    return [TextLength(TEXT, alias=length_chars), WordCount(TEXT, alias=length_words),
            CustomColumnDescriptor(TEXT, oov_percent, alias=oov_name),
            NonLetterCharacterPercentage(TEXT, alias=non_letter)]


def classifier_columns(clf: Any, texts: list[str], batch_size: int) -> dict[str, list]:
    """`prediction` and `confidence` (max softmax) of a `SavedClassifier` on `texts`."""
    probs = clf.probabilities(texts, batch_size)
    conf, idx = probs.max(-1)
    return {"prediction": [clf.labels[i] for i in idx.tolist()], "confidence": conf.tolist()}


def perplexities(model: Any, stoi: dict[str, int], block_size: int, texts: list[str],
                 windows: int = PERPLEXITY_WINDOWS, batch: int = 64) -> list[float]:
    """Per-document perplexity of a causal LM (see the module's docstring)."""
    import torch
    import torch.nn.functional as F

    rows, owner = [], []
    for i, text in enumerate(texts):
        ids = [stoi[c] for c in text if c in stoi][:windows * block_size + 1]
        for s in range(0, len(ids) - 1, block_size):
            rows.append(ids[s:s + block_size + 1])
            owner.append(i)
    nll = torch.zeros(len(texts), dtype=torch.float64)
    count = torch.zeros(len(texts), dtype=torch.float64)
    model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        for b in range(0, len(rows), batch):
            chunk = rows[b:b + batch]
            lens = torch.tensor([len(w) for w in chunk])
            x = torch.zeros(len(chunk), int(lens.max()), dtype=torch.long)
            for j, w in enumerate(chunk):
                x[j, :len(w)] = torch.tensor(w)
            logits, _ = model(x[:, :-1].to(dev))  # causal: the padding after a window is unseen
            ce = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten().to(dev),
                                 reduction="none").view(len(chunk), -1).double().cpu()
            valid = torch.arange(ce.shape[1]) < (lens - 1)[:, None]
            who = torch.tensor(owner[b:b + batch])
            nll.index_add_(0, who, (ce * valid).sum(1))
            count.index_add_(0, who, (lens - 1).double())
    return [math.exp(n / c) if c else math.nan
            for n, c in zip(nll.tolist(), count.tolist(), strict=True)]
