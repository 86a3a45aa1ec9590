"""Policy and value heads of the deep RL loops, built around `network=` MLPs.

Every body comes from `build_network(cfg.network, in_dim=..., out_dim=...)`, so a user's own
network config (`_target_` plus sizes) plugs in. Critics that are evaluated together (SAC's
and TD3's twin Q) are fused into one `EnsembleMLP`: each layer is one batched matmul over the
ensemble instead of one small matmul per critic, which is most of SAC's update on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleMLP(nn.Module):
    """E copies of an MLP evaluated in one go: input (B, in) or (E, B, in) -> (E, B, out).

    Built from E already-initialised `nn.Sequential` MLPs (Linear, activation, ..., Linear),
    so it starts with exactly their weights. Members may differ in output size (an actor and
    a critic): the last layer is zero-padded to the largest and `out_dims` says how many
    outputs of each member are real (the padding gets no gradient, so it stays zero).
    Other module types are kept as a list and run one after another (correct, not fused).
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.n = len(members)
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in members] \
            if all(isinstance(net, nn.Sequential) for net in members) else None
        acts = [m for m in members[0] if not isinstance(m, nn.Linear)] if linears else []
        self.fused = bool(linears) and len(acts) == len(linears[0]) - 1 and \
            len(linears[0]) + len(acts) == len(members[0]) and all(
                [lin.weight.shape for lin in lins[:-1]] ==
                [lin.weight.shape for lin in linears[0][:-1]] for lins in linears)
        self.out_dims = [int(list(net.parameters())[-1].shape[0]) for net in members]
        if not self.fused:
            self.members = nn.ModuleList(members)
            return
        out = max(self.out_dims)

        def pad(t: torch.Tensor) -> torch.Tensor:  # last dim up to `out`
            return torch.nn.functional.pad(t, (0, out - t.shape[-1]))

        n_layers = len(linears[0])
        self.weights = nn.ParameterList(nn.Parameter(torch.stack(
            [(pad if i == n_layers - 1 else (lambda t: t))(lins[i].weight.detach().t())
             for lins in linears])) for i in range(n_layers))
        self.biases = nn.ParameterList(nn.Parameter(torch.stack(
            [(pad if i == n_layers - 1 else (lambda t: t))(lins[i].bias.detach()[None])
             for lins in linears])) for i in range(n_layers))
        self.acts = nn.ModuleList(acts)
        # the functional form of the usual activations skips a Module call per layer
        fns = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh}
        self._act_fns = [fns.get(type(a), a) for a in acts]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            outs = [m(x) for m in self.members]
            n = max(self.out_dims)
            return torch.stack([torch.nn.functional.pad(o, (0, n - o.shape[-1]))
                                for o in outs])
        if x.dim() == 2:
            x = x.expand(self.n, *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = self._act_fns[i](x)
        return x


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

    def act(self, obs: torch.Tensor, deterministic: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, its log-prob, value) for a batch of observations; deterministic: the mode."""
        out, value = self.heads(obs)
        if self.continuous:
            a = out if deterministic else out + self.log_std.exp() * torch.randn_like(out)
            return a, gaussian_log_prob(a, out, self.log_std.expand_as(out)), value
        logp_all = torch.log_softmax(out, -1)
        if deterministic:
            a = out.argmax(-1)
        else:  # Gumbel-max: one sample per row without building a distribution
            u = torch.rand_like(out).clamp_(1e-20, 1.0)
            a = (logp_all - torch.log(-torch.log(u))).argmax(-1)
        return a, logp_all.gather(-1, a[..., None]).squeeze(-1), value

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
