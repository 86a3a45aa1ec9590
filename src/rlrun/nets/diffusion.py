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
"""

from __future__ import annotations

import math
from collections.abc import Callable

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
             generator: torch.Generator | None = None) -> torch.Tensor:
        """The simple objective: E_{t, eps} |eps - eps_theta(x_t, t)|^2 (uniform t); t and
        eps drawn from `generator` (on x0's device; None: torch's global one)."""
        t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        return (model(self.q_sample(x0, t, noise), t) - noise).pow(2).mean()

    def _x0_eps(self, model: Callable, x: torch.Tensor, t: int,
                clip: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted x_0 (clipped to [-1, 1]) and the eps consistent with it."""
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        eps = model(x, tt)
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
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Draw `shape[0]` images; also return `keep` snapshots from x_T to x_0 (a strip).
        `on_step` is called before each denoising step (the run's stop check: sampling a
        thousand steps is the longest thing a DDPM run does outside training)."""
        if sampler not in ("ddpm", "ddim"):
            raise ConfigError(f"algo.sampler={sampler!r}: use ddpm or ddim")
        if variance not in ("beta", "beta_tilde"):
            raise ConfigError(f"algo.ddpm_variance={variance!r}: use beta or beta_tilde")

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
            x0, eps = self._x0_eps(model, x, t, clip)
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
