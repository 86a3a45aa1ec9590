"""Token shards written by `rlrun-prepare` (docs/prepare.md), read for training.

`TokenShards.open(DIR)` checks `meta.json` against the shard files, maps each shard with
`np.memmap` (nothing is loaded into memory), and then:

- `windows(split, batch, block_size, rng)`: `batch` random windows of `block_size + 1`
  tokens (inputs and their next-token targets), drawn from a NumPy `Generator`, so each rank
  of a data-parallel run passes its own stream. A window lies inside one shard; every start
  position of every shard long enough is equally likely.
- `eval_windows(split, n, block_size)`: `n` fixed, evenly spread windows, the same at every
  evaluation.
- `encode` / `decode` with the saved `tokenizer.json`, and `token_bytes`: the UTF-8 bytes of
  the original text that each token id stands for (0 for the end-of-text token).

Bits per byte puts runs with different tokenizers on one scale: `val_bpb` = (summed
cross-entropy in nats over targets that carry bytes) / ln 2 / (their bytes). For byte-level
BPE a token's bytes are exact (each character of a byte-level token string is one byte), so
the bytes of a document's tokens add up to the document's own; the same holds for a
character vocabulary (`char_token_bytes`), which is how the character-level path reports the
same `val_bpb`. The end-of-text token carries no byte and is left out of both sums.

Torch-free: arrays are NumPy; the loop turns them into tensors.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.core.errors import ConfigError, DataError

META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
STAGES_FILE = "stages.parquet"
SPLITS = ("train", "val")
DTYPES = ("uint16", "uint32")
FORMAT = 1


def shard_name(split: str, k: int) -> str:
    return f"{split}_{k:06d}.bin"


@dataclass
class TokenShards:
    """A prepared dir: its meta.json, memory-mapped shards and (lazily) its tokenizer."""

    path: Path
    meta: dict[str, Any]
    shards: dict[str, list[np.memmap]] = field(default_factory=dict)
    _tokenizer: Any = None
    _token_bytes: np.ndarray | None = None

    @classmethod
    def open(cls, path: str | Path) -> TokenShards:
        """Open and check a dir written by rlrun-prepare; a bad one is a one-line DataError."""
        path = Path(path).expanduser()
        if not path.is_dir():
            raise DataError(f"{path}: no such folder of token shards (make one with"
                            " rlrun-prepare INPUT... out=DIR)")
        meta_path = path / META_FILE
        if not meta_path.is_file():
            bins = sorted(p.name for p in path.glob("*.bin"))
            what = (f"has token shards ({', '.join(bins[:2])}{', ...' if len(bins) > 2 else ''})"
                    " but no meta.json: an interrupted rlrun-prepare, or shards it did not write"
                    if bins else "holds no meta.json")
            raise DataError(f"{path} {what}; run rlrun-prepare ... out={path} again")
        try:
            meta = json.loads(meta_path.read_text())
            dtype = meta["dtype"]
            splits = meta["splits"]
            vocab = int(meta["vocab_size"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{meta_path} is not an rlrun-prepare meta.json ({e})") from None
        if meta.get("format") != FORMAT:
            raise DataError(f"{meta_path}: format {meta.get('format')!r}, this rlrun reads"
                            f" format {FORMAT}; prepare the corpus again")
        if dtype not in DTYPES:
            raise DataError(f"{meta_path}: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        if vocab > np.iinfo(dtype).max + 1:
            raise DataError(f"{meta_path}: vocab_size {vocab} does not fit dtype {dtype}")
        shards: dict[str, list[np.memmap]] = {}
        item = np.dtype(dtype).itemsize
        for split in SPLITS:
            shards[split] = []
            for entry in splits.get(split, {}).get("shards", []):
                f = path / entry["file"]
                want = int(entry["tokens"]) * item
                size = f.stat().st_size if f.is_file() else None
                if size != want:
                    got = "is missing" if size is None else f"has {size} bytes"
                    raise DataError(f"{f} {got}, but meta.json says {entry['tokens']} {dtype}"
                                    f" tokens ({want} bytes): prepare the corpus again")
                shards[split].append(np.memmap(f, dtype=dtype, mode="r"))
        return cls(path, meta, shards)

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def eot_id(self) -> int:
        return int(self.meta["eot_id"])

    def tokens(self, split: str) -> int:
        return sum(len(s) for s in self.shards[split])

    def _check_fits(self, split: str, block_size: int) -> list[np.memmap]:
        shards = self.shards.get(split, [])
        longest = max((len(s) for s in shards), default=0)
        if block_size + 1 > longest:
            where = f"the longest {split} shard of {self.path} holds {longest}" if shards else \
                f"{self.path} has no {split} shard"
            raise DataError(f"network.block_size={block_size} needs windows of {block_size + 1}"
                            f" tokens, but {where}; use a smaller network.block_size or more"
                            " text")
        return shards

    def windows(self, split: str, batch: int, block_size: int,
                rng: np.random.Generator) -> np.ndarray:
        """`batch` random windows of `block_size + 1` tokens (int64, batch x (block_size+1))."""
        shards = self._check_fits(split, block_size)
        starts = np.array([max(0, len(s) - block_size) for s in shards], dtype=np.int64)
        cum = np.cumsum(starts)
        draws = rng.integers(0, cum[-1], size=batch)
        which = np.searchsorted(cum, draws, side="right")
        offset = draws - (cum[which] - starts[which])
        return np.stack([np.asarray(shards[k][o:o + block_size + 1], dtype=np.int64)
                         for k, o in zip(which, offset, strict=True)])

    def eval_windows(self, split: str, n: int, block_size: int) -> np.ndarray:
        """`n` evenly spread windows of `block_size + 1` tokens: the same on every call."""
        shards = self._check_fits(split, block_size)
        starts = np.array([max(0, len(s) - block_size) for s in shards], dtype=np.int64)
        cum = np.cumsum(starts)
        draws = np.linspace(0, cum[-1] - 1, n).astype(np.int64)
        which = np.searchsorted(cum, draws, side="right")
        offset = draws - (cum[which] - starts[which])
        return np.stack([np.asarray(shards[k][o:o + block_size + 1], dtype=np.int64)
                         for k, o in zip(which, offset, strict=True)])

    def tokenizer(self) -> Any:
        """The saved `tokenizers.Tokenizer` (special-token text in input stays text)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.path / TOKENIZER_FILE)
        return self._tokenizer

    def encode(self, text: str) -> list[int]:
        return self.tokenizer().encode(text, add_special_tokens=False).ids

    def vocabulary(self) -> Vocabulary:
        """What each id stands for (`algo.init_from` compares it with the source run's)."""
        return Vocabulary.of_tokenizer(self.tokenizer(), str(self.path / TOKENIZER_FILE))

    def check_fits(self, block_size: int) -> None:
        """Both splits hold a shard of at least `block_size + 1` tokens (a DataError naming
        the shortfall otherwise): what preflight checks before a run dir exists."""
        for split in SPLITS:
            self._check_fits(split, block_size)

    def decode(self, ids: list[int] | np.ndarray) -> str:
        return self.tokenizer().decode([int(i) for i in ids], skip_special_tokens=False)

    @property
    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes of original text per token id (int64, vocab_size long)."""
        if self._token_bytes is None:
            self._token_bytes = token_bytes(self.tokenizer())
        return self._token_bytes

    def bytes_of(self, targets: np.ndarray) -> int:
        """Bytes of original text that the target tokens cover."""
        return int(self.token_bytes[np.asarray(targets, dtype=np.int64)].sum())


def load_tokenizer(path: str | Path) -> Any:
    """A saved `tokenizer.json` (a JSON description that `tokenizers` parses in Rust: reading
    one runs no code), with special-token text in input kept as text."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError("token shards need Hugging Face tokenizers: pip install"
                          " 'rlrun[prepare]'") from None

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing: prepare the corpus again")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for a malformed file
        raise DataError(f"{path} is not a tokenizers JSON file ({str(e)[:160]})") from None
    tok.encode_special_tokens = True
    return tok


def token_bytes(tokenizer: Any) -> np.ndarray:
    """UTF-8 bytes each token id stands for; special tokens 0.

    Byte-level BPE maps every byte to one character, so a token's bytes are its string's
    length. A tokenizer without a byte-level decoder (the char vocabulary, whose decoder
    joins tokens as they are) counts the UTF-8 bytes of its token string."""
    n = tokenizer.get_vocab_size(with_added_tokens=True)
    byte_level = type(tokenizer.decoder).__name__ == "ByteLevel"
    special = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    out = np.zeros(n, dtype=np.int64)
    for i in range(n):
        tok = tokenizer.id_to_token(i)
        if i in special or tok is None:
            continue
        out[i] = len(tok) if byte_level else len(tok.encode("utf-8"))
    return out


def char_token_bytes(chars: list[str]) -> np.ndarray:
    """Bytes per token of a character vocabulary (token i is `chars[i]`): the character-level
    path's `val_bpb` in the same terms as a BPE run's."""
    return np.array([len(c.encode("utf-8")) for c in chars], dtype=np.int64)


def bits_per_byte(total_nats: float, n_bytes: int) -> float:
    """Summed cross-entropy (nats) over `n_bytes` bytes of original text, in bits per byte."""
    if n_bytes <= 0:
        raise ValueError("bits per byte needs at least one byte")
    return total_nats / math.log(2) / n_bytes


# ---- vocabularies: what each id stands for (algo.init_from compares and maps them) ----------
def byte_level_alphabet() -> dict[str, int]:
    """Character -> byte of byte-level BPE (GPT-2's `bytes_to_unicode`, which `tokenizers`'
    ByteLevel pre-tokenizer uses): printable bytes stand for themselves, the other 68 are
    shifted to code points 256 and up, in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    out, shifted = {}, 0
    for b in range(256):
        if b in keep:
            out[chr(b)] = b
        else:
            out[chr(256 + shifted)] = b
            shifted += 1
    return out


@dataclass(frozen=True)
class Vocabulary:
    """What each token id of a model stands for: the bytes of text (`bytes`), or the name of
    a special token (`str`, e.g. `<|endoftext|>`). Two runs whose pieces are equal id for id
    share a tokenizer; otherwise `map_from` finds, for each id, the id of another vocabulary
    that stands for the same bytes (or the same special token)."""

    pieces: tuple[bytes | str, ...]
    what: str  # for messages: "8192 tokens (byte-level BPE, DIR/tokenizer.json)"

    def __len__(self) -> int:
        return len(self.pieces)

    @classmethod
    def of_tokenizer(cls, tokenizer: Any, where: str) -> Vocabulary:
        """A `tokenizers.Tokenizer`: byte-level tokens decoded to their bytes, others (a
        character vocabulary, WordPiece...) as the UTF-8 of their string."""
        n = tokenizer.get_vocab_size(with_added_tokens=True)
        byte_level = type(tokenizer.decoder).__name__ == "ByteLevel"
        special = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
        alphabet = byte_level_alphabet() if byte_level else {}
        pieces: list[bytes | str] = []
        for i in range(n):
            tok = tokenizer.id_to_token(i)
            if i in special or tok is None:
                pieces.append(str(tok))
            elif byte_level:
                pieces.append(bytes(alphabet[c] for c in tok) if all(
                    c in alphabet for c in tok) else tok)
            else:
                pieces.append(tok.encode("utf-8"))
        model = json.loads(tokenizer.to_str()).get("model") or {}
        kind = ("byte-level BPE" if byte_level else "characters"
                if model.get("type") == "BPE" and not model.get("merges")
                else str(model.get("type", "tokenizer")))
        return cls(tuple(pieces), f"{n} tokens ({kind}, {where})")

    @classmethod
    def of_chars(cls, chars: list[str], where: str) -> Vocabulary:
        """A character vocabulary (token i is `chars[i]`), as the character-level path has."""
        return cls(tuple(c.encode("utf-8") for c in chars),
                   f"{len(chars)} characters ({where})")

    def map_from(self, source: Vocabulary) -> np.ndarray:
        """For each id of this vocabulary, the id of `source` that stands for the same bytes
        (or special token), or -1 where `source` has none (int64, len(self) long)."""
        index: dict[bytes | str, int] = {}
        for i, p in enumerate(source.pieces):
            index.setdefault(p, i)
        return np.array([index.get(p, -1) for p in self.pieces], dtype=np.int64)


CHAR_VOCAB_FILE = "vocab.json"  # a character-level LM run's characters, in its run dir


@dataclass
class RunTokenizer:
    """The tokenizer of an LM run, as it saved it in its run dir: `tokenizer.json` (a run on
    token shards: a copy of theirs) or `vocab.json` (a character run: its characters, id i
    is `chars[i]`). `algo.init_from` compares it with the new run's and, for the text
    classifier, encodes texts with it."""

    where: str
    tokenizer: Any = None  # a tokenizers.Tokenizer, or None for characters
    chars: list[str] | None = None

    @classmethod
    def read(cls, run_dir: str | Path) -> RunTokenizer | None:
        """The run dir's saved tokenizer, or None where it saved none (runs of an older
        rlrun); a damaged file is a DataError."""
        run_dir = Path(run_dir)
        if (run_dir / TOKENIZER_FILE).is_file():
            path = run_dir / TOKENIZER_FILE
            return cls(str(path), tokenizer=load_tokenizer(path))
        path = run_dir / CHAR_VOCAB_FILE
        if not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            chars = saved["tokens"]
            if saved.get("tokenizer") != "char" or not isinstance(chars, list) or not all(
                    isinstance(c, str) and len(c) == 1 for c in chars):
                raise ValueError("not an LM run's character vocabulary")
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise DataError(f"{path} is unreadable ({str(e).splitlines()[0][:120]})") from None
        return cls(str(path), chars=chars)

    def __len__(self) -> int:
        if self.chars is not None:
            return len(self.chars)
        return int(self.tokenizer.get_vocab_size(with_added_tokens=True))

    def vocabulary(self) -> Vocabulary:
        if self.chars is not None:
            return Vocabulary.of_chars(self.chars, self.where)
        return Vocabulary.of_tokenizer(self.tokenizer, self.where)

    def encode(self, text: str) -> list[int]:
        """The ids of `text` (characters the vocabulary lacks are left out)."""
        if self.chars is not None:
            stoi = {c: i for i, c in enumerate(self.chars)}
            return [stoi[c] for c in text if c in stoi]
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def tokens(self) -> list[str]:
        """Each id's token string (for display and vocab.json)."""
        if self.chars is not None:
            return list(self.chars)
        return [str(self.tokenizer.id_to_token(i)) for i in range(len(self))]
