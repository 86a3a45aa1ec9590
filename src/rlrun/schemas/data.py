"""Settings of the data sets: text corpora (`env=stdlib_docs|text_file|labelled_docstrings`,
algo=lm), token shards (`env=tokens`, algo=lm), labelled text
(`env=stdlib_docstrings|imdb|text_csv`, algo=text_classifier) and images
(`env=digits|mnist|fashion_mnist|image_folder`, algo=ddpm).

Each has a `check()` that preflight calls before a run dir exists: it runs the reading code
the loops use (`rlrun.data.*`, imported only then), so a bad `env.path` (missing, not UTF-8,
empty, no rows, a missing column, a folder without the expected layout) is a one-line
DataError that leaves nothing behind. A `check(cfg)` that takes an argument is given the
composed config, for checks that depend on another group (a window of `network.block_size`
tokens must fit in a shard). Torch-free at import: read at CLI start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlrun.core.errors import ConfigError, DataError
from rlrun.core.schema import EnvSchema, opt

# Present in CPython 3.11-3.13 as pure-Python packages (no optional build parts needed).
STDLIB_PACKAGES = ["asyncio", "collections", "concurrent", "email", "http", "importlib",
                   "logging", "multiprocessing", "unittest", "urllib", "xml"]
SOURCES = ("stdlib", "imdb", "csv")
TOKENIZERS = ("word", "char")
LABELLED_SPLITS = ("train", "val", "test")
DATASETS = ("digits", "mnist", "fashion_mnist", "image_folder")


@dataclass
class TextConfig(EnvSchema):
    """`env=stdlib_docs`: a character corpus and its deterministic train/validation split
    (`rlrun.data.text`)."""

    path: str | None = opt(None, "a UTF-8 text file; null: Python's own documentation topics"
                                 " (pydoc_data, ~465k characters)")
    val_fraction: float = opt(0.1, "share of the split blocks that go to validation",
                              gt=0, lt=0.5)
    split_block: int = opt(2048, "characters per split block (every 1/val_fraction-th block"
                                 " is validation)", ge=16)
    max_chars: int | None = opt(None, "use only the first N characters (quick tests)",
                                ge=1000)

    def check(self) -> None:
        """The text can be read (the file exists, is UTF-8 and not empty)."""
        from rlrun.data.text import load_text

        load_text(self)


@dataclass
class TextFileConfig(TextConfig):
    """`env=text_file`: the corpus of `TextConfig`, read from `env.path`, which it requires
    (checked by `check()`, so that the config itself composes without one)."""


@dataclass
class TokensConfig(EnvSchema):
    """`env=tokens env.path=DIR`: token shards written by `rlrun-prepare` (docs/prepare.md),
    read through np.memmap (`rlrun.data.tokens`); the vocabulary size comes from the folder's
    meta.json, the tokenizer from its tokenizer.json."""

    path: str | None = opt(None, "a folder written by rlrun-prepare ... out=DIR (meta.json,"
                                 " tokenizer.json, train_*.bin, val_*.bin)")

    def check(self, cfg: Any = None) -> None:
        """The folder is a complete rlrun-prepare output (meta.json agrees with the shards,
        the tokenizer loads) and, given the composed config, both splits hold a shard long
        enough for one window of network.block_size + 1 tokens."""
        from rlrun.data.tokens import TokenShards

        if not self.path:
            raise DataError("env=tokens needs a folder of token shards: env.path=DIR (made by"
                            " rlrun-prepare INPUT... out=DIR)")
        shards = TokenShards.open(self.path)
        shards.tokenizer()
        block = (cfg.get("network") or {}).get("block_size") if cfg is not None else None
        if isinstance(block, int) and not isinstance(block, bool):
            shards.check_fits(block)


@dataclass
class LabelledSourceConfig(EnvSchema):
    """Where labelled text comes from and how it is split into train/validation/test by hash
    (`rlrun.data.text_classification.load_splits`): what the text classifier's envs and the
    LM's labelled corpus (`env=labelled_docstrings`) share, so both can name the same
    documents and the same splits."""

    source: str = opt("stdlib", "stdlib: standard-library docstrings by package; imdb: an"
                                " aclImdb folder; csv: a CSV or JSONL file", choices=SOURCES)
    path: str | None = opt(None, "imdb: the aclImdb folder; csv: the file; stdlib: unused")
    text_column: str = opt("text", "csv/jsonl: the column holding the text")
    label_column: str = opt("label", "csv/jsonl: the column holding the label")
    packages: list[str] = opt(factory=lambda: list(STDLIB_PACKAGES),
                              help="stdlib: the packages whose docstrings are the classes")
    min_chars: int = opt(20, "stdlib: shorter docstrings are dropped", ge=0)
    val_fraction: float = opt(0.1, "share of the texts (by hash) for validation", gt=0, lt=0.5)
    test_fraction: float = opt(0.1, "share of the texts (by hash) for test; not used by imdb,"
                                    " which has its own test folder", gt=0, lt=0.5)
    limit: int | None = opt(None, "at most N texts per split (quick tries and tests)", ge=1)

    def __post_init__(self) -> None:
        if self.source == "stdlib" and not self.packages:
            raise ConfigError("packages=[]: name at least two standard-library packages")


@dataclass
class TextClassificationConfig(LabelledSourceConfig):
    """`env=stdlib_docstrings|imdb|text_csv`: where the labelled text comes from, how it is
    split and tokenised (`rlrun.data.text_classification`)."""

    tokenizer: str = opt("word", "word: lower-cased \\w+ words; char: characters",
                         choices=TOKENIZERS)
    vocab_size: int = opt(8000, "token ids, including padding (0) and unknown (1)", ge=3)
    max_len: int = opt(64, "ids per text: longer texts are cut, shorter ones padded", ge=1)

    def check(self) -> None:
        """The texts can be read and split into three non-empty splits of at least two
        classes, every validation and test label seen in training."""
        from rlrun.data.text_classification import check_splits, load_splits

        check_splits(*load_splits(self), self.path or "the standard-library docstrings")


@dataclass
class LabelledTextConfig(LabelledSourceConfig):
    """`env=labelled_docstrings`: a character corpus for the LM made of labelled documents,
    each under its label as a header line (`rlrun.data.labelled_text`): the documents of the
    classifier's `splits` of the same source, so a text classifier trained with the same
    settings (`env=stdlib_docstrings`) never validates or tests on a text the LM saw. The LM
    then splits that corpus as `env=stdlib_docs` does: blocks of `split_block` characters,
    every 1/val_fraction-th to its validation."""

    val_fraction: float = opt(0.1, "share of the texts (by hash) in the classifier's"
                                   " validation split, and of the corpus's blocks in the LM's",
                              gt=0, lt=0.5)
    splits: list[str] = opt(factory=lambda: ["train"], help="the classifier's splits whose"
                            " documents make the corpus", choices=LABELLED_SPLITS, each=True)
    split_block: int = opt(2048, "characters per split block (every 1/val_fraction-th block"
                                 " is the LM's validation)", ge=16)
    max_chars: int | None = opt(None, "use only the first N characters (quick tests)",
                                ge=1000)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.splits:
            raise ConfigError(f"splits=[]: name one or more of {', '.join(LABELLED_SPLITS)}")

    def check(self) -> None:
        """The documents can be read, split and written under their headers (a label with a
        line break cannot be a header)."""
        from rlrun.data.labelled_text import labelled_corpus

        labelled_corpus(self, self.splits)


@dataclass
class ImageDataConfig(EnvSchema):
    """`env=digits|mnist|fashion_mnist|image_folder` (`rlrun.data.images`)."""

    dataset: str = opt("digits", "digits: scikit-learn's 8x8 digits; mnist, fashion_mnist: the"
                                 " IDX files in env.path; image_folder: images in env.path",
                       choices=DATASETS)
    path: str | None = opt(None, "the folder holding the files (mnist, fashion_mnist,"
                                 " image_folder)")
    size: int = opt(8, "side of the square images the model sees", ge=2)
    fit: str = opt("resize", "pad (centred, background value) or resize (bilinear; non-square"
                             " images are centre-cropped)", choices=("pad", "resize"))
    channels: int = opt(1, "image_folder: 1 (grey) or 3 (RGB); the others are grey",
                        choices=(1, 3))
    limit: int | None = opt(None, "use only the first N images (quick runs)", ge=1)

    def check(self) -> None:
        """The data set is there: scikit-learn for digits, readable IDX files for (Fashion-)
        MNIST, a folder with images (directly or one sub-folder per class) for image_folder."""
        from rlrun.data.images import check_source

        check_source(self)
