"""The Gaussian diffusion process of DDPM (Ho et al. 2020) and its two samplers.

Forward process: q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), abar_t = prod_{s<=t} alpha_s,
alpha_t = 1 - beta_t. The network predicts the noise eps; the loss is its MSE.

Samplers, both batched, under `torch.no_grad`, both predicting x_0 from eps and clipping it
to the data range [-1, 1] (as Ho et al.'s code does):
- `ddpm`: ancestral sampling over all T steps, x_{t-1} ~ N(mu~_t(x_t, x0_hat), sigma_t^2),
  sigma_t^2 = beta_t (`variance="beta"`, Ho et al.'s choice) or the posterior beta~_t.
- `ddim` (Song et al. 2021): a sub-sequence of S steps, x_prev = sqrt(abar_prev) x0_hat
  + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z, sigma = eta sqrt(beta~) for the jump.
  eta=1 over all T steps is exactly the `ddpm` sampler with `variance="beta_tilde"`.
Indices: t = 0 .. T-1 here stand for the paper's 1 .. T.

Classifier-free guidance (Ho & Salimans 2022), for a class-conditional model
`model(x, t, y)` whose label `model.null_class` is the unconditional branch:
- training drops each label to the null class with probability p_uncond (`drop_labels`), so
  one network learns eps(x, c) and eps(x);
- both samplers take `labels` and a guidance weight w and use
  eps_hat = (1 + w) eps(x, c) - w eps(x) in place of eps (`guided_eps`). This is Ho &
  Salimans' w; diffusers' `guidance_scale` is s = 1 + w (eps_u + s (eps_c - eps_u)), so
  w = 0 is plain conditional sampling and s = 1 is the same thing. The two branches are one
  forward of the batch twice over (labels, then null labels); w = 0 skips the unconditional
  half and is exactly conditional sampling. The guided eps goes through the same x_0
  prediction and clipping as an unguided one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from rlrun.core.errors import ConfigError
from rlrun.schemas.ddpm import SCHEDULES


def make_betas(schedule: str, timesteps: int, beta_start: float = 1e-4,
               beta_end: float = 0.02, cosine_s: float = 0.008) -> torch.Tensor:
    """beta_1..beta_T in float64: `linear` (Ho et al.) or `cosine` (Nichol & Dhariwal 2021:
    abar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), betas clipped at 0.999)."""
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    if schedule == "cosine":
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((steps + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
        abar = f / f[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ConfigError(f"algo.schedule={schedule!r}: use {' or '.join(SCHEDULES)}")


def drop_labels(labels: torch.Tensor, p_uncond: float, null_class: int,
                generator: torch.Generator | np.random.Generator | None = None) -> torch.Tensor:
    """`labels` with each one replaced by `null_class` with probability `p_uncond` (CFG
    training's label dropout). The draw comes from `generator` (a torch Generator on any
    device, or a NumPy Generator; None: torch's global RNG) and is made even at
    p_uncond = 0, so p_uncond changes no other random number of a run."""
    if not 0 <= p_uncond < 1:
        raise ConfigError(f"p_uncond={p_uncond} must be in [0, 1): the share of labels"
                          " dropped to the null class")
    if isinstance(generator, np.random.Generator):
        drop = torch.from_numpy(generator.random(tuple(labels.shape)) < p_uncond)
    else:
        dev = generator.device if generator is not None else labels.device
        drop = torch.rand(labels.shape, generator=generator, device=dev) < p_uncond
    return labels.masked_fill(drop.to(labels.device), null_class)


def guided_eps(model: Callable, x: torch.Tensor, t: torch.Tensor,
               labels: torch.Tensor | None = None, guidance: float = 0.0) -> torch.Tensor:
    """eps_theta at (x, t): unconditional (`labels` None), conditional (w = `guidance` 0) or
    guided, eps_hat = (1 + w) eps(x, c) - w eps(x), from one forward of [x; x] with labels
    [c; null] (`model.null_class`)."""
    if labels is None:
        if guidance:
            raise ValueError("guidance needs class labels (and a class-conditional model)")
        return model(x, t)
    if not guidance:
        return model(x, t, labels)
    null = getattr(model, "null_class", None)
    if null is None:
        raise ValueError("guidance needs a class-conditional model (one with a null_class)")
    eps_c, eps_u = model(torch.cat([x, x]), torch.cat([t, t]),
                         torch.cat([labels, torch.full_like(labels, null)])).chunk(2)
    return (1 + guidance) * eps_c - guidance * eps_u


class Diffusion:
    """Schedule tensors (float64 for the arithmetic, cast per use) and the samplers."""

    def __init__(self, betas: torch.Tensor, device: str | torch.device = "cpu"):
        self.T = len(betas)
        self.betas = betas.double()
        self.alphas = 1 - self.betas
        self.abar = torch.cumprod(self.alphas, 0)
        self.abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.abar[:-1]])
        # posterior q(x_{t-1} | x_t, x_0) = N(c0 x_0 + ct x_t, beta~_t)
        self.post_var = self.betas * (1 - self.abar_prev) / (1 - self.abar)
        self.post_c0 = self.betas * self.abar_prev.sqrt() / (1 - self.abar)
        self.post_ct = (1 - self.abar_prev) * self.alphas.sqrt() / (1 - self.abar)
        self.device = torch.device(device)
        self._f32 = {k: getattr(self, k).float().to(self.device) for k in
                     ("betas", "abar", "abar_prev", "post_var", "post_c0", "post_ct")}

    def _at(self, name: str, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return self._f32[name][t].reshape(-1, *([1] * (ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        abar = self._at("abar", t, x0.ndim)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def loss(self, model: Callable, x0: torch.Tensor,
             labels: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """The simple objective: E_{t, eps} |eps - eps_theta(x_t, t[, y])|^2 (uniform t);
        `labels` (already dropped to the null class where CFG training wants) go to the
        model; t and eps drawn from `generator` (on x0's device; None: torch's global one).
        The random draws are the same with and without labels."""
        t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        xt = self.q_sample(x0, t, noise)
        pred = model(xt, t) if labels is None else model(xt, t, labels)
        return (pred - noise).pow(2).mean()

    def _x0_eps(self, model: Callable, x: torch.Tensor, t: int, clip: bool,
                labels: torch.Tensor | None = None,
                guidance: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted x_0 (clipped to [-1, 1]) and the eps consistent with it."""
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        eps = guided_eps(model, x, tt, labels, guidance)
        abar = self._f32["abar"][t]
        x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - abar.sqrt() * x0) / (1 - abar).sqrt()
        return x0, eps

    def timesteps_for(self, sampler: str, steps: int | None) -> list[int]:
        """The steps visited, from T-1 down to 0: all of them (ddpm) or S evenly spaced."""
        if sampler == "ddpm" or steps is None or steps >= self.T:
            return list(range(self.T - 1, -1, -1))
        if steps < 1:
            raise ConfigError(f"algo.sample_steps={steps} must be >= 1")
        return sorted({round(i * (self.T - 1) / max(1, steps - 1)) for i in range(steps)},
                      reverse=True)

    @torch.no_grad()
    def sample(self, model: Callable, shape: tuple[int, ...], sampler: str = "ddpm",
               steps: int | None = None, eta: float = 0.0, variance: str = "beta",
               clip: bool = True, generator: torch.Generator | None = None,
               keep: int = 0, on_step: Callable[[], None] | None = None,
               labels: torch.Tensor | None = None, guidance: float = 0.0,
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Draw `shape[0]` images; also return `keep` snapshots from x_T to x_0 (a strip).
        `on_step` is called before each denoising step (the run's stop check: sampling a
        thousand steps is the longest thing a DDPM run does outside training).
        A class-conditional model takes `labels` (shape[0],), one class per image, and
        `guidance` w (module docstring); the noise drawn is the same whatever they are, so
        grids at different w start from the same x_T."""
        if sampler not in ("ddpm", "ddim"):
            raise ConfigError(f"algo.sampler={sampler!r}: use ddpm or ddim")
        if variance not in ("beta", "beta_tilde"):
            raise ConfigError(f"algo.ddpm_variance={variance!r}: use beta or beta_tilde")
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long, device=self.device)
            if labels.shape != (shape[0],):
                raise ValueError(f"labels of shape {tuple(labels.shape)}: need one per image,"
                                 f" ({shape[0]},)")

        def noise() -> torch.Tensor:
            return torch.randn(shape, generator=generator, device="cpu").to(self.device)

        x = noise()
        ts = self.timesteps_for(sampler, steps)
        # positions 0 (x_T) .. len(ts) (x_0) of the strip, evenly spaced
        snaps_at = {round(j * len(ts) / max(1, keep - 1)) for j in range(keep)} if keep else set()
        snaps = [x.clone()] if 0 in snaps_at else []
        for i, t in enumerate(ts):
            if on_step is not None:
                on_step()
            x0, eps = self._x0_eps(model, x, t, clip, labels, guidance)
            if sampler == "ddpm":
                mean = self._f32["post_c0"][t] * x0 + self._f32["post_ct"][t] * x
                var = self._f32["betas" if variance == "beta" else "post_var"][t]
            else:
                t_prev = ts[i + 1] if i + 1 < len(ts) else -1
                a_t = self._f32["abar"][t]
                a_prev = self._f32["abar"][t_prev] if t_prev >= 0 else torch.ones_like(a_t)
                var = eta ** 2 * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
                mean = a_prev.sqrt() * x0 + (1 - a_prev - var).clamp(min=0).sqrt() * eps
            x = mean + var.sqrt() * noise() if t > 0 else mean
            if i + 1 in snaps_at:
                snaps.append(x.clone())
        return x, snaps
