"""Stage 3: near-duplicate removal with MinHash LSH.

A document's shingles are its word n-grams (`ngram=5` words, lowercased `\\w+` runs, so
punctuation and layout do not matter; a document shorter than n words is one shingle). Its
MinHash signature (`bands x rows` values, 14 x 8 = 112 by default) comes from rensa's
R-MinHash, over 64-bit hashes of the shingles. LSH banding (the signature cut into `bands`
bands of `rows` values; two documents that agree on a whole band are candidates) makes a
pair of Jaccard similarity s a candidate with probability 1 - (1 - s^rows)^bands: 0.92 at
s = 0.8 with 14 x 8, the S-curve's midpoint (1/bands)^(1/rows) = 0.72 sitting below the
threshold. Each candidate pair is then confirmed by the exact Jaccard of the shingle sets,
so the estimate's error (about 0.04 at 112 permutations) never decides a fate.

Documents are visited in input order: one whose exact Jaccard with an earlier *kept*
document reaches `threshold` is a `near_dup` of it (the most similar one); otherwise it is
kept and joins the index. Chains (A ~ B, B ~ C, A !~ C) therefore keep C.

The banding is a few lines of NumPy here: rensa's own LSH index queries `RMinHash` objects,
while the signatures come back from worker processes as one matrix per file.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

_WORD = re.compile(r"\w+")
# odd 64-bit multipliers combining the word hashes of an n-gram (a polynomial hash mod 2^64)
_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                  0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53,
                  0x94D049BB133111EB, 0xBF58476D1CE4E5B9], dtype=np.uint64)


def shingles(text: str, n: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of the document's word n-grams (empty: no words)."""
    from rensa import RMinHash

    words = _WORD.findall(text.lower())
    if not words:
        return np.zeros(0, dtype=np.uint64)
    w = np.array(RMinHash.hash_token_sets([words])[0], dtype=np.uint64)
    k = min(n, len(w))
    span = len(w) - k + 1
    g = np.zeros(span, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            g = g * _MULT[j % len(_MULT)] + w[j:j + span]
        g ^= g >> np.uint64(31)
    return np.unique(g)


def signatures(shingle_sets: list[np.ndarray], num_perm: int, seed: int) -> np.ndarray:
    """R-MinHash signatures (documents x num_perm, uint32) of shingle hash sets."""
    from rensa import RMinHash

    if not shingle_sets:
        return np.zeros((0, num_perm), dtype=np.uint32)
    flat = np.concatenate(shingle_sets) if shingle_sets else np.zeros(0, np.uint64)
    offsets = np.zeros(len(shingle_sets) + 1, dtype=np.uint64)
    offsets[1:] = np.cumsum([len(s) for s in shingle_sets])
    matrix = RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, num_perm=num_perm,
                                                           seed=seed)
    return np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(len(shingle_sets), num_perm)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 1.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (len(a) + len(b) - inter)


def near_duplicates(sigs: np.ndarray, alive: list[bool], shingles_of, bands: int, rows: int,
                    threshold: float) -> tuple[list[int | None], list[float | None]]:
    """For each document: the earlier kept document it nearly duplicates (or None), and the
    highest exact Jaccard with any earlier kept candidate (None when it had none).

    `sigs` holds one signature row per document; `alive[i]` False leaves document i out
    (already removed, or without words); `shingles_of(i)` returns its shingle set."""
    n = len(alive)
    dup_of: list[int | None] = [None] * n
    best: list[float | None] = [None] * n
    if not n:
        return dup_of, best
    band_keys = [np.ascontiguousarray(sigs[:, b * rows:(b + 1) * rows]).view(
        np.dtype((np.void, rows * 4))).ravel() for b in range(bands)]
    index: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in range(bands)]
    cache: dict[int, np.ndarray] = {}

    def sh(i: int) -> np.ndarray:
        if i not in cache:
            cache[i] = shingles_of(i)
        return cache[i]

    for i in range(n):
        if not alive[i]:
            continue
        keys = [band_keys[b][i].tobytes() for b in range(bands)]
        candidates = sorted({j for b in range(bands) for j in index[b].get(keys[b], ())})
        top, top_j = -1.0, None
        for j in candidates:
            s = jaccard(sh(i), sh(j))
            if s > top:
                top, top_j = s, j
        if candidates:
            best[i] = top
        if top_j is not None and top >= threshold:
            dup_of[i] = top_j
        else:
            for b in range(bands):
                index[b][keys[b]].append(i)
    return dup_of, best
