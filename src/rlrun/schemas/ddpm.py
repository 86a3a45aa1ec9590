"""Settings of DDPM (Ho et al. 2020; loop: rlrun.algos.ddpm; docs/ddpm.md). The defaults are
the paper's; experiment=ddpm/digits is the small CPU preset. `conditional`, `p_uncond` and
`guidance` are classifier-free guidance (Ho & Salimans 2022; docs/ddpm.md, Classifier-free
guidance)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rlrun.core.errors import ConfigError
from rlrun.core.schema import AlgoSchema, AlgoSpec, opt

SCHEDULES = ("linear", "cosine")


@dataclass
class DDPMConfig(AlgoSchema):
    spec: ClassVar[AlgoSpec] = AlgoSpec(
        task_kinds=("images",), objective="eval/fid", goal="min", headline="losses/noise_mse",
        minimize=("eval/fid_floor", "eval/sampling_s_per_image"),
        logged_tags=("charts/*", "losses/*", "eval/*"),
        network_inputs=("in_channels", "image_size"), data_parallel=True, parallel_ops=True,
        # the sample grids use their own noise: how often they are drawn, and the guidance
        # they are drawn with, change no training
        resume_keys=(*AlgoSpec.resume_keys, r"algo\.sample_every", r"algo\.guidance"))

    total_steps: int = opt(20_000, "optimizer steps", ge=1)
    batch_size: int = opt(128, "images per step (per rank under torchrun)", ge=1)
    lr: float = opt(2e-4, "learning rate (Adam)", gt=0)
    warmup_steps: int = opt(500, "linear learning-rate warm-up", ge=0)
    grad_clip: float = opt(1.0, "max gradient norm; 0: off", ge=0)
    timesteps: int = opt(1000, "diffusion steps T", ge=1)
    schedule: str = opt("linear", "the beta schedule: linear (Ho et al.: beta_start ..."
                                  " beta_end) or cosine (improved DDPM, s=cosine_s)",
                        choices=SCHEDULES)
    beta_start: float = opt(1e-4, "linear schedule: beta_1", gt=0, lt=1)
    beta_end: float = opt(0.02, "linear schedule: beta_T", gt=0, lt=1)
    cosine_s: float = opt(0.008, "cosine schedule: the offset s of Nichol & Dhariwal", ge=0)
    ema_decay: float = opt(0.9999, "decay of the EMA copy of the weights (the copy samples)",
                           ge=0, lt=1)
    sampler: str = opt("ddpm", "ddpm: ancestral over all T steps; ddim: sample_steps steps",
                       choices=("ddpm", "ddim"))
    sample_steps: int = opt(50, "ddim only: denoising steps", ge=1)
    eta: float = opt(0.0, "ddim only: 0 deterministic .. 1 the DDPM posterior noise", ge=0,
                     le=1)
    ddpm_variance: str = opt("beta", "sigma_t^2 of the ddpm sampler: beta or beta_tilde (the"
                                     " posterior's)", choices=("beta", "beta_tilde"))
    clip_denoised: bool = opt(True, "clip the predicted x_0 to [-1, 1] while sampling")
    sample_every: int = opt(5000, "steps between EMA sample grids (diffusion/samples); 0: at"
                                  " the end only", ge=0)
    grid_samples: int = opt(64, "images in a sample grid", ge=1)
    strip_rows: int = opt(8, "denoising strip (diffusion/denoising): this many samples ...",
                          ge=1)
    strip_columns: int = opt(10, "... shown at this many points from x_T to x_0", ge=1)
    eval_samples: int = opt(500, "samples for eval/fid and eval/confident_fraction at the end;"
                                 " 0: no evaluation", ge=0)
    sample_batch: int = opt(500, "images per network call while sampling", ge=1)
    fid_cache_dir: str | None = opt(None, "where the FID classifier is cached; null:"
                                          " ~/.cache/rlrun/fid")
    fid_classifier_steps: int = opt(1500, "training steps of that classifier (once per data"
                                          " set)", ge=1)
    log_every: int = opt(50, "steps between loss logs", ge=1)
    conditional: bool = opt(False, "class-conditional UNet (a learned class embedding; the"
                                   " data set's labels) trained with label dropout, for"
                                   " classifier-free guidance; grids get one row per class")
    p_uncond: float = opt(0.1, "conditional: share of the labels dropped to the learned null"
                               " class while training, so one network learns eps(x, c) and"
                               " eps(x)", ge=0, lt=1)
    guidance: float = opt(0.0, "conditional: guidance weight w of the grids and evaluation"
                               " samples, eps = (1 + w) eps(x, c) - w eps(x) (Ho & Salimans;"
                               " diffusers' guidance_scale is 1 + w); 0: plain conditional",
                          ge=0)

    def __post_init__(self) -> None:
        if self.eval_samples == 1:
            raise ConfigError("eval_samples=1: a Frechet distance needs >= 2 samples (or 0)")
        if not self.beta_start < self.beta_end:
            raise ConfigError(f"beta_start={self.beta_start} must be below beta_end="
                              f"{self.beta_end}")
        if self.guidance and not self.conditional:
            raise ConfigError(f"guidance={self.guidance:g} needs conditional=true: guidance"
                              " mixes the class-conditional and unconditional noise"
                              " predictions of a class-conditional model")

    def check_network(self, network: Any, env: Any) -> None:
        """The UNet's levels must halve env.size evenly (the images are resized to it)."""
        if "ch_mult" in network and getattr(env, "size", None):
            from rlrun.schemas.networks import check_unet_size

            check_unet_size(int(env.size), [int(m) for m in network.ch_mult])

    def check_env(self, env: Any, data: bool = True) -> None:
        """A conditional model needs the data set's class labels: an image folder without
        one sub-folder per class has none (found from the folder's layout, no decoding)."""
        if data and self.conditional:
            from rlrun.data.images import has_labels

            if not has_labels(env):
                raise ConfigError(
                    f"algo.conditional=true needs class labels, and env={env.name} has none: put"
                    " the images in one sub-folder per class, or set algo.conditional=false")
