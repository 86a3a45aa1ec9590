"""Every setting of `rlrun-prepare`, declared once: type, default, bounds and help.

The command line is `key=value` pairs (as `rlrun-eval`), parsed and checked here into a
frozen `Settings`. `Settings.output_settings()` is what decides the output: a rerun with the
same inputs and the same output settings is up to date; settings that only change how the
work is done (`workers`, `executor`, `progress`) are left out of that comparison.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rlrun.core.errors import ConfigError

PROG = "rlrun-prepare"
EOT = "<|endoftext|>"
BYTE_ALPHABET = 256  # byte-level BPE starts from every byte


def _opt(default: Any, help: str, *, low: float | None = None, high: float | None = None,
         choices: tuple[str, ...] = (), nullable: bool = False, runtime: bool = False) -> Any:
    """A dataclass field carrying its help text and bounds (read by `parse_options`)."""
    return field(default=default, metadata={
        "help": help, "low": low, "high": high, "choices": choices, "nullable": nullable,
        "runtime": runtime})


@dataclass(frozen=True)
class Settings:
    """What `rlrun-prepare` does; every field is a `key=value` option."""

    out: str = _opt("prepared", "output dir (created if missing)")
    # reading
    lines: bool = _opt(False, "true: every non-blank line of a text file is one document"
                       " (default: one document per file)")
    text_key: str = _opt("text", "the field holding the text in JSONL, CSV and Parquet files")
    suffixes: str = _opt(".txt,.md,.rst,.py,.jsonl,.csv,.parquet",
                         "file suffixes read when an INPUT is a folder (comma separated)")
    # 1. normalisation
    normalize: bool = _opt(True, "Unicode NFC, \\r\\n -> \\n, no trailing spaces on a line, at"
                           " most one blank line in a row, no blank lines at either end")
    # 2-3. deduplication
    exact_dedup: bool = _opt(True, "drop a document whose normalised text was seen before")
    near_dedup: bool = _opt(True, "drop a document whose word n-grams overlap an earlier kept"
                            " one's by Jaccard >= threshold (MinHash LSH finds candidates,"
                            " exact Jaccard confirms them)")
    ngram: int = _opt(5, "words per shingle for near-dup detection", low=1)
    threshold: float = _opt(0.8, "Jaccard similarity at which a document is a near duplicate",
                            low=0.0, high=1.0)
    bands: int = _opt(14, "LSH bands (MinHash permutations = bands x rows)", low=1)
    rows: int = _opt(8, "MinHash values per LSH band", low=1)
    minhash_seed: int = _opt(1, "seed of the MinHash permutations", low=0)
    # 4. quality filters (Gopher, Rae et al. 2021, appendix A; null switches one off)
    filters: bool = _opt(True, "apply the quality filters below")
    min_words: int | None = _opt(50, "fewest words (whitespace separated) in a document",
                                 low=0, nullable=True)
    max_words: int | None = _opt(100_000, "most words in a document", low=1, nullable=True)
    min_mean_word_length: float | None = _opt(3.0, "shortest mean word length (characters)",
                                              low=0.0, nullable=True)
    max_mean_word_length: float | None = _opt(10.0, "longest mean word length (characters)",
                                              low=0.0, nullable=True)
    max_symbol_ratio: float | None = _opt(0.1, "most '#' per word, and most ellipses per"
                                          " word", low=0.0, nullable=True)
    max_bullet_lines: float | None = _opt(0.9, "largest share of lines starting with a bullet"
                                          " (-, *, •)", low=0.0, high=1.0, nullable=True)
    max_ellipsis_lines: float | None = _opt(0.3, "largest share of lines ending in an ellipsis"
                                            " (... or …)", low=0.0, high=1.0, nullable=True)
    max_dup_lines: float | None = _opt(0.3, "largest share of non-blank lines that repeat an"
                                       " earlier line of the same document", low=0.0,
                                       high=1.0, nullable=True)
    # 5. split
    val_fraction: float = _opt(0.1, "share of documents (by a hash of their text) in the"
                               " validation split", low=0.0, high=1.0)
    # 6. tokenizer
    tokenizer: str = _opt("bpe", "bpe (byte-level BPE trained on the train split), char (one"
                          " token per character) or the path of a tokenizer.json")
    vocab_size: int = _opt(8192, f"tokens of a trained BPE, {EOT} included (>= 257: the 256"
                           " bytes and the end-of-text token)", low=1)
    min_frequency: int = _opt(2, "fewest occurrences of a pair for a BPE merge", low=1)
    eot: str = _opt(EOT, "the end-of-text token written between documents")
    # 7. shards
    shard_tokens: int = _opt(100_000_000, "tokens per shard file (the last one holds the rest)",
                             low=1)
    # how the work is done (not part of the up-to-date comparison)
    workers: int = _opt(1, "processes reading, normalising and scoring input files in"
                        " parallel (executor=slurm: array tasks)", low=1, runtime=True)
    executor: str = _opt("local", "local (this machine, workers=N processes) or slurm (one"
                         " SLURM job array of workers=N tasks, through submitit)",
                         choices=("local", "slurm"), runtime=True)
    slurm_partition: str | None = _opt(None, "executor=slurm: the partition (none: the"
                                       " cluster's default)", nullable=True, runtime=True)
    slurm_time_min: int = _opt(60, "executor=slurm: time limit of each task, minutes", low=1,
                               runtime=True)
    slurm_mem_gb: int = _opt(4, "executor=slurm: memory of each task, GB", low=1,
                             runtime=True)
    progress: bool = _opt(True, "progress bars on stderr", runtime=True)

    def __post_init__(self) -> None:
        if self.tokenizer == "bpe" and self.vocab_size < BYTE_ALPHABET + 1:
            raise ConfigError(
                f"vocab_size={self.vocab_size} is too small for byte-level BPE: the {BYTE_ALPHABET}"
                f" bytes and {self.eot} need {BYTE_ALPHABET + 1} (use tokenizer=char for a"
                " character vocabulary)")
        if (self.min_words is not None and self.max_words is not None
                and self.min_words > self.max_words):
            raise ConfigError(f"min_words={self.min_words} is above max_words={self.max_words}")
        lo, hi = self.min_mean_word_length, self.max_mean_word_length
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"min_mean_word_length={lo:g} is above max_mean_word_length={hi:g}")
        if not self.eot:
            raise ConfigError("eot= must name a token, e.g. eot='<|endoftext|>'")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def output_settings(self) -> dict[str, Any]:
        """The settings that decide what is written (compared by the up-to-date check)."""
        runtime = {f.name for f in fields(self) if f.metadata.get("runtime")} | {"out"}
        return {k: v for k, v in asdict(self).items() if k not in runtime}


OPTIONS = {f.name: f for f in fields(Settings)}


def parse_options(pairs: list[str]) -> Settings:
    """`key=value` strings -> Settings; a bad key or value is a one-line ConfigError."""
    from rlrun.core.config import did_you_mean

    values: dict[str, Any] = {}
    for arg in pairs:
        key, _, value = arg.partition("=")
        if key not in OPTIONS:
            raise ConfigError(f"{key}= is not an option of {PROG}"
                              f"{did_you_mean(key, list(OPTIONS))}")
        if key in values:
            raise ConfigError(f"{key}= is given twice")
        values[key] = _typed(key, value)
    return Settings(**values)


def _typed(key: str, value: str) -> Any:
    f = OPTIONS[key]
    meta, kind = f.metadata, str(f.type)
    if meta["nullable"] and value.lower() in ("none", "null"):
        return None
    lo, hi = meta["low"], meta["high"]
    bounds = (f" >= {lo:g}" if lo is not None else "") + (f" and <= {hi:g}" if hi is not None
                                                            else "")
    off = " (or none to switch it off)" if meta["nullable"] else ""
    if kind.startswith("bool"):
        if value.lower() not in ("true", "false"):
            raise ConfigError(f"{key}={value!r} must be true or false")
        return value.lower() == "true"
    if kind.startswith("int"):
        try:
            out: Any = int(value)
        except ValueError:
            raise ConfigError(f"{key}={value!r} must be an integer{bounds}{off}") from None
    elif kind.startswith("float"):
        try:
            out = float(value)
        except ValueError:
            raise ConfigError(f"{key}={value!r} must be a number{bounds}{off}") from None
        if not math.isfinite(out):
            raise ConfigError(f"{key}={value!r} must be a finite number{bounds}{off}")
    else:
        if meta["choices"] and value not in meta["choices"]:
            raise ConfigError(f"{key}={value!r} must be {' or '.join(meta['choices'])}")
        if not value:
            raise ConfigError(f"{key}= is empty")
        return value
    if lo is not None and out < lo or hi is not None and out > hi:
        raise ConfigError(f"{key}={value} must be{bounds}{off}")
    return out


def options_help() -> str:
    """The options part of `--help`: every setting with its default."""
    lines = []
    for name, f in OPTIONS.items():
        default = f.default
        shown = "none" if default is None else str(default).lower() if isinstance(
            default, bool) else str(default)
        lines.append(textwrap.fill(f"{f.metadata['help']} [{shown}]", 96,
                                   initial_indent=f"  {name + '=':<22}",
                                   subsequent_indent=" " * 24))
    return "\n".join(lines)
