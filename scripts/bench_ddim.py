"""DDIM with few steps vs the 1000-step DDPM sampler, on the EMA weights of a finished run.

    rlrun experiment=ddpm/digits threads=1 hydra.run.dir=outputs/ddpm_digits
    python scripts/bench_ddim.py outputs/ddpm_digits --samples 500 --steps 50

For each sampler: FID (and its real-vs-real floor at the same number of samples), the share
of confidently classified samples, and the sampling time per image. Timings alternate
(DDPM, DDIM, DDPM, DDIM) so that other load on the machine hits both alike; the FIDs come
from the first pass of each, the times are averaged over both passes (the second on
`--time-samples` images). Results are printed as a Markdown table and saved next to the run
as bench_ddim.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from rlrun.algos.ddpm import DDPMConfig, build, sample
from rlrun.core.checkpoint import load_checkpoint
from rlrun.core.config import validate
from rlrun.data.fid import FidEvaluator
from rlrun.data.images import ImageDataConfig, load_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a finished `rlrun algo=ddpm` run")
    p.add_argument("--samples", type=int, default=500, help="samples per FID")
    p.add_argument("--time-samples", type=int, default=100, help="samples in the 2nd pass")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    node = OmegaConf.load(args.run_dir / ".hydra" / "config.yaml")
    cfg = validate(node.algo, DDPMConfig, "algo")
    cfg.eta = args.eta
    data = load_images(validate(node.env, ImageDataConfig, "env"))
    net, ema, diff = build(node.network, data, cfg, "cpu")
    ema.load_state_dict(load_checkpoint(args.run_dir / "checkpoints" / "last.pt")["loop"]["ema"])
    evaluator = FidEvaluator(data, cfg.fid_cache_dir, train_steps=cfg.fid_classifier_steps)
    shape = tuple(data.images.shape[1:])
    samplers = {"ddpm": ("ddpm", None), "ddim": ("ddim", args.steps)}
    rows: dict[str, dict] = {k: {"seconds": 0.0, "images": 0} for k in samplers}
    for n, seed in ((args.samples, 100), (args.time_samples, 200)):
        for name, (sampler, steps) in samplers.items():  # A, B, A, B
            t0 = time.perf_counter()
            x, _ = sample(ema, diff, cfg, n, shape, seed, sampler=sampler, steps=steps)
            rows[name]["seconds"] += time.perf_counter() - t0
            rows[name]["images"] += n
            if seed == 100:
                rows[name].update(evaluator.evaluate(x))
            print(f"{name} n={n}: {time.perf_counter() - t0:.1f} s", flush=True)
    for r in rows.values():
        r["s_per_image"] = r["seconds"] / r["images"]
    speedup = rows["ddpm"]["s_per_image"] / rows["ddim"]["s_per_image"]
    print(f"\n{args.samples} samples per FID, threads={args.threads}, DDIM eta={args.eta}\n")
    print("| sampler | steps | FID | floor | confident | classes | s / image |")
    print("|---|---|---|---|---|---|---|")
    for name, (sampler, steps) in samplers.items():
        r = rows[name]
        print(f"| {sampler} | {len(diff.timesteps_for(sampler, steps))} | {r['fid']:.2f} |"
              f" {r['fid_floor']:.2f} | {r['confident_fraction']:.1%} |"
              f" {r['class_coverage'] * evaluator.n_classes:.0f}/{evaluator.n_classes} |"
              f" {r['s_per_image'] * 1000:.1f} ms |")
    print(f"\nDDIM is {speedup:.1f}x faster per image")
    out = {"samples": args.samples, "ddim_steps": args.steps, "eta": args.eta,
           "threads": args.threads, "speedup": speedup, **rows}
    (args.run_dir / "bench_ddim.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
