"""MinHash libraries on one corpus: rensa (what rlrun-prepare keeps) against datatrove and,
when installed, datasketch (docs/prepare.md#libraries).

On the default corpus (the stdlib's source and docs, normalised as rlrun-prepare does):

- speed: each library's whole path from text to signatures, in MB/s of text, alternating
  A/B in this process over `--rounds` rounds (the median is printed; the machine may be
  shared). rensa's path is rlrun-prepare's own (`neardup.shingles` + `neardup.signatures`);
  datatrove's is `MinhashDedupSignature.get_shingles` + `get_signature` (its text
  simplification, word n-grams hashed with xxhash, its permutations), with a whitespace word
  tokenizer, since its English one needs spaCy; datasketch's is `MinHash.bulk` over the same
  shingle strings rlrun-prepare hashes.
- fidelity: every library signs the same shingle sets (rlrun-prepare's 64-bit n-gram hashes);
  against the exact Jaccard of every pair with J >= 0.2 (all pairs are computed with a
  sparse product), the mean absolute error and the bias of the estimate (the fraction of
  equal signature values), and how many pairs with J >= threshold become LSH candidates
  with `bands x rows` banding.

    pip install 'rlrun[prepare]' datatrove 'xxhash<4' datasketch scipy
    python scripts/compare_minhash.py --rounds 3

xxhash < 4: datatrove 0.10 hashes str, which xxhash 4 refuses ("Strings must be encoded").
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import time
from collections import defaultdict
from importlib.metadata import version

import numpy as np

from rlrun.prepare import neardup
from rlrun.prepare.inputs import default_sources, read_documents
from rlrun.prepare.normalize import normalize


def corpus() -> list[str]:
    return [normalize(t) for s in default_sources() for _, t in read_documents(s, False, "")
            if normalize(t).strip()]


def exact_pairs(sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, J) for every pair i < j sharing a shingle: one sparse product."""
    import scipy.sparse as sp

    vocab, cols = np.unique(np.concatenate(sets), return_inverse=True)
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    x = sp.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)),
                      shape=(len(sets), len(vocab)))
    inter = (x @ x.T).tocoo()
    keep = inter.row < inter.col
    i, j, n = inter.row[keep], inter.col[keep], inter.data[keep]
    sizes = np.array([len(s) for s in sets])
    return i, j, n / (sizes[i] + sizes[j] - n)


class _Words:
    """datatrove's WordTokenizer interface over str.split (its English one needs spaCy)."""

    def __new__(cls):
        from datatrove.utils.word_tokenizers import WordTokenizer

        class Split(WordTokenizer):
            def word_tokenize(self, text):
                return text.split()

            def sent_tokenize(self, text):
                return [text]

            def span_tokenize(self, text):
                return [(0, len(text))]

        return Split()


def engines(n_perm: int, seed: int, ngram: int) -> dict:
    """name -> (text path: texts -> signatures, set path: u64 shingle sets -> signatures)."""
    out = {"rensa": (
        lambda texts: neardup.signatures([neardup.shingles(t, ngram) for t in texts], n_perm,
                                         seed),
        lambda sets: neardup.signatures(sets, n_perm, seed))}
    if importlib.util.find_spec("datatrove"):
        from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

        step = MinhashDedupSignature("/tmp/unused-datatrove-out", config=MinhashConfig(
            n_grams=ngram, num_buckets=n_perm // 8, hashes_per_bucket=8, seed=seed),
            language=_Words())

        def dt_sign(sh: np.ndarray) -> np.ndarray:
            if not len(sh):
                return np.full(n_perm, np.iinfo(np.uint64).max, np.uint64)
            return np.array(step.get_signature(sh.reshape(-1, 1)), np.uint64).ravel()

        out["datatrove"] = (lambda texts: [dt_sign(step.get_shingles(t).ravel()) for t in texts],
                            lambda sets: np.stack([dt_sign(s) for s in sets]))
    if importlib.util.find_spec("datasketch"):
        from datasketch import MinHash

        def ds_text(texts):
            grams = []
            for t in texts:
                w = neardup._WORD.findall(t.lower())
                k = min(ngram, len(w))
                grams.append([" ".join(w[i:i + k]).encode() for i in range(len(w) - k + 1)])
            return [m.hashvalues for m in MinHash.bulk(grams, num_perm=n_perm, seed=seed)]

        out["datasketch"] = (ds_text, lambda sets: np.stack([m.hashvalues for m in MinHash.bulk(
            [[int(x).to_bytes(8, "little") for x in s] for s in sets], num_perm=n_perm,
            seed=seed)]))
    return out


def candidates(sig: np.ndarray, bands: int, rows: int) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    for b in range(bands):
        buckets = defaultdict(list)
        for i, row in enumerate(sig[:, b * rows:(b + 1) * rows]):
            buckets[row.tobytes()].append(i)
        for members in buckets.values():
            pairs.update(itertools.combinations(members, 2))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=0.8)
    args = ap.parse_args()
    n_perm = args.bands * args.rows
    texts = corpus()
    mb = sum(len(t.encode()) for t in texts) / 1e6
    sets = [neardup.shingles(t, args.ngram) for t in texts]
    i, j, jac = exact_pairs(sets)
    true = {(a, b) for a, b, s in zip(i, j, jac, strict=True) if s >= args.threshold}
    eng = engines(n_perm, 1, args.ngram)
    times: dict[str, list[float]] = {k: [] for k in eng}
    for _ in range(args.rounds):
        for name, (text_path, _) in eng.items():
            t0 = time.perf_counter()
            text_path(texts)
            times[name].append(time.perf_counter() - t0)
    print(f"{len(texts)} documents, {mb:.1f} MB, {len(i)} pairs sharing a shingle,"
          f" {int((jac >= 0.2).sum())} with J >= 0.2, {len(true)} with J >= {args.threshold};"
          f" {n_perm} permutations, {args.bands} bands x {args.rows} rows")
    print("| library | version | text -> signatures | MB/s | mean abs error | bias |"
          f" candidates at J >= {args.threshold} |")
    print("|---|---|---|---|---|---|---|")
    m = jac >= 0.2
    for name, (_, set_path) in eng.items():
        sig = np.asarray(set_path(sets))
        est = (sig[i[m]] == sig[j[m]]).mean(axis=1)
        err = est - jac[m]
        found = candidates(sig, args.bands, args.rows) & true
        sec = statistics.median(times[name])
        print(f"| {name} | {version(name)} | {sec:.2f} s | {mb / sec:.1f} |"
              f" {np.abs(err).mean():.4f} | {err.mean():+.4f} | {len(found)}/{len(true)} |")
    p = 1 - (1 - args.threshold ** args.rows) ** args.bands
    print(f"expected candidate rate at J = {args.threshold}: {p:.3f}; standard error of one"
          f" estimate at J = 0.5: {np.sqrt(0.25 / n_perm):.4f}")


if __name__ == "__main__":
    main()
