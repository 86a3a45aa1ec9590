"""KV-cache decoding and grouped-query attention of the LM, measured on this machine.

    python scripts/bench_lm_decode.py                    # threads=1, ~2 minutes on 2 busy cores
    python scripts/bench_lm_decode.py --rounds 5 --lengths 64 256 512

1. Decode tokens/s with and without the KV cache at several lengths (greedy, batch 1, the
   default network size but `block_size` = the longest length, so no context cut interferes).
   Without the cache each new character recomputes the whole prefix (O(T) per token); with it
   one length-1 forward reads the cache.
2. The cache's size measured (the bytes its tensors' storages hold, after prefilling and
   decoding to the full length) against the formula 2 x layers x kv_heads x head_dim x
   bytes_per_element x tokens, for MHA, GQA (n_heads / 4) and MQA, float32 and bfloat16.
3. How K/V heads reach their query groups: `expand` (repeat_interleave, then SDPA) against
   SDPA's own `enable_gqa`, timed on a training step's attention (forward + backward) and on
   decode steps.

Configurations are timed in alternation (A, B, A, B, ...) and the median of the rounds is
reported, so load from other processes on a shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlrun.nets import transformer as tr
from rlrun.nets.decode import KVCache, cache_bytes, generate
from rlrun.nets.transformer import Transformer


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternate(fns: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each function, run in alternation."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def decode_speed(lengths: list[int], rounds: int, prompt: int = 8) -> None:
    print("## Decode speed (greedy, batch 1, d_model 128, 2 layers, 4 heads)\n")
    print("| generated chars | no cache tok/s | KV cache tok/s | speed-up | same tokens |")
    print("|---|---|---|---|---|")
    for n in lengths:
        torch.manual_seed(0)
        m = Transformer(100, block_size=prompt + n).eval()
        p = list(range(prompt))
        same = generate(m, p, n, greedy=True) == generate(m, p, n, greedy=True, cache=False)
        t = alternate({"no": lambda m=m, p=p, n=n: generate(m, p, n, greedy=True, cache=False),
                       "kv": lambda m=m, p=p, n=n: generate(m, p, n, greedy=True)}, rounds)
        print(f"| {n} | {n / t['no']:,.0f} | {n / t['kv']:,.0f} | {t['no'] / t['kv']:.2f}x"
              f" | {same} |")
    print()


def cache_sizes(tokens: int = 64) -> None:
    print(f"## KV-cache bytes at {tokens} tokens (d_model 128, 2 layers, 8 heads of 16)\n")
    print("| attention | kv heads | dtype | measured bytes | formula bytes | vs MHA |")
    print("|---|---|---|---|---|---|")
    for dtype, elem in ((torch.float32, 4), (torch.bfloat16, 2)):
        mha = None
        for name, kv in (("MHA", None), ("GQA (n_heads/4)", 2), ("MQA", 1)):
            torch.manual_seed(0)
            m = Transformer(100, n_heads=8, n_kv_heads=kv, block_size=tokens).to(dtype).eval()
            c = KVCache.for_model(m)
            m(torch.zeros(1, tokens // 2, dtype=torch.long), c)  # prefill half
            with torch.no_grad():
                while c.length < tokens:  # then decode to full
                    m(torch.zeros(1, 1, dtype=torch.long), c)
            measured = c.nbytes()
            formula = cache_bytes(len(m.blocks), m.n_kv_heads, m.head_dim, elem, tokens)
            mha = mha or measured
            ratio = f"{mha / measured:.0f}x smaller" if kv else "1x"
            print(f"| {name} | {m.n_kv_heads} | {str(dtype)[6:]} | {measured:,} | {formula:,}"
                  f" | {ratio} |")
    print()


def gqa_modes(rounds: int) -> None:
    if len(tr.GQA_MODES) < 2:
        print("## GQA: this torch has no SDPA enable_gqa; expand is the only path\n")
        return
    print("## GQA: repeat_interleave K/V (expand) vs SDPA enable_gqa (8 query heads)\n")
    print("| case | kv heads | expand ms | enable_gqa ms | enable_gqa / expand |")
    print("|---|---|---|---|---|")
    for kv in (2, 1):
        torch.manual_seed(0)
        q = torch.randn(32, 8, 64, 16, requires_grad=True)
        k = torch.randn(32, kv, 64, 16, requires_grad=True)
        v = torch.randn(32, kv, 64, 16, requires_grad=True)

        def train(mode, q=q, k=k, v=v):
            for _ in range(10):
                tr.attend(q, k, v, mode=mode).sum().backward()

        qd, kd, vd = q[:1, :, :1].detach(), k[:1].detach(), v[:1].detach()

        def decode(mode, qd=qd, kd=kd, vd=vd):
            with torch.no_grad():
                for _ in range(200):
                    tr.attend(qd, kd, vd, past=63, mode=mode)

        for case, fn, n in (("train step (B 32, T 64, fwd+bwd)", train, 10),
                            ("decode step (T 1 over 64 cached)", decode, 200)):
            t = alternate({m: lambda m=m, fn=fn: fn(m) for m in ("expand", "enable_gqa")},
                          rounds)
            print(f"| {case} | {kv} | {1e3 * t['expand'] / n:.3f} |"
                  f" {1e3 * t['enable_gqa'] / n:.3f} | {t['enable_gqa'] / t['expand']:.2f} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 512])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} thread(s), median of {a.rounds} rounds\n")
    cache_sizes()
    gqa_modes(a.rounds)
    decode_speed(a.lengths, a.rounds)


if __name__ == "__main__":
    main()
