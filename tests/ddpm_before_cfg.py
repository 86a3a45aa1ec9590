"""The DDPM loop of src/rlrun/algos/ddpm.py as it was before classifier-free guidance (commit
a8bd313), frozen here so that tests/test_guidance.py can show that a run with
algo.conditional=false trains exactly as before: the same parameters after the same steps.
Do not edit."""
# ruff: noqa

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rlrun.core.logger import image_grid
from rlrun.data.images import ImageData, load_images
from rlrun.nets import build_network
from rlrun.nets.diffusion import Diffusion, make_betas
from rlrun.schemas.ddpm import DDPMConfig


def build(ctx_network: Any, data: ImageData, cfg: DDPMConfig, device: str):
    """The UNet, its EMA copy and the diffusion process, on `device`."""
    c, size = data.images.shape[1], data.images.shape[-1]
    net = build_network(ctx_network, in_channels=c, image_size=size).to(device)
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    diff = Diffusion(make_betas(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end,
                                cfg.cosine_s), device)
    return net, ema, diff


def sample(ema: AveragedModel, diff: Diffusion, cfg: DDPMConfig, n: int, shape: tuple,
           seed: int, sampler: str | None = None, steps: int | None = None,
           keep: int = 0, on_step: Any = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """n images from the EMA model in chunks of `cfg.sample_batch`, from noise of a fixed
    seed (grids at different steps start from the same x_T; the run's RNG is not touched).
    `on_step`: called at every denoising step (`ctx.check_stop`, to honour Ctrl-C)."""
    sampler = sampler or cfg.sampler
    g = torch.Generator().manual_seed(seed)
    model = ema.module.eval()
    out, snaps = [], []
    for i in range(0, n, cfg.sample_batch):
        m = min(cfg.sample_batch, n - i)
        x, s = diff.sample(model, (m, *shape), sampler,
                           steps if steps is not None else cfg.sample_steps, cfg.eta,
                           cfg.ddpm_variance, cfg.clip_denoised, g, keep if i == 0 else 0,
                           on_step)
        out.append(x.cpu())
        snaps = snaps or s
    return torch.cat(out), snaps


def save_png(grid: Any, path: Path, scale: int = 4) -> None:
    """A (C, H, W) grid in [0, 1] as a PNG, enlarged `scale` times (nearest neighbour)."""
    import numpy as np

    try:
        from PIL import Image
    except ImportError:  # TensorBoard still has the images
        logging.getLogger("rlrun").warning("no Pillow: %s not written (pip install"
                                           " 'rlrun[diffusion]')", path.name)
        return
    import io

    from rlrun.core.checkpoint import atomic_write_bytes

    arr = (np.asarray(grid).transpose(1, 2, 0) * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    buf = io.BytesIO()
    img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST).save(buf, "PNG")
    atomic_write_bytes(Path(path), buf.getvalue())  # whole or not at all; a disk error names it


def save_npy(path: Path, array: Any) -> None:
    """`np.save`, atomically, and a disk error names the file."""
    import io

    import numpy as np

    from rlrun.core.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_image_sampler(ctx: Any) -> Callable[[int, str, int], torch.Tensor]:
    """rlrun-eval's hook: `sample(n, sampler, steps) -> images` in [-1, 1] from the EMA
    model, from the noise of the run's final grid (seed `ctx.seed`)."""
    data = load_images(ctx.env)
    _, ema, diff = build(ctx.network, data, ctx.algo, ctx.device)
    ctx.track(ema=ema)  # the loop's name
    ctx.resume()
    shape = tuple(data.images.shape[1:])
    return lambda n, sampler, steps: sample(ema, diff, ctx.algo, n, shape, ctx.seed, sampler,
                                            steps)[0]


def run(ctx) -> None:
    cfg: DDPMConfig = ctx.algo
    dev, dist = torch.device(ctx.device), ctx.dist  # dist: ranks under torchrun
    data = load_images(ctx.env)
    if cfg.eval_samples:
        from rlrun.data.fid import check_labels

        check_labels(data)  # fail now rather than after training
    x_all = data.images.to(dev)
    shape = tuple(x_all.shape[1:])
    net, ema, diff = build(ctx.network, data, cfg, ctx.device)
    ddp = dist.wrap(net)  # DDP under torchrun; net itself on one process
    # Each rank draws its own batches, t and noise, and its own dropout (torch's global RNG);
    # the net is the same on every rank (DDP).
    draws = torch.Generator(device=dev).manual_seed(ctx.seed_of("batches"))
    torch.manual_seed(ctx.seed_of("torch"))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0)
    st: dict[str, Any] = {"loss_sum": torch.zeros((), device=dev), "loss_n": 0}

    ctx.track(net=net, ema=ema, opt=opt, sched=sched, counters=st)
    ctx.track_per_rank(draws=draws)
    ctx.resume()

    log, last_loss = ctx.logger, None
    t_last, step_last = time.perf_counter(), ctx.step
    ctx.start_progress(cfg.total_steps)
    net.train()
    while ctx.step < cfg.total_steps:
        idx = torch.randint(0, len(x_all), (cfg.batch_size,), device=dev, generator=draws)
        loss = diff.loss(ddp, x_all[idx], generator=draws)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        ema.update_parameters(net)  # net is the same on every rank: so is the EMA
        st["loss_sum"] = st["loss_sum"] + loss.detach()
        st["loss_n"] += 1
        step = ctx.step + 1
        if ctx.every("log", cfg.log_every, step) or step == cfg.total_steps:
            last_loss = dist.mean(st["loss_sum"]) / st["loss_n"]  # since the last log, ranks
            now = time.perf_counter()
            log.scalars({"losses/noise_mse": last_loss,
                         "charts/images_per_s": (step - step_last) * cfg.batch_size
                         * dist.world_size / max(now - t_last, 1e-9),
                         "charts/learning_rate": sched.get_last_lr()[0]}, step)
            st.update(loss_sum=torch.zeros((), device=dev), loss_n=0)
            t_last, step_last = now, step
        if ctx.every("samples", cfg.sample_every, step) and step < cfg.total_steps \
                and dist.is_main:
            grid = image_grid(sample(ema, diff, cfg, cfg.grid_samples, shape, ctx.seed)[0])
            log.image("diffusion/samples", grid, step)
            net.train()
            t_last = time.perf_counter()  # sampling time is not training throughput
        if ctx.tick(step, last_loss):
            break
    ctx.finish(final=lambda: _finish(ctx, cfg, ema, diff, data, shape))


def _finish(ctx, cfg: DDPMConfig, ema, diff: Diffusion, data: ImageData, shape: tuple) -> None:
    """Final sample grid, the denoising strip and the sample-quality numbers."""
    import numpy as np

    log, step = ctx.logger, ctx.step
    stop = ctx.check_stop
    grid_x, _ = sample(ema, diff, cfg, cfg.grid_samples, shape, ctx.seed, on_step=stop)
    grid = image_grid(grid_x)
    log.image("diffusion/samples", grid, step)
    save_png(grid, ctx.run_dir / "samples.png")
    _, snaps = sample(ema, diff, cfg, cfg.strip_rows, shape, ctx.seed + 1,
                      keep=cfg.strip_columns, on_step=stop)
    strip = torch.stack(snaps, 1).flatten(0, 1)  # row r: sample r from x_T to x_0
    strip_grid = image_grid(strip.clamp(-1, 1), nrow=len(snaps))
    log.image("diffusion/denoising", strip_grid, step)
    save_png(strip_grid, ctx.run_dir / "denoising.png")
    if not cfg.eval_samples:
        return
    from rlrun.data.fid import FidEvaluator

    stop()
    evaluator = FidEvaluator(data, cfg.fid_cache_dir, train_steps=cfg.fid_classifier_steps)
    t0 = time.perf_counter()
    samples, _ = sample(ema, diff, cfg, cfg.eval_samples, shape, ctx.seed + 2, on_step=stop)
    seconds = time.perf_counter() - t0
    stop()
    r = evaluator.evaluate(samples)
    log.scalars({f"eval/{k}": r[k] for k in ("fid", "fid_floor", "fid_samples",
                                             "confident_fraction", "confident_fraction_real",
                                             "class_coverage", "classifier_accuracy")}, step)
    log.scalar("eval/sampling_s_per_image", seconds / cfg.eval_samples, step)
    n_steps = len(diff.timesteps_for(cfg.sampler, cfg.sample_steps))
    log.text("eval/summary", (
        f"FID {r['fid']:.3f} over {r['fid_samples']} {cfg.sampler} samples ({n_steps} steps)"
        f" vs real-vs-real floor {r['fid_floor']:.3f} ({r['floor_samples']} held-out real images"
        f" vs the reference half); confident (p > 0.9): "
        f"{r['confident_fraction']:.1%} (real images: {r['confident_fraction_real']:.1%});"
        f" confident labels per class: {r['class_counts']}; classifier held-out accuracy "
        f"{r['classifier_accuracy']:.1%}; sampling {seconds:.1f} s"), step)
    ctx.logger.flush()
    save_npy(ctx.run_dir / "class_counts.npy", np.asarray(r["class_counts"]))
