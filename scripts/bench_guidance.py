"""The cost of classifier-free guidance: guided against unguided sampling, in one process.

    python scripts/bench_guidance.py                     # threads=1, ~5 minutes on 2 busy cores
    python scripts/bench_guidance.py --images 64 --rounds 5 --ddpm-timesteps 1000

1. DDPM, the digits preset's UNet (configs/experiment/ddpm/digits.yaml: ch 32, ch_mult
   [1, 2, 2], one residual block per level, attention at 4x4; 8x8 images, ten classes), random
   weights (time does not depend on them), eval mode. Per sampler (DDIM over 50 of T = 1000
   steps; the ancestral DDPM sampler over all of `--ddpm-timesteps`, 100 by default: its cost
   per step is the same at any T, so the ratios hold for the preset's T = 1000) and per batch
   of `--images`:
   - `uncond`: today's unconditional UNet, the baseline;
   - `cond w=0`: the class-conditional UNet, labels, no guidance (one forward of B per step);
   - `guided w=2`: eps_hat = 3 eps(x, c) - 2 eps(x), both branches in one forward of 2B;
   - `two passes`: the same guidance from two forwards of B (what batching saves), whose
     samples the batched ones must equal (max |difference| is printed).
2. LM, the default network (d_model 128, 2 layers, 4 heads, block 64; vocabulary 100), a
   20-character prompt, `--chars` characters decoded with the KV cache, greedy and sampled
   (temperature 0.8): plain decoding against CFG decoding at gamma = 1.5 (two contexts, each
   with its cache: two length-1 forwards per character).

Configurations are timed in alternation (A, B, C, ... A, B, C, ...) and the median of the rounds
is reported, so load from other processes hits all of them alike. Ratios are against the
unguided run of the same table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlrun.nets.decode import generate
from rlrun.nets.diffusion import Diffusion, make_betas
from rlrun.nets.transformer import Transformer
from rlrun.nets.unet import UNet

DIGITS_UNET = dict(ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[4], groups=8,
                   dropout=0.1)


def alternate(fns: dict, rounds: int) -> tuple[dict[str, float], dict]:
    """Median seconds of each function over `rounds`, run in alternation, and its last
    result."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    out: dict = {}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            out[k] = fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}, out


def ddpm_costs(images: list[int], rounds: int, ddpm_timesteps: int, w: float = 2.0) -> None:
    torch.manual_seed(0)
    uncond = UNet(1, 8, **DIGITS_UNET).eval()
    torch.manual_seed(0)
    cond = UNet(1, 8, **DIGITS_UNET, n_classes=10).eval()
    with torch.no_grad():  # the zero-initialised output convs would make eps = 0
        for net in (uncond, cond):
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
    print("## DDPM: guided against unguided sampling (digits UNet, 8x8, 10 classes)\n")
    print("| sampler | steps | images | uncond | cond w=0 | guided w=2 (one forward) |"
          " two passes | guided / uncond | two passes / one | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for sampler, T, steps in (("ddim", 1000, 50), ("ddpm", ddpm_timesteps, None)):
        d = Diffusion(make_betas("linear", T))
        n_steps = len(d.timesteps_for(sampler, steps))
        for n in images:
            y = torch.arange(n) % 10
            null = torch.full_like(y, cond.null_class)

            def two_passes(x, t, y=y, null=null):
                return (1 + w) * cond(x, t, y) - w * cond(x, t, null)

            def draw(model, sampler=sampler, steps=steps, d=d, n=n, **kw):
                return d.sample(model, (n, 1, 8, 8), sampler, steps,
                                generator=torch.Generator().manual_seed(0), **kw)[0]

            t, out = alternate({
                "uncond": lambda: draw(uncond),
                "cond": lambda y=y: draw(cond, labels=y),
                "guided": lambda y=y: draw(cond, labels=y, guidance=w),
                "two": lambda: draw(two_passes),
            }, rounds)
            diff = float((out["guided"] - out["two"]).abs().max())
            print(f"| {sampler} | {n_steps} | {n} | {t['uncond']:.2f} s | {t['cond']:.2f} s |"
                  f" {t['guided']:.2f} s | {t['two']:.2f} s | {t['guided'] / t['uncond']:.2f}x"
                  f" | {t['two'] / t['guided']:.2f}x | {diff:.1e} |", flush=True)
    print()


def lm_costs(chars: int, rounds: int, gamma: float = 1.5) -> None:
    torch.manual_seed(0)
    m = Transformer(100).eval()  # configs/network/transformer.yaml's sizes
    prompt = list(range(1, 21))
    print(f"## LM: CFG decoding (gamma={gamma}) against plain decoding, {chars} characters,"
          " KV cache\n")
    print("| decoding | plain | CFG | CFG / plain | CFG tok/s |")
    print("|---|---|---|---|---|")
    for name, kw in (("greedy", dict(greedy=True)), ("sampled, T=0.8", dict(temperature=0.8))):
        def run(scale=None, kw=kw):
            g = torch.Generator().manual_seed(0)
            return generate(m, prompt, chars, generator=g, guidance_scale=scale, **kw)

        t, _ = alternate({"plain": run, "cfg": lambda: run(gamma)}, rounds)
        print(f"| {name} | {t['plain']:.3f} s | {t['cfg']:.3f} s |"
              f" {t['cfg'] / t['plain']:.2f}x | {chars / t['cfg']:,.0f} |", flush=True)
    print()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, nargs="+", default=[16, 64],
                   help="batch sizes of the DDPM tables (64: a sample grid)")
    p.add_argument("--ddpm-timesteps", type=int, default=100,
                   help="T of the ancestral DDPM sampler's table (all T steps are run)")
    p.add_argument("--chars", type=int, default=200, help="characters per LM decode")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lm-rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, threads={args.threads}, median of {args.rounds}"
          f" (DDPM) and {args.lm_rounds} (LM) alternating rounds\n")
    lm_costs(args.chars, args.lm_rounds)
    ddpm_costs(args.images, args.rounds, args.ddpm_timesteps)


if __name__ == "__main__":
    main()
