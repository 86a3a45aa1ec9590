"""Stage 2: exact deduplication on a hash of the normalised text.

The first document with a given text is kept; every later one is an `exact_dup` of it. The
same 128-bit BLAKE2b hash places a document in the train or validation split (`split`), so
one document always lands in one split whatever else the corpus holds.
"""

from __future__ import annotations

import hashlib


def text_hash(text: str) -> bytes:
    """16 bytes of BLAKE2b over the UTF-8 text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def exact_duplicates(hashes: list[bytes], alive: list[bool]) -> list[int | None]:
    """For each document, the index of the earlier document with the same hash (None when it
    is the first); documents with `alive[i]` False are neither compared nor kept."""
    first: dict[bytes, int] = {}
    out: list[int | None] = []
    for i, (h, ok) in enumerate(zip(hashes, alive, strict=True)):
        if not ok:
            out.append(None)
            continue
        j = first.setdefault(h, i)
        out.append(None if j == i else j)
    return out
