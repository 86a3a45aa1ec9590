"""Speed of the MoE language model against the dense one, on this machine's CPU (or a GPU).

    python scripts/bench_moe.py                      # threads=1, the default network size
    python scripts/bench_moe.py --threads 2 --rounds 5 --device cuda

1. Training tokens/s of the whole model (forward, backward, AdamW step) for `ffn=dense`
   (d_ff), `ffn=mixtral` (8 experts, top-2, d_expert = d_ff / 2: the same active parameters
   per token) and `ffn=switch` (8 experts, top-1, d_expert = d_ff, capacity 1.25). The issue's
   bar: mixtral >= 0.7x dense.
2. One feed-forward layer alone, forward + backward: the dense SwiGLU against the MoE of equal
   active width, with its memory: parameters, the activations autograd saves for backward
   (counted exactly with saved-tensor hooks) and the peak memory growth over one forward +
   backward (CUDA: the allocator's peak; CPU: peak RSS of a fresh process over its RSS before,
   from Linux's VmHWM, reset through /proc/self/clear_refs).

Configurations are timed in alternation (A, B, C, A, B, C, ...) and the median of the rounds is
reported, so load from other processes on a shared machine hits all of them alike. `--clock cpu`
times in this process's CPU time instead of wall time: on a machine shared with other jobs it
leaves out the time the process waits for a core (one thread: the time its work takes).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

from rlrun.algos.lm import LMConfig, make_optimizer
from rlrun.nets.moe import MoE
from rlrun.nets.transformer import SwiGLU, Transformer

MODELS = {
    "dense": dict(ffn="dense"),
    "mixtral 8x top-2": dict(ffn="mixtral", n_experts=8, top_k=2),
    "switch 8x top-1": dict(ffn="switch", n_experts=8),
}


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


CLOCK = time.perf_counter  # --clock cpu: time.process_time


def train_steps(model, opt, batch, steps: int, dev: torch.device) -> float:
    """Seconds for `steps` full training steps on a fixed batch."""
    x, y = batch
    sync(dev)
    t = CLOCK()
    for _ in range(steps):
        logits, aux = model(x)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()) + aux.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(dev)
    return CLOCK() - t


def saved_bytes(fn) -> int:
    """Bytes of the tensors autograd saves for backward while `fn()` runs."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total, out


def make_layers(d: int, f: int, dev: torch.device) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"dense SwiGLU d_ff": SwiGLU(d, f).to(dev),
            "MoE 8x top-2 d_expert=d_ff/2": MoE(d, f // 2, 8, "mixtral", 2).to(dev),
            "MoE 8x top-1 d_expert=d_ff (switch, cf 1.25)":
                MoE(d, f, 8, "switch", 1, 1.25).to(dev)}


def rss_peak_mib(args: argparse.Namespace, name: str) -> float:
    """Growth of the peak resident memory of a fresh process over one layer's forward and
    backward (CPU has no allocator statistics; a fresh process keeps layers apart)."""
    cmd = [sys.executable, __file__, "--mem-child", name, "--threads", str(args.threads),
           "--batch", str(args.batch), "--block", str(args.block),
           "--d-model", str(args.d_model), "--d-ff", str(args.d_ff)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def mem_child(args: argparse.Namespace) -> None:
    layer = make_layers(args.d_model, args.d_ff, torch.device("cpu"))[args.mem_child]
    x = torch.randn(args.batch, args.block, args.d_model, requires_grad=True)
    layer(x[:1, :4]).sum().backward()  # load kernels before measuring
    layer.zero_grad(set_to_none=True)
    x.grad = None
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
        f.write("5")
    before = _status_kib("VmRSS")
    layer(x).pow(2).mean().backward()
    print((_status_kib("VmHWM") - before) / 1024)


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        lines = f.read().splitlines()
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5, help="training steps per timed round")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--d-ff", type=int, default=384)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or this process's CPU time (a shared machine, CPU only)")
    ap.add_argument("--mem-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    global CLOCK
    if args.clock == "cpu":
        if args.device != "cpu":
            raise SystemExit("bench_moe: --clock cpu times the CPU; use --clock wall on a GPU")
        CLOCK = time.process_time
    if args.mem_child:
        return mem_child(args)
    dev = torch.device(args.device)
    vocab = 100
    print(f"torch {torch.__version__}, {args.device}, threads={args.threads}, {args.clock} time,"
          f" batch"
          f" {args.batch} x {args.block} tokens, d_model {args.d_model}, d_ff {args.d_ff},"
          f" {args.layers} layers")

    # ---- 1. whole-model training throughput ----
    torch.manual_seed(0)
    runs = {}
    for name, kw in MODELS.items():
        m = Transformer(vocab, d_model=args.d_model, n_layers=args.layers, n_heads=4,
                        block_size=args.block, d_ff=args.d_ff, **kw).to(dev)
        opt = make_optimizer(m, LMConfig(name="lm", loop="rlrun.algos.lm.run"))
        runs[name] = (m, opt, [])
    x = torch.randint(0, vocab, (args.batch, args.block), device=dev)
    y = torch.randint(0, vocab, (args.batch, args.block), device=dev)
    for m, opt, _ in runs.values():
        train_steps(m, opt, (x, y), 2, dev)  # warm-up
    for _ in range(args.rounds):
        for m, opt, times in runs.values():
            times.append(train_steps(m, opt, (x, y), args.steps, dev))
    tokens = args.steps * x.numel()
    dense_tps = tokens / statistics.median(runs["dense"][2])
    print("\n| model | params | active params | train tokens/s (median) | vs dense |")
    print("|---|---|---|---|---|")
    for name, (m, _, times) in runs.items():
        total, active = m.num_params()
        tps = tokens / statistics.median(times)
        print(f"| {name} | {total / 1e6:.2f}M | {active / 1e6:.3f}M | {tps:,.0f} |"
              f" {tps / dense_tps:.2f}x |")

    # ---- 2. one FFN layer, forward + backward ----
    n_tok, d, f = args.batch * args.block, args.d_model, args.d_ff
    layers = make_layers(d, f, dev)
    xs = torch.randn(args.batch, args.block, d, device=dev, requires_grad=True)
    times = {k: [] for k in layers}
    mem = {}
    for name, layer in layers.items():
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if dev.type == "cuda" else 0
        nbytes, out = saved_bytes(lambda layer=layer: layer(xs))
        out.pow(2).mean().backward()
        peak = torch.cuda.max_memory_allocated() - base if dev.type == "cuda" else None
        mem[name] = (nbytes, peak, rss_peak_mib(args, name) if dev.type == "cpu" else None)
    for _ in range(args.rounds):
        for name, layer in layers.items():
            sync(dev)
            t = CLOCK()
            for _ in range(args.steps * 4):
                layer(xs).pow(2).mean().backward()
            sync(dev)
            times[name].append((CLOCK() - t) / (args.steps * 4))
    base_t = statistics.median(times["dense SwiGLU d_ff"])
    print(f"\n| one FFN layer ({n_tok} tokens, d_model {d}) | fwd+bwd ms (median) | vs dense |"
          " params | saved activations | peak memory growth |")
    print("|---|---|---|---|---|---|")
    for name, layer in layers.items():
        t = statistics.median(times[name])
        params = sum(p.numel() * p.element_size() for p in layer.parameters())
        nbytes, peak, rss = mem[name]
        peak_s = f"{peak / 2**20:.1f} MiB (CUDA)" if peak is not None else f"{rss:.1f} MiB (RSS)"
        print(f"| {name} | {1e3 * t:.2f} | {t / base_t:.2f}x | {params / 2**20:.2f} MiB |"
              f" {nbytes / 2**20:.2f} MiB | {peak_s} |")


if __name__ == "__main__":
    main()
