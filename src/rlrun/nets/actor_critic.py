"""Policy and value heads of the deep RL loops, built around `network=` MLPs.

Every body comes from `build_network(cfg.network, in_dim=..., out_dim=...)`, so a user's own
network config (`_target_` plus sizes) plugs in. Networks that are evaluated together (SAC's
and TD3's twin Q, PPO's and A2C's actor and critic) are stacked into one `EnsembleMLP`
(ensemble.py): each layer is one batched matmul over the ensemble instead of one small
matmul per network. All of it is plain autograd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlrun.nets.ensemble import EnsembleMLP


class QEnsemble(nn.Module):
    """Q(s, a) for E critics at once, (E, B); without actions, state values V(s)."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.net = EnsembleMLP(members)

    def forward(self, obs: torch.Tensor, act: torch.Tensor | None = None) -> torch.Tensor:
        x = obs if act is None else torch.cat([obs, act], -1)
        return self.net(x).squeeze(-1)


class SquashedGaussianActor(nn.Module):
    """tanh(N(mu, sigma)) scaled to the action box, with the change-of-variables correction
    log pi(a) = log N(u) - sum log(1 - tanh(u)^2), written stably as
    2 (log 2 - u - softplus(-2u)) (as in SAC's appendix C and SpinningUp)."""

    def __init__(self, body: nn.Module, low: torch.Tensor, high: torch.Tensor,
                 log_std_min: float = -5.0, log_std_max: float = 2.0):
        super().__init__()
        self.body = body
        self.register_buffer("scale", ((high - low) / 2).float())
        self.register_buffer("bias", ((high + low) / 2).float())
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, obs: torch.Tensor, noise: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sampled action, its log-prob, deterministic action), actions in env units.
        `noise`: the standard normal draw to use (e.g. temporally correlated in rollouts)."""
        mu, log_std = self.body(obs).chunk(2, -1)
        # CleanRL's soft clamp: tanh then rescale, so gradients never vanish at the bounds.
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (
            torch.tanh(log_std) + 1)
        std = log_std.exp()
        u = mu + std * (torch.randn_like(mu) if noise is None else noise)
        log_prob = gaussian_log_prob(u, mu, log_std) - tanh_log_det(u).sum(-1) \
            - self.scale.log().sum()
        return (torch.tanh(u) * self.scale + self.bias, log_prob,
                torch.tanh(mu) * self.scale + self.bias)


def gumbel(u: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel draws from uniform ones (u = 0 clamped so that log stays finite)."""
    return -torch.log(-torch.log(u.clamp_(min=1e-20)))


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mu, exp(log_std)^2), summed over the last dimension."""
    z = (x - mu) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """log(1 - tanh(u)^2), elementwise, without the 1 - tanh^2 underflow."""
    return 2 * (math.log(2) - u - F.softplus(-2 * u))


def layer_init(module: nn.Module, gain: float = math.sqrt(2), out_gain: float | None = None
               ) -> nn.Module:
    """Orthogonal weights and zero biases (the PPO implementation detail of CleanRL/SB3);
    the last Linear gets `out_gain` (0.01 for a policy, 1 for a value head)."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    for i, lin in enumerate(linears):
        g = out_gain if (i == len(linears) - 1 and out_gain is not None) else gain
        nn.init.orthogonal_(lin.weight, g)
        nn.init.zeros_(lin.bias)
    return module


class ActorCritic(nn.Module):
    """Policy and value bodies; Categorical logits for Discrete actions, a Gaussian with
    state-independent log-std for Box actions (PPO, A2C).

    Same-shaped actor and critic MLPs run as one `EnsembleMLP` (half the kernel launches of
    two networks; for classic-control sizes that is most of an update). The distributions
    are written out rather than built as `torch.distributions` objects: constructing those
    costs more than these tiny networks, and the rollout builds one every env step.
    Categorical actions are drawn by Gumbel-max (argmax of logits + Gumbel noise), so a
    rollout's draws can be taken in one call (`draw_noise`) and replayed by `act`, `step` or
    PPO's CPU fast path alike: the same seed then gives the same actions on either path.
    """

    def __init__(self, actor: nn.Module, critic: nn.Module, continuous: bool, act_dim: int,
                 log_std_init: float = 0.0):
        super().__init__()
        self.body = EnsembleMLP([actor, critic])
        self.continuous, self.act_dim = continuous, act_dim
        if continuous:
            self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(policy output: logits or mean, state value)."""
        y = self.body(obs)
        return y[0, ..., :self.act_dim], y[1, ..., 0]

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.heads(obs)[1]

    def act(self, obs: torch.Tensor, deterministic: bool = False,
            noise: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, its log-prob, value) for a batch of observations; deterministic: the mode.
        `noise`: this call's random draws from `draw_noise` (default: drawn here)."""
        out, value = self.heads(obs)
        if self.continuous:
            eps = torch.randn_like(out) if noise is None else noise
            a = out if deterministic else out + self.log_std.exp() * eps
            return a, gaussian_log_prob(a, out, self.log_std.expand_as(out)), value
        logp_all = torch.log_softmax(out, -1)
        if deterministic:
            a = out.argmax(-1)
        else:  # Gumbel-max: one sample per row without building a distribution
            a = (out + (gumbel(torch.rand_like(out)) if noise is None else noise)).argmax(-1)
        return a, logp_all.gather(-1, a[..., None]).squeeze(-1), value

    def draw_noise(self, *batch: int) -> torch.Tensor:
        """The random draws of `batch` act() calls (e.g. a rollout's T x N), in one call to
        torch's generator: standard normal for Gaussian actions, Gumbel for Categorical ones
        (argmax of logits + Gumbel noise is a sample)."""
        shape, dev = (*batch, self.act_dim), self.param_device()
        if self.continuous:
            return torch.randn(shape, device=dev)
        return gumbel(torch.rand(shape, device=dev))

    def param_device(self) -> torch.device:
        return next(iter(self.parameters())).device

    def step(self, obs: np.ndarray, noise: torch.Tensor | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """act() from and to numpy, for a rollout or evaluation step (noise None: the mode)."""
        with torch.no_grad():
            x = torch.as_tensor(obs, dtype=torch.float32, device=self.param_device())
            a, logp, v = self.act(x, noise is None, noise)
        return a.cpu().numpy(), logp.cpu().numpy(), v.cpu().numpy()

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-prob of `actions`, entropy, value) under the current parameters."""
        out, value = self.heads(obs)
        if self.continuous:
            log_std = self.log_std.expand_as(out)
            entropy = (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)
            return gaussian_log_prob(actions, out, log_std), entropy, value
        logp_all = torch.log_softmax(out, -1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return logp_all.gather(-1, actions.long()[..., None]).squeeze(-1), entropy, value
