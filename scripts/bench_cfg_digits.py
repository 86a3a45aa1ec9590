"""Classifier-free guidance on the digits: eval/fid and eval/class_accuracy against w.

    python scripts/bench_cfg_digits.py --out runs/cfg_digits            # 3 seeds, w 0..4
    python scripts/bench_cfg_digits.py --out runs/cfg_digits --steps 1500 --sampler ddpm

1. Training: `rlrun experiment=ddpm/digits algo.conditional=true seed=S` for each seed
   (`--steps` overrides the preset's 3000; the preset's own final evaluation and intermediate
   grids are switched off, step 2 does the measuring). A seed whose run dir already holds a
   completed results.json is not trained again, so the script can be rerun after a stop.
2. For each run and each w of `--weights`: `--samples` samples of the EMA model, the classes
   asked for in turn (0, 1, ..., 9, 0, ...), all from the same noise (seed 100), with
   eps = (1 + w) eps(x, c) - w eps(x) (Ho & Salimans' w; diffusers' guidance_scale is 1 + w),
   scored by the run's own FID classifier (`rlrun.data.fid`): `fid` against half of the real
   digits, its real-vs-real `fid_floor`, and `class_accuracy`, the share of samples the
   classifier assigns to the class asked for. The sampling time of each w is recorded (w = 0
   is one forward of the batch per step, w > 0 one forward of twice the batch).
3. Output, in `--out`: `cfg_digits.json` (every number), a Markdown table (mean and standard
   deviation over the seeds) on stdout, `cfg_digits.png` (FID and class accuracy against w,
   every seed a dot) and, from the first seed, one grid per w with one row per class and the
   same noise in every grid (`grid_w<w>.png`, side by side in `cfg_grids.png`); `--figures DIR`
   copies the two figures there (as `ddpm_cfg_digits.png`, `ddpm_cfg_grids.png`).

Sampling uses `--sampler` (default ddim, 50 steps, eta 0: 20x cheaper than the preset's 1000
ancestral steps; `--sampler ddpm` gives the preset's sampler).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from rlrun.algos.ddpm import DDPMConfig, build, class_rows, sample, save_png
from rlrun.core.checkpoint import load_checkpoint
from rlrun.core.config import validate
from rlrun.core.logger import image_grid
from rlrun.data.fid import FidEvaluator
from rlrun.data.images import ImageDataConfig, load_images


def train(run_dir: Path, seed: int, steps: int | None, threads: int,
          overrides: list[str]) -> float:
    """One conditional run of the preset; its wall time. A run of the same settings that
    completed in run_dir is kept (a run cut short, or one of other settings, is redone)."""
    args = ["experiment=ddpm/digits", "algo.conditional=true", f"seed={seed}",
            f"threads={threads}", "algo.eval_samples=0", "algo.sample_every=0",
            *([f"algo.total_steps={steps}"] if steps else []), *overrides]
    done, same = run_dir / "results.json", run_dir / "bench_args.json"
    if done.is_file() and json.loads(done.read_text()).get("status") == "completed" and \
            same.is_file() and json.loads(same.read_text()) == args:
        return float(json.loads(done.read_text())["wall_time_s"])
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [sys.executable, "-m", "rlrun", *args, "logger.progress=none",
           f"hydra.run.dir={run_dir}"]
    print(" ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)
    same.write_text(json.dumps(args))
    return float(json.loads(done.read_text())["wall_time_s"])


def sweep(run_dir: Path, weights: list[float], n: int, sampler: str, steps: int,
          grids: Path | None) -> list[dict]:
    """FID, its floor and class accuracy of `n` samples at each w, from the same noise."""
    node = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    cfg = validate(node.algo, DDPMConfig, "algo")
    cfg.eta = 0.0
    data = load_images(validate(node.env, ImageDataConfig, "env"))
    _, ema, diff = build(node.network, data, cfg, "cpu")
    ema.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["loop"]["ema"])
    evaluator = FidEvaluator(data, cfg.fid_cache_dir, train_steps=cfg.fid_classifier_steps)
    shape, k = tuple(data.images.shape[1:]), data.n_classes
    asked = torch.arange(n) % k
    rows = []
    for w in weights:
        t0 = time.perf_counter()
        x, _ = sample(ema, diff, cfg, n, shape, 100, sampler, steps, labels=asked, guidance=w)
        seconds = time.perf_counter() - t0
        r = evaluator.evaluate(x, asked)
        rows.append({"w": w, "seconds": seconds, "s_per_image": seconds / n,
                     **{key: r[key] for key in ("fid", "fid_floor", "class_accuracy",
                                                "confident_fraction", "class_coverage",
                                                "classifier_accuracy", "class_counts")}})
        print(f"  w={w:g}: FID {r['fid']:.2f} (floor {r['fid_floor']:.2f}), class accuracy"
              f" {r['class_accuracy']:.1%}, {seconds:.1f} s", flush=True)
        if grids is not None:
            labels = class_rows(k, 8 * k)  # 8 per class, the same noise at every w
            g, _ = sample(ema, diff, cfg, len(labels), shape, 0, sampler, steps, labels=labels,
                          guidance=w)
            save_png(image_grid(g, nrow=8), grids / f"grid_w{w:g}.png")
    return rows


def table(results: dict[int, list[dict]], weights: list[float]) -> str:
    def ms(values: list[float], fmt: str) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{format(statistics.mean(values), fmt)} +- {format(sd, fmt)}"

    lines = ["| w (diffusers s = 1 + w) | eval/fid | floor | eval/class_accuracy |"
             " confident | s / image |", "|---|---|---|---|---|---|"]
    for i, w in enumerate(weights):
        rs = [rows[i] for rows in results.values()]
        lines.append(f"| {w:g} ({1 + w:g}) | {ms([r['fid'] for r in rs], '.2f')} |"
                     f" {statistics.mean(r['fid_floor'] for r in rs):.2f} |"
                     f" {ms([100 * r['class_accuracy'] for r in rs], '.1f')} % |"
                     f" {statistics.mean(r['confident_fraction'] for r in rs):.1%} |"
                     f" {1000 * statistics.mean(r['s_per_image'] for r in rs):.1f} ms |")
    return "\n".join(lines)


def plot(results: dict[int, list[dict]], weights: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, label, scale in ((axes[0], "fid", "eval/fid (lower is better)", 1),
                                  (axes[1], "class_accuracy", "eval/class_accuracy (%)", 100)):
        for seed, rows in results.items():
            ax.plot(weights, [scale * r[key] for r in rows], "o", alpha=0.5, ms=4,
                    label=f"seed {seed}")
        mean = [statistics.mean(scale * rows[i][key] for rows in results.values())
                for i in range(len(weights))]
        ax.plot(weights, mean, "-", color="black", label="mean")
        if key == "fid":
            floor = statistics.mean(r["fid_floor"] for rows in results.values() for r in rows)
            ax.axhline(floor, ls="--", color="grey", label="real vs real floor")
        else:
            real = statistics.mean(r["classifier_accuracy"] for rows in results.values()
                                   for r in rows)
            ax.axhline(100 * real, ls="--", color="grey", label="classifier on real digits")
        ax.set_xlabel("guidance weight w (Ho & Salimans; diffusers' s = 1 + w)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def grids(out: Path, weights: list[float], path: Path) -> None:
    """The first seed's grids at every w side by side (rows: classes 0-9, same noise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(1, len(weights), figsize=(2.4 * len(weights), 3.4))
    for ax, w in zip(np.atleast_1d(axes), weights, strict=True):
        ax.imshow(np.asarray(Image.open(out / f"grid_w{w:g}.png")), cmap="gray", vmin=0,
                  vmax=255, interpolation="nearest")
        ax.set_title(f"w = {w:g} (s = {1 + w:g})", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/cfg_digits"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=None, help="training steps (preset: 3000)")
    p.add_argument("--weights", type=float, nargs="+", default=[0, 0.5, 1, 2, 4])
    p.add_argument("--samples", type=int, default=500, help="samples per FID")
    p.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim")
    p.add_argument("--sample-steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--override", nargs="*", default=[],
                   help="more overrides of the training runs (tests: a smaller UNet)")
    p.add_argument("--figures", type=Path, default=None, help="copy the PNGs here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    walls = {s: train(args.out / f"seed{s}", s, args.steps, args.threads, args.override)
             for s in args.seeds}
    if args.train_only:
        return
    results = {}
    for s in args.seeds:
        print(f"seed {s}:", flush=True)
        results[s] = sweep(args.out / f"seed{s}", args.weights, args.samples, args.sampler,
                           args.sample_steps, args.out if s == args.seeds[0] else None)
    steps = args.steps or 3000
    how = (f"{args.sampler}" + (f" {args.sample_steps} steps" if args.sampler == "ddim" else
                                " 1000 steps") + f", {args.samples} samples per point")
    out = {"seeds": args.seeds, "train_steps": steps, "weights": args.weights,
           "samples": args.samples, "sampler": args.sampler, "sample_steps": args.sample_steps,
           "threads": args.threads, "train_wall_s": walls, "results": results}
    (args.out / "cfg_digits.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nexperiment=ddpm/digits algo.conditional=true, {steps} training steps, {how},"
          f" seeds {args.seeds}\n")
    print(table(results, args.weights))
    plot(results, args.weights, args.out / "cfg_digits.png",
         f"digits, conditional DDPM ({steps} steps), {how}, {len(args.seeds)}"
         f" seed{'s' if len(args.seeds) > 1 else ''}")
    grids(args.out, args.weights, args.out / "cfg_grids.png")
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        for png in ("cfg_digits.png", "cfg_grids.png"):
            shutil.copy(args.out / png, args.figures / f"ddpm_{png}")


if __name__ == "__main__":
    main()
