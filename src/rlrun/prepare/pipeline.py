"""The stages of `rlrun-prepare` run in order into an output dir that is complete or untouched.

Per input file, in parallel with `workers=N` (a process pool, or with `executor=slurm` a
SLURM job array: `rlrun.prepare.slurm`; results come back in input order): read, normalise,
hash, MinHash signature, filter scores (`process_file`). Then, over the whole corpus, in this
process: empty documents, exact duplicates, near duplicates, filters, the split, the
tokenizer, the shards.

Everything is written into `<out>/.prepare-<pid>/` first. Only when all of it is there are
the files moved into `out`: the old `meta.json` is removed first, the shards, tokenizer and
stage log moved in, and the new `meta.json` last. Ctrl-C (or a crash) before that leaves
`out` as it was; in the moment of the moves it leaves shards without a `meta.json`, which
`rlrun.data.tokens` refuses to read. One process at a time writes an out dir (a lock).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.core.errors import ConfigError, DataError
from rlrun.data.tokens import (
    FORMAT,
    META_FILE,
    SPLITS,
    STAGES_FILE,
    TOKENIZER_FILE,
    TokenShards,
    token_bytes,
)
from rlrun.prepare import exact, filters, neardup, split
from rlrun.prepare.inputs import Source, find_sources, read_documents
from rlrun.prepare.normalize import normalize
from rlrun.prepare.settings import PROG, Settings

SHARD_RE = re.compile(r"^(train|val)_\d{6}\.bin$")
TMP_PREFIX = ".prepare-"
ENCODE_BATCH_BYTES = 8 << 20  # texts handed to the tokenizer at once


@dataclass
class FileResult:
    """What one worker returns for one input file."""

    source: str
    indices: list[int] = field(default_factory=list)
    raw_bytes: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    sigs: np.ndarray | None = None  # documents x num_perm (rows of wordless documents unused)
    has_words: list[bool] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)


def process_file(source: Source, s: Settings) -> FileResult:
    """Stages 1-4 for one file: read, normalise, hash, shingle and sign, score."""
    out = FileResult(source.path, scores={k: [] for k in filters.SCORES})
    sets = []
    for index, raw in read_documents(source, s.lines, s.text_key):
        text = normalize(raw) if s.normalize else raw
        out.indices.append(index)
        out.raw_bytes.append(len(raw.encode("utf-8")))
        out.texts.append(text)
        out.hashes.append(exact.text_hash(text))
        if s.near_dedup:
            sh = neardup.shingles(text, s.ngram)
            sets.append(sh)
            out.has_words.append(len(sh) > 0)
        else:
            out.has_words.append(bool(text.strip()))
        sc = filters.scores(text) if s.filters else dict.fromkeys(filters.SCORES, np.nan)
        for k in filters.SCORES:
            out.scores[k].append(sc[k])
    if s.near_dedup:
        out.sigs = neardup.signatures(sets, s.num_perm, s.minhash_seed)
    return out


def _process(args: tuple[Source, Settings]) -> FileResult:
    return process_file(*args)


def _map_files(sources: list[Source], s: Settings, bar: Any, build: Path) -> list[FileResult]:
    if s.executor == "slurm":
        from rlrun.prepare import slurm

        return slurm.map_files(sources, s, build, bar)
    jobs = [(src, s) for src in sources]
    results = []
    if s.workers == 1 or len(sources) == 1:
        for job in jobs:
            results.append(_process(job))
            bar.update(1)
        return results
    import multiprocessing

    # workers ignore Ctrl-C: this process gets it, and leaving the `with` terminates them
    with multiprocessing.Pool(min(s.workers, len(sources)), initializer=_ignore_sigint) as pool:
        for r in pool.imap(_process, jobs, chunksize=max(1, len(jobs) // (8 * s.workers))):
            results.append(r)
            bar.update(1)
    return results


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def settings_record(s: Settings, tokenizer_hash: str | None) -> dict[str, Any]:
    """What the up-to-date check compares: the output settings, and the content of a
    tokenizer file when one is given."""
    rec = s.output_settings()
    if tokenizer_hash:
        rec["tokenizer_sha256"] = tokenizer_hash
    return rec


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def input_hash(sources: list[Source]) -> str:
    """sha256 over every input's path and content, in order."""
    h = hashlib.sha256()
    for src in sources:
        h.update(f"{src.path}\0{src.content_hash()}\0".encode())
    return h.hexdigest()


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    shown = ", ".join(f"{k}: {old.get(k, '-')} -> {new.get(k, '-')}" for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _read_meta(out: Path) -> dict[str, Any] | None:
    path = out / META_FILE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not an object")
        return meta
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is unreadable ({e}); add --force to prepare {out} anew") from None


def _intact(out: Path) -> bool:
    try:
        TokenShards.open(out)
    except DataError:
        return False
    return (out / TOKENIZER_FILE).is_file() and (out / STAGES_FILE).is_file()


def prepare(inputs: list[str], s: Settings, force: bool = False,
            echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage into `s.out`; returns the meta.json record (with `"up_to_date": True`
    and nothing written when the dir already holds this corpus)."""
    from tqdm import tqdm

    if s.executor == "slurm":
        from rlrun.prepare.slurm import check_available

        check_available()  # before any work
    out = Path(s.out).expanduser()
    if out.exists() and not out.is_dir():
        raise DataError(f"out={s.out} is a file; name a folder (it is created if missing)")
    sources = find_sources(inputs, s.suffixes)
    corpus_tok = None
    tok_hash = None
    if s.tokenizer not in ("bpe", "char"):
        from rlrun.prepare.tokenizer import load_tokenizer_file

        corpus_tok = load_tokenizer_file(s.tokenizer, s.eot)  # checked before any work
        tok_hash = _sha256(s.tokenizer)
    record = settings_record(s, tok_hash)
    fingerprint = _digest([src.fingerprint() for src in sources])

    from rlrun.core import runlock

    out.mkdir(parents=True, exist_ok=True)
    runlock.acquire(out)
    try:
        old = _read_meta(out)
        in_hash = None
        if old is not None and not force:
            if old.get("settings") != record:
                raise ConfigError(f"{out} holds a corpus prepared with other settings"
                                  f" ({_diff(old.get('settings') or {}, record)}); add --force"
                                  " to replace it")
            old_in = old.get("input", {})
            if old_in.get("fingerprint") != fingerprint:
                in_hash = input_hash(sources)
                if old_in.get("hash") != in_hash:
                    raise ConfigError(
                        f"{out} holds a corpus prepared from other inputs ({old_in.get('sources')}"
                        f" sources then, {len(sources)} now, or changed files); add --force to"
                        " replace it")
            if _intact(out):
                echo(f"{out} is up to date (same inputs and settings): nothing to do (--force"
                     " prepares it again)")
                return {**old, "up_to_date": True}
            echo(f"{out} is incomplete (a shard, tokenizer.json or stages.parquet is missing):"
                 " preparing it again")
        for stale in out.glob(TMP_PREFIX + "*"):  # a killed run's build folder (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = out / f"{TMP_PREFIX}{os.getpid()}"
        tmp.mkdir()
        try:
            meta = _build(sources, s, tmp, corpus_tok, record, fingerprint,
                          in_hash or input_hash(sources), tqdm, echo)
            _commit(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        runlock.release(out)
    return meta


def _commit(tmp: Path, out: Path) -> None:
    """Move the finished files into `out`, the old meta.json out first, the new one last."""
    (out / META_FILE).unlink(missing_ok=True)
    for f in out.iterdir():
        if SHARD_RE.match(f.name) or f.name in (TOKENIZER_FILE, STAGES_FILE):
            f.unlink()
    for f in sorted(tmp.iterdir()):
        if f.name != META_FILE:
            os.replace(f, out / f.name)
    os.replace(tmp / META_FILE, out / META_FILE)


def _build(sources: list[Source], s: Settings, tmp: Path, corpus_tok: Any,
           record: dict[str, Any], fingerprint: str, in_hash: str, tqdm: Any,
           echo: Callable[[str], None]) -> dict[str, Any]:
    t0 = time.monotonic()
    with tqdm(total=len(sources), desc="read, clean, score", unit="file", disable=not s.progress,
              leave=False) as bar:
        results = _map_files(sources, s, bar, tmp)
    src_of = [r.source for r in results for _ in r.texts]
    idx = [i for r in results for i in r.indices]
    raw_bytes = np.array([b for r in results for b in r.raw_bytes], dtype=np.int64)
    texts = [t for r in results for t in r.texts]
    hashes = [h for r in results for h in r.hashes]
    has_words = [w for r in results for w in r.has_words]
    n = len(texts)
    if not n:
        raise DataError(f"no input found: the {len(sources)} input file(s) hold no document")
    scores = {k: np.array([v for r in results for v in r.scores[k]], dtype=np.float64)
              for k in filters.SCORES}
    fate = np.array(["kept"] * n, dtype=object)
    dup_of = np.full(n, -1, dtype=np.int64)
    jaccard = np.full(n, np.nan)
    for i, t in enumerate(texts):
        if not t.strip():
            fate[i] = "empty"
    if s.exact_dedup:
        for i, j in enumerate(exact.exact_duplicates(hashes, list(fate == "kept"))):
            if j is not None:
                fate[i], dup_of[i] = "exact_dup", j
    if s.near_dedup:
        sigs = np.concatenate([r.sigs for r in results])
        alive = [bool(f == "kept" and w) for f, w in zip(fate, has_words, strict=True)]
        near, best = neardup.near_duplicates(
            sigs, alive, lambda i: neardup.shingles(texts[i], s.ngram), s.bands, s.rows,
            s.threshold)
        for i, (j, b) in enumerate(zip(near, best, strict=True)):
            if b is not None:
                jaccard[i] = b
            if j is not None:
                fate[i], dup_of[i] = "near_dup", j
    if s.filters:
        for i in np.flatnonzero(fate == "kept"):
            rule = filters.failed_rule({k: scores[k][i] for k in filters.SCORES}, s)
            if rule:
                fate[i] = rule
    counts = Counter(fate.tolist())
    kept = np.flatnonzero(fate == "kept")
    if not len(kept):
        raise DataError(f"no document is left to tokenize: {_fates(counts)} of {n}; relax a"
                        " filter (e.g. min_words=none) or give more text")
    split_of = np.array([""] * n, dtype=object)
    for i in kept:
        split_of[i] = split.split_of(hashes[i], s.val_fraction)
    members = {sp: [int(i) for i in kept if split_of[i] == sp] for sp in SPLITS}
    for sp in SPLITS:
        if not members[sp] and 0 < s.val_fraction < 1:
            raise DataError(f"no document fell in the {sp} split ({len(kept)} kept,"
                            f" val_fraction={s.val_fraction:g}): give more documents or change"
                            " val_fraction")
    # 6. tokenizer
    from rlrun.prepare import tokenizer as tk

    if s.tokenizer == "bpe":
        train = members["train"]
        corpus_tok = tk.train_bpe(lambda: (texts[i] for i in train), len(train), s.vocab_size,
                                  s.min_frequency, s.eot, s.progress)
    elif s.tokenizer == "char":
        corpus_tok = tk.build_char((texts[i] for i in kept), s.eot)
    corpus_tok.save(tmp / TOKENIZER_FILE)
    per_token = token_bytes(corpus_tok.tokenizer)
    # 7. shards
    from rlrun.prepare.shards import ShardWriter

    n_tokens = np.full(n, -1, dtype=np.int64)
    splits: dict[str, dict[str, Any]] = {}
    exact_bytes = True
    total = sum(len(texts[i]) for i in kept)
    with tqdm(total=total, desc="encode", unit="char", unit_scale=True, disable=not s.progress,
              leave=False) as bar:
        for sp in SPLITS:
            writer = ShardWriter(tmp, sp, corpus_tok.dtype, s.shard_tokens, corpus_tok.eot_id)
            text_bytes = counted = 0
            for batch in _batches(members[sp], texts):
                for i, ids in zip(batch, corpus_tok.encode_batch([texts[i] for i in batch]),
                                  strict=True):
                    writer.add(ids)
                    n_tokens[i] = len(ids) + 1
                    text_bytes += len(texts[i].encode("utf-8"))
                    counted += int(per_token[ids].sum())
                bar.update(sum(len(texts[i]) for i in batch))
            exact_bytes &= counted == text_bytes
            splits[sp] = {"documents": len(members[sp]), "tokens": writer.tokens,
                          "bytes": text_bytes, "shards": writer.close()}
    # the stage log and meta.json
    from rlrun.prepare.stagelog import write_stages

    write_stages(tmp / STAGES_FILE, {
        "doc": np.arange(n, dtype=np.int64), "source": np.array(src_of, dtype=object),
        "idx": np.array(idx, dtype=np.int64), "bytes": raw_bytes,
        "chars": np.array([len(t) for t in texts], dtype=np.int64),
        "hash": np.array([h.hex() for h in hashes], dtype=object), "fate": fate,
        "dup_of": dup_of, "jaccard": jaccard, "split": split_of, "tokens": n_tokens, **scores})
    meta = {
        "format": FORMAT, "tool": PROG, "vocab_size": corpus_tok.vocab_size,
        "dtype": corpus_tok.dtype, "eot": s.eot, "eot_id": corpus_tok.eot_id,
        "tokenizer": {"kind": corpus_tok.kind, "file": TOKENIZER_FILE,
                      "from": None if s.tokenizer in ("bpe", "char") else s.tokenizer},
        "token_bytes_exact": bool(exact_bytes),
        "splits": splits,
        "documents": {"in": n, "kept": len(kept), "fates": dict(sorted(counts.items()))},
        "input": {"sources": len(sources), "bytes": int(raw_bytes.sum()), "hash": in_hash,
                  "fingerprint": fingerprint},
        "settings": record, "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - t0, 2),
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    tr, va = splits["train"], splits["val"]
    echo(f"{n} documents ({raw_bytes.sum() / 1e6:.1f} MB) from {len(sources)} file(s):"
         f" {_fates(counts)}")
    echo(f"train: {tr['documents']} documents, {tr['tokens']:,} tokens in {len(tr['shards'])}"
         f" shard(s); val: {va['documents']} documents, {va['tokens']:,} tokens in"
         f" {len(va['shards'])} shard(s); vocab {corpus_tok.vocab_size} ({corpus_tok.kind},"
         f" {corpus_tok.dtype})")
    return meta


def _batches(members: list[int], texts: list[str]):
    batch, size = [], 0
    for i in members:
        batch.append(i)
        size += len(texts[i])
        if size >= ENCODE_BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _fates(counts: Counter) -> str:
    order = ["kept", "empty", "exact_dup", "near_dup"]
    keys = [k for k in order if counts.get(k)] + sorted(k for k in counts if k not in order)
    return ", ".join(f"{counts[k]} {k}" for k in keys)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("rlrun", "tokenizers", "rensa"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out
