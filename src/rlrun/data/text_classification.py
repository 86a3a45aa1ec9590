"""Labelled text for `algo=text_classifier`: readers, the split, and keras-io tokenisation.

Three sources (`env.source`, set by the env config):
- `stdlib` (`env=stdlib_docstrings`, the offline default): the docstrings of modules, classes
  and functions in the standard-library source files of the running Python, read with `ast`
  (nothing is imported), labelled by the top-level package they document (`env.packages`).
  Test folders are skipped and docstrings shorter than `env.min_chars` dropped.
- `imdb` (`env=imdb env.path=DIR`): the `aclImdb/` layout, `train|test/<label>/*.txt`; every
  label folder of `train/` is a class except `unsup` (IMDB's unlabelled reviews).
- `csv` (`env=text_csv env.path=FILE`): a CSV file, or JSONL when the name ends in `.jsonl`
  or `.json`, with `env.text_column` and `env.label_column`.

The split is deterministic and holds no duplicate across splits: texts are normalised
(lower case, whitespace collapsed), duplicates dropped (the first kept), then each text goes
to test, validation or train by the SHA-1 of its normalised form (`env.test_fraction`,
`env.val_fraction`): the same text always lands in the same split, whatever the order or
the rest of the data. IMDB keeps its own test folder; validation comes out of `train/` by
the same hash, and training texts that also occur in test are dropped.

Tokenisation follows the keras-io example: a vocabulary of the `env.vocab_size` most frequent
tokens of the training split (id 0 pads, id 1 stands for any other token; ties broken
alphabetically), every text cut or padded to `env.max_len` ids. `env.tokenizer=word` splits
lower-cased text into `\\w+` words (IMDB's `<br />` removed first); `char` takes characters.
Unlike keras' `pad_sequences` (which keeps the end and pads in front), the first `max_len`
tokens are kept and padding goes at the end; the classifier's pooling ignores padding.

A classifier that starts from an LM run (`algo.init_from`, `algo.init_from_vocab=same`)
encodes its texts with that run's tokenizer instead (`LabelledText(cfg, source=...)`): the
raw text, not lower-cased, through the run's tokenizer.json (a copy goes into the run dir) or
its characters; the padding id is one past the LM's vocabulary, and there is no unknown id
(a character the LM never saw is left out).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sysconfig
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from rlrun.core.errors import DataError
from rlrun.data.text import read_utf8
from rlrun.data.tokens import TOKENIZER_FILE, RunTokenizer, Vocabulary
from rlrun.schemas.data import STDLIB_PACKAGES, TextClassificationConfig

PAD, OOV = 0, 1


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _bucket(text: str) -> float:
    """A number in [0, 1) fixed by the normalised text: which split it belongs to."""
    return int(hashlib.sha1(normalise(text).encode()).hexdigest()[:8], 16) / 16 ** 8


# ---- readers: lists of (text, label) --------------------------------------------------------
@lru_cache(maxsize=4)
def stdlib_docstrings(packages: tuple[str, ...], min_chars: int) -> list[tuple[str, str]]:
    """(docstring, package) for every module, class and function docstring of the named
    standard-library packages, in file and source order (test folders skipped)."""
    import ast

    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for pkg in packages:
        folder = root / pkg
        if not folder.is_dir():
            raise DataError(f"env.packages: {pkg} is not a standard-library package of this"
                            f" Python ({root}); name others, e.g. {', '.join(STDLIB_PACKAGES)}")
        for f in sorted(folder.rglob("*.py")):
            if {"test", "tests", "idle_test"} & set(f.relative_to(root).parts):
                continue
            try:
                tree = ast.parse(f.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue  # e.g. lib2to3's deliberately broken fixtures
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                     ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc and len(doc) >= min_chars:
                        out.append((doc, pkg))
    return out


def _folder_texts(folder: Path) -> list[tuple[str, str]]:
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "unsup"):
        for f in sorted(sub.glob("*.txt")):
            out.append((f.read_text(encoding="utf-8", errors="replace"), sub.name))
    return out


def read_imdb(path: str | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test) of an `aclImdb/` folder: `train|test/<label>/*.txt`."""
    if not path:
        raise DataError("env=imdb needs the aclImdb folder: env.path=/path/to/aclImdb")
    root = Path(path).expanduser()
    if not root.is_dir():
        what = "is a file" if root.exists() else ": no such folder"
        raise DataError(f"env.path={path}{' ' if root.exists() else ''}{what}; give the aclImdb"
                        " folder (train/ and test/ with one folder of .txt files per label)")
    parts = []
    for split in ("train", "test"):
        texts = _folder_texts(root / split) if (root / split).is_dir() else []
        if not texts:
            raise DataError(f"env.path={path}: {split}/ holds no <label>/*.txt files; expected"
                            " the aclImdb layout train|test/pos|neg/*.txt")
        parts.append(texts)
    return parts[0], parts[1]


def read_table(path: str | None, text_col: str, label_col: str, key: str = "env.path",
               column_keys: tuple[str, str] = ("env.text_column", "env.label_column"),
               label_optional: bool = False) -> list[tuple[str, str | None]]:
    """(text, label) rows of a CSV file, or JSONL (one object per line) by its suffix. `key`
    and `column_keys` name the options in messages; with `label_optional`, a file without
    the label column gives None labels (rlrun-drift's current data)."""
    if not path:
        raise DataError("env=text_csv needs a file: env.path=/path/to/data.csv (or .jsonl)")
    p = Path(path).expanduser()
    raw = read_utf8(path, "a CSV or JSONL file", key)
    if p.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for i, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{key}={path}: line {i} is not JSON ({e.msg})") from None
                if not isinstance(rows[-1], dict):
                    raise DataError(f"{key}={path}: line {i} is not a JSON object")
        columns = sorted({k for r in rows for k in r})
    else:
        # Excel writes a byte-order mark first: it is not part of the first column's name.
        # Fields may be long (whole documents): the csv module's 128 KB default is raised;
        # strict mode reports an unclosed quote instead of swallowing the rest of the file;
        # newline="" as the csv docs ask: a quoted field keeps its line breaks.
        csv.field_size_limit(2**31 - 1)
        reader = csv.DictReader(io.StringIO(raw.removeprefix("\ufeff"), newline=""),
                                strict=True)
        try:
            rows = list(reader)
        except csv.Error as e:
            if "unexpected end of data" in str(e):
                raise DataError(f"env.path={path} ends inside a quoted field: an unclosed"
                                " quote (a \" that starts a field and never ends it)") from None
            raise DataError(f"env.path={path}: line {reader.line_num} is not valid CSV"
                            f" ({e})") from None
        columns = list(reader.fieldnames or [])
    if not rows:
        raise DataError(f"{key}={path} holds no rows")
    labelled = not label_optional or any(label_col in r for r in rows)
    for what, col in zip(column_keys, (text_col, label_col) if labelled else (text_col,),
                         strict=False):
        missing = sum(col not in r or r[col] is None for r in rows)
        if missing:
            raise DataError(f"{what}={col!r}: {missing} of {len(rows)} rows of {path} lack it;"
                            f" its columns are {', '.join(map(str, columns)) or 'none'}")
    return [(str(r[text_col]), str(r[label_col]) if labelled else None) for r in rows]


def read_label_folders(path: str, key: str) -> list[tuple[str, str]]:
    """(text, label) of a folder in the aclImdb split layout, `<label>/*.txt` (an aclImdb
    root, holding train/ and test/, must name one of them)."""
    root = Path(path).expanduser()
    if (root / "train").is_dir() and (root / "test").is_dir():
        raise DataError(f"{key}={path} is an aclImdb root (train/ and test/): name one split,"
                        f" e.g. {key}={root / 'test'}")
    rows = _folder_texts(root)
    if not rows:
        raise DataError(f"{key}={path}: no <label>/*.txt files (the aclImdb layout)")
    return rows


def read_documents(path: str, text_col: str = "text", label_col: str = "label",
                   key: str = "current") -> list[tuple[str, str | None]]:
    """Documents in any format a run's env reads, with their labels where the data has them:
    CSV or JSONL (by suffix) with a text column and an optional label column, a folder in
    the aclImdb layout (the folder names are the labels), or else a UTF-8 text file of one
    document a line. Blank documents are left out."""
    p = Path(path).expanduser()
    if p.is_dir():
        rows: list[tuple[str, str | None]] = list(read_label_folders(path, key))
    elif p.suffix.lower() in (".csv", ".jsonl", ".json"):
        rows = read_table(path, text_col, label_col, key, ("text_column", "label_column"),
                          label_optional=True)
    else:
        rows = [(line, None) for line in read_utf8(path, "a CSV, JSONL or text file, or an"
                                                   " aclImdb-style folder", key).splitlines()]
    rows = [(t, lab) for t, lab in rows if t.strip()]
    if not rows:
        raise DataError(f"{key}={path} holds no documents (every text is blank)")
    return rows


# ---- the split --------------------------------------------------------------------------------
def dedupe(rows: list[tuple[str, str]], drop: set[str] = frozenset()) -> list[tuple[str, str]]:
    """Rows whose normalised text is new (and not in `drop`), first occurrence kept."""
    seen, out = set(drop), []
    for text, label in rows:
        key = normalise(text)
        if key and key not in seen:
            seen.add(key)
            out.append((text, label))
    return out


def split_rows(rows: list[tuple[str, str]], val: float, test: float | None):
    """(train, validation, test) by the hash of each normalised text; `test=None`: no test
    part (IMDB's comes from its own folder)."""
    parts: tuple[list, list, list] = ([], [], [])
    t = test or 0.0
    for row in dedupe(rows):
        b = _bucket(row[0])
        parts[2 if b < t else 1 if b < t + val else 0].append(row)
    return parts


def load_splits(cfg: TextClassificationConfig):
    """(train, validation, test) lists of (text, label), deduplicated across splits."""
    if cfg.source == "imdb":
        train, test = read_imdb(cfg.path)
        test = dedupe(test)
        train, val, _ = split_rows(dedupe(train, {normalise(t) for t, _ in test}),
                                   cfg.val_fraction, None)
    else:
        rows = (read_table(cfg.path, cfg.text_column, cfg.label_column)
                if cfg.source == "csv"
                else stdlib_docstrings(tuple(cfg.packages), cfg.min_chars))
        train, val, test = split_rows(rows, cfg.val_fraction, cfg.test_fraction)
    if cfg.limit:
        train, val, test = train[:cfg.limit], val[:cfg.limit], test[:cfg.limit]
    return train, val, test


def check_splits(train: list[tuple[str, str]], val: list[tuple[str, str]],
                 test: list[tuple[str, str]], where: str) -> list[str]:
    """The sorted labels of training, once the splits are checked to be usable: none empty,
    at least two classes, no validation or test label that training lacks (`where` names the
    data in the DataError). Preflight runs it (`TextClassificationConfig.check`) before a run
    dir exists; `LabelledText` again on what it encodes."""
    for name, part in (("training", train), ("validation", val), ("test", test)):
        if not part:
            raise DataError(f"{where}: the {name} split is empty ({len(train)} training,"
                            f" {len(val)} validation, {len(test)} test texts after"
                            " removing duplicates); give more data")
    labels = sorted({lab for _, lab in train})
    if len(labels) < 2:
        raise DataError(f"{where}: every training text has the label {labels[0]!r};"
                        " a classifier needs at least two classes")
    for name, part in (("validation", val), ("test", test)):
        unseen = sorted({lab for _, lab in part} - set(labels))
        if unseen:
            raise DataError(f"{where}: labels {unseen[:5]} of the {name} split never occur"
                            " in training, so no model can predict them")
    return labels


# ---- tokenisation ----------------------------------------------------------------------------
def tokens(text: str, kind: str) -> list[str]:
    if kind == "char":
        return list(text)
    return re.findall(r"\w+", text.replace("<br />", " ").lower())


def token_spans(text: str, kind: str) -> list[tuple[str, int, int]]:
    """(token, start, end) of each token of `tokens(text, kind)`, in order: where in the
    original text each token the model reads comes from (attributions are shown on it)."""
    if kind == "char":
        return [(ch, i, i + 1) for i, ch in enumerate(text)]
    # `<br />` is blanked with as many spaces, so that the offsets stay those of `text`
    return [(m.group(0).lower(), m.start(), m.end())
            for m in re.finditer(r"\w+", text.replace("<br />", " " * 6))]


def encode(texts: list[str], stoi: dict[str, int], kind: str, max_len: int, pad: int = PAD,
           unknown: int | None = OOV, tokenizer: RunTokenizer | None = None) -> torch.Tensor:
    """Ids (N, max_len): known tokens, `unknown` for the rest (None: left out), cut or padded
    with `pad` at the end; with `tokenizer` (an LM run's), its ids of the raw text."""
    out = torch.full((len(texts), max_len), pad, dtype=torch.long)
    for i, text in enumerate(texts):
        if tokenizer is not None:
            ids = tokenizer.encode(text)[:max_len]
        else:
            ids = [stoi.get(t, unknown) for t in tokens(text, kind)
                   if unknown is not None or t in stoi][:max_len]
        out[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


class LabelledText:
    """The three splits as id tensors (N, max_len) and label tensors, with the vocabulary
    and the label names; `to_json()` is what the run saves as vocab.json."""

    def __init__(self, cfg: TextClassificationConfig, source: RunTokenizer | None = None):
        train, val, test = load_splits(cfg)
        self.labels = check_splits(train, val, test, cfg.path or "the standard-library"
                                   " docstrings")
        self.kind, self.max_len = cfg.tokenizer, cfg.max_len
        self.pad, self.unknown, self.source = PAD, OOV, source
        if source is None:
            counts = Counter(tok for text, _ in train for tok in tokens(text, self.kind))
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:cfg.vocab_size - 2]
            self.vocab = ["<pad>", "<unk>", *(tok for tok, _ in top)]
        else:  # an LM run's tokens, then padding
            self.kind = "char" if source.chars is not None else TOKENIZER_FILE
            self.vocab = [*source.tokens(), "<pad>"]
            self.pad, self.unknown = len(self.vocab) - 1, None
        self.stoi = {tok: i for i, tok in enumerate(self.vocab)}
        self.lab_id = {lab: i for i, lab in enumerate(self.labels)}
        self.splits = {name: self._encode(part)
                       for name, part in (("train", train), ("val", val), ("test", test))}

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Ids (N, max_len): known tokens, OOV for the rest, cut or padded at the end."""
        return encode(texts, self.stoi, self.kind, self.max_len, self.pad, self.unknown,
                      self.source if self.kind == TOKENIZER_FILE else None)

    def vocabulary(self) -> Vocabulary:
        """What each id stands for: its token's UTF-8 bytes; padding and unknown (and
        nothing else) by name, so `algo.init_from_vocab=extend` maps the rest by bytes."""
        if self.source is not None:
            return Vocabulary(self.source.vocabulary().pieces + ("<pad>",), "")
        return Vocabulary(("<pad>", "<unk>", *(t.encode("utf-8") for t in self.vocab[2:])),
                          f"{len(self.vocab)} {self.kind} tokens")

    def _encode(self, rows: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.encode([t for t, _ in rows]),
                torch.tensor([self.lab_id[lab] for _, lab in rows], dtype=torch.long))

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def to_json(self) -> dict:
        return {"tokenizer": self.kind, "max_len": self.max_len, "pad": self.pad,
                "unknown": self.unknown, "labels": self.labels, "tokens": self.vocab}


def classify(run_dir: str | Path, texts: list[str]) -> list[str]:
    """Label new texts with a finished (or interrupted) `algo=text_classifier` run: its
    vocab.json, .hydra/config.yaml and checkpoints/last.pt. The config may only name code
    that rlrun's own configs name (`rlrun.core.trust`), as for `resume=`."""
    from omegaconf import OmegaConf

    from rlrun.core import state as tracked_state
    from rlrun.core.checkpoint import load_checkpoint
    from rlrun.core.trust import check_references
    from rlrun.schemas import register_all

    run = Path(run_dir)
    for need in (".hydra/config.yaml", "checkpoints/last.pt"):
        if not (run / need).is_file():
            raise DataError(f"{run_dir}: no {need}; give the dir of an algo=text_classifier run")
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    register_all()  # the schemas a saved config names are trusted once registered
    check_references(OmegaConf.to_container(cfg, resolve=False), str(run_dir))
    model, predict = saved_classifier(run, cfg.network, cfg.algo)
    tracked_state.load(model, load_checkpoint(run / "checkpoints" / "last.pt")["loop"]["model"])
    return predict(texts)


class SavedClassifier:
    """A run's classifier with its vocab.json. Called with texts it returns their labels (what
    rlrun-eval's `load_text_classifier` hook returns); `probabilities` gives the softmax, and
    the tokenizer is open to tools that look inside (rlrun-drift, `rlrun.explain`)."""

    def __init__(self, model: torch.nn.Module, vocab: dict[str, Any], pad: int = PAD,
                 unknown: int | None = OOV, tokenizer: RunTokenizer | None = None):
        self.model = model
        # a classifier started from an LM run (algo.init_from) reads that run's vocabulary:
        # its padding id, no unknown id (unknown characters are left out), or its tokenizer
        self.pad, self.unknown, self.tokenizer = pad, unknown, tokenizer
        self.labels: list[str] = list(vocab["labels"])
        self.tokens: list[str] = list(vocab["tokens"])
        self.kind, self.max_len = str(vocab["tokenizer"]), int(vocab["max_len"])
        self.stoi = {tok: i for i, tok in enumerate(self.tokens)}

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Ids (N, max_len) as in training: known tokens, unknown (1) for the rest."""
        return encode(texts, self.stoi, self.kind, self.max_len, self.pad, self.unknown,
                      self.tokenizer)

    @torch.no_grad()
    def probabilities(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """Softmax over the labels (N, C), float32 on the CPU. `batch_size=None` classifies
        the texts in one batch; a MoE's expert capacity counts the tokens of a batch, so its
        labels can depend on the batching, as they do in the run's own evaluation."""
        self.model.eval()
        dev = next(self.model.parameters()).device
        step = batch_size or max(1, len(texts))
        out = [self.model(self.encode(texts[i:i + step]).to(dev))[0].float().softmax(-1).cpu()
               for i in range(0, len(texts), step)]
        return torch.cat(out) if out else torch.zeros(0, len(self.labels))

    def __call__(self, texts: list[str]) -> list[str]:
        return [self.labels[i] for i in self.probabilities(texts).argmax(-1).tolist()]


def saved_classifier(run_dir: Path, network: Any, algo: Any) -> tuple[Any, SavedClassifier]:
    """The classifier of a run (weights not loaded yet) built from its vocab.json, and the
    `SavedClassifier` that labels texts with it: what `classify` and rlrun-eval's hook
    share."""
    from rlrun.nets import build_network
    from rlrun.nets.classifier import SequenceClassifier

    path = Path(run_dir) / "vocab.json"
    if not path.is_file():
        raise DataError(f"{run_dir}: no vocab.json; give the dir of an algo=text_classifier run")
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(vocab, dict) or not {"tokens", "labels", "max_len", "tokenizer"} <= \
                set(vocab):
            raise ValueError("not the vocabulary rlrun saves (tokens, labels, max_len,"
                             " tokenizer)")
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is unreadable ({str(e).splitlines()[0][:120]}): the run's"
                        " saved vocabulary is damaged; retrain the run") from None
    pad, unknown = int(vocab.get("pad", PAD)), vocab.get("unknown", OOV)
    tokenizer = None
    if vocab["tokenizer"] == TOKENIZER_FILE:  # an LM's tokenizer (algo.init_from), saved here
        tokenizer = RunTokenizer.read(run_dir)
        if tokenizer is None or tokenizer.tokenizer is None:
            raise DataError(f"{run_dir}: no {TOKENIZER_FILE}, which its vocab.json names")
    encoder = build_network(network, vocab_size=len(vocab["tokens"]), lm_head=False,
                            block_size=vocab["max_len"])
    model = SequenceClassifier(encoder, len(vocab["labels"]), 0.0, pad_id=pad,
                               hidden=int(algo.head_hidden), mask_padding=bool(algo.mask_padding))
    return model, SavedClassifier(model, vocab, pad, None if unknown is None else int(unknown),
                                  tokenizer)
