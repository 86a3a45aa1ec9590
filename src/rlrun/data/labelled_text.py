"""The text classifier's labelled documents as one character corpus for the LM.

Each document of a labelled data set (`rlrun.data.text_classification`: the offline
standard-library docstrings, an IMDB folder, a CSV/JSONL file) becomes its label as a header
line, then its text (`env=labelled_docstrings`, `rlrun.schemas.data.LabelledTextConfig`, reads
them through `rlrun.data.text.load_text`):

    [json]
    Decode a JSON document from s ...

A character LM trained on this learns p(text | header) and, from the text that follows any
newline, something close to p(text): the two branches that classifier-free guidance for
language models combines (Sanchez et al. 2023). Prompted with a bare header (`header(label)`),
`rlrun.nets.decode.generate(..., guidance_scale=gamma)` then guides from it, the unconditional
branch being the header's last character, the newline, alone.

Documents are those of the classifier's split (`load_splits`: deduplicated, by hash), so a
classifier run on the same `env` never sees in its validation or test split a text the LM was
trained on. They are ordered by the same hash of their text, not by source: the classes are
interleaved, so every window of the LM's own train/validation split mixes them and the header,
not the document before it, is what tells the class. A blank line separates documents.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlrun.core.errors import ConfigError, DataError
from rlrun.data.text_classification import _bucket, load_splits
from rlrun.schemas.data import LABELLED_SPLITS as SPLITS
from rlrun.schemas.data import LabelledSourceConfig


def header(label: str) -> str:
    """The header line a document of class `label` starts with (and the prompt that asks
    the LM for one): `[label]` and a newline."""
    return f"[{label}]\n"


def labelled_corpus(cfg: LabelledSourceConfig, splits: Sequence[str] = ("train",)) -> str:
    """The documents of `splits` of the labelled data set `cfg`, each as `header(label)` +
    its text (stripped) + a newline, separated by blank lines, in hash order (module
    docstring). What `rlrun.data.text.CharCorpus(..., text=...)` reads."""
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ConfigError(f"splits={list(splits)}: name one or more of {', '.join(SPLITS)}")
    parts = dict(zip(SPLITS, load_splits(cfg), strict=True))
    rows = [row for name in dict.fromkeys(splits) for row in parts[name]]
    where = cfg.path or "the standard-library docstrings"
    for _, label in rows:
        if "\n" in label or "\r" in label:
            raise DataError(f"{where}: the label {label!r} holds a line break, which a header"
                            " line cannot; relabel it")
    rows.sort(key=lambda row: _bucket(row[0]))
    docs = [header(label) + text.strip() + "\n" for text, label in rows if text.strip()]
    if not docs:
        raise DataError(f"{where}: the {'/'.join(splits)} split holds no text")
    return "\n".join(docs)
