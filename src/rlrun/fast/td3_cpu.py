"""TD3's (and DDPG's) CPU fast path: the critic and actor steps with their backward written out.

At rl-zoo's Pendulum sizes (400x300 critics and actor, 256 rows) the 400x300 products are
most of an update and Stable-Baselines3 runs the same ones. A plain update (`td3.critic_loss`
and `td3.actor_loss` under autograd, ~12 ms on one core) also spent ~3 ms elsewhere: the thin
first and last layers' products in the orientation torch's CPU GEMM is slow at (a stacked
400x4 weight gradient: ~240 us as autograd takes it, ~40 us transposed), autograd's copies of
the stacked critics' gradients into their parameters, and the per-tensor bookkeeping of two
optimisers and the Polyak update. This module runs the same steps with the
same products and draws:

- the critic step: the target as the plain code computes it (the target actor module, its
  smoothing noise, the target critics' minimum), the online critics' forward and backward
  written out on their stacked weights (`ppo_cpu._forward`, `_backward`: narrow products
  transposed), the MSE gradient in closed form (d/dQ_i of sum_i mean (Q_i - y)^2 is
  2 (Q_i - y) / B), one packed gradient (`FlatParams`) for one Adam tensor;
- the actor step: mu(s) = tanh(body(s)) * scale + bias by `addmm`, the first critic's
  forward on its slice of the stacked weights (as `td3.first_critic`), the gradient of
  -mean Q_1(s, mu(s)) with respect to the action by its transposed products (the critics
  get no weight gradient: the plain code freezes them), d mu / d body = scale (1 - tanh^2),
  and the actor's backward with its narrow first layer transposed (`actor_backward`, SAC's
  too);
- the Polyak update of the targets: two packed tensors (the actor's and the critics') for
  the plain code's twelve.

`select` is what `algo.fast_path` means (auto: a CPU, relu MLPs whose critics are stacked,
float32, no compile). tests/test_fast_paths.py holds it to the plain code: both steps'
losses, gradients and parameters, and a short TD3 and DDPG run with the path on and off, up
to float rounding (the written-out sums round differently from autograd's).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rlrun.fast.dqn_cpu import _forward as mlp_forward
from rlrun.fast.flat import FlatParams, flat_data
from rlrun.fast.option import choose
from rlrun.fast.ppo_cpu import _backward as ensemble_backward
from rlrun.fast.ppo_cpu import _forward as ensemble_forward
from rlrun.nets.mlp import MLP


def why_not(nets: dict[str, nn.Module], device: str) -> str | None:
    """Why the fast path cannot run these networks (an actor with a `body`, stacked critics
    `qf`; SAC's are checked here too), or None when it can."""
    if torch.device(device).type != "cpu":
        return f"it runs on the CPU only (device={device})"
    body, critics = nets["actor"].body, nets["qf"].net
    if not isinstance(body, MLP) or not critics.fused:
        return "it needs an MLP network (network=mlp)"
    acts = {type(m) for m in body if not isinstance(m, nn.Linear)} | \
        {type(a) for a in critics.acts}
    if acts != {nn.ReLU}:
        return "it needs relu activations (network.activation=relu)"
    if any(p.dtype != torch.float32 for n in nets.values() for p in n.parameters()):
        return "it needs float32 parameters"
    return None


def select(cfg: Any, nets: dict[str, nn.Module], device: str) -> FastTD3 | None:
    """What TD3's `cfg.fast_path` (with `cfg.compile`) means here: the fast path, or None."""
    return choose(cfg, lambda: why_not(nets, device), lambda: FastTD3(nets))


def _mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """a (M, K) @ b (K, N) (into `out`), computed as (b^T a^T)^T when N is narrow and M is
    not: torch's CPU GEMM is slow for narrow outputs (ppo_cpu.bmm's rule in two dimensions)."""
    if b.shape[1] < 16 and b.shape[1] < a.shape[0]:
        c = b.t().mm(a.t()).t()
        return c if out is None else out.copy_(c)
    return a.mm(b) if out is None else torch.mm(a, b, out=out)


def actor_backward(hs: list[torch.Tensor], ws: list[torch.Tensor], g: torch.Tensor,
                   gws: list[torch.Tensor], gbs: list[torch.Tensor]) -> None:
    """A relu MLP's backward (`dqn_cpu._backward`'s products, narrow ones transposed) from
    g = dL/d(output) and the forward's list, into the gradients `gws`, `gbs`; none for the
    input. The first layer's weight gradient is narrow (hidden x obs_dim): 124 us at 400x3
    as autograd takes it, 23 us transposed."""
    for i in reversed(range(len(ws))):
        _mm(g.t(), hs[i], out=gws[i])
        torch.sum(g, 0, out=gbs[i])
        if i > 0:
            g = torch.ops.aten.threshold_backward(g.mm(ws[i]), hs[i], 0)


class PackedActorCritic:
    """An actor (`body` an MLP) and stacked critics `qf` (with `qf_target`) read for a written
    -out update (SAC's too): their parameters packed (`q_params`, `pi_params` for the
    optimisers), the layers' weights, biases and gradient views."""

    def __init__(self, nets: dict[str, nn.Module]):
        self.nets = nets
        actor, critics = nets["actor"], nets["qf"].net
        self.e = critics.n  # the stacked critics
        self.q_packed = FlatParams(nets["qf"])  # re-points the parameters into one tensor
        self.pi_packed = FlatParams(actor)
        self.q_params, self.pi_params = [self.q_packed.param], [self.pi_packed.param]
        self.qgrads = [p.grad for p in self.q_packed.params]  # weights, then biases
        self.qw = tuple(critics.weights._parameters.values())
        self.qb = tuple(critics.biases._parameters.values())
        target = nets["qf_target"].net
        self.tw = tuple(target.weights._parameters.values())
        self.tb = tuple(target.biases._parameters.values())
        linears = [m for m in actor.body if isinstance(m, nn.Linear)]
        self.aw, self.ab = [m.weight for m in linears], [m.bias for m in linears]
        self.agw, self.agb = [w.grad for w in self.aw], [b.grad for b in self.ab]


class FastTD3(PackedActorCritic):
    """The fast path for one TD3/DDPG agent: `q_params` and `pi_params` for the optimisers,
    `critic_step` and `actor_step` for the update (each ends with its optimiser's step), and
    `polyak` for the target update."""

    def __init__(self, nets: dict[str, nn.Module]):
        super().__init__(nets)
        # the targets packed the same way (same order), so Polyak is one lerp per network
        self.targets = [flat_data(nets["actor_target"]), flat_data(nets["qf_target"])]
        self.sources = [self.pi_packed.param.data, self.q_packed.param.data]

    @torch.no_grad()
    def critic_step(self, b: dict[str, torch.Tensor], gamma: float, policy_noise: float,
                    noise_clip: float, q_opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        """`td3.critic_loss`, its backward and `q_opt.step()`; the losses."""
        from rlrun.algos.td3 import smoothed_target_action  # the plain target, same draw

        next_a = smoothed_target_action(self.nets["actor_target"], b["next_obs"],
                                        policy_noise, noise_clip)
        x = torch.cat([b["next_obs"], next_a], -1)
        next_q = ensemble_forward(x.expand(self.e, *x.shape), self.tw, self.tb,
                                  "relu")[-1].squeeze(-1).min(0).values
        target = b["rewards"] + gamma * (1 - b["terminated"]) * next_q
        x = torch.cat([b["obs"], b["actions"]], -1)
        hs = ensemble_forward(x.expand(self.e, *x.shape), self.qw, self.qb, "relu")
        q = hs[-1].squeeze(-1)
        err = q - target
        per_q = err.pow(2).mean(-1)
        ensemble_backward(hs, self.qw, (err * (2.0 / len(target))).unsqueeze(-1), "relu",
                          out=self.qgrads)
        q_opt.step()
        out = {f"qf{i + 1}": per_q[i] for i in range(self.e)}
        return {**out, "critic": per_q.sum(), "q_values": q.mean()}

    @torch.no_grad()
    def actor_step(self, obs: torch.Tensor, pi_opt: torch.optim.Optimizer
                   ) -> dict[str, torch.Tensor]:
        """`td3.actor_loss` (-mean Q_1(s, mu(s))), its backward and `pi_opt.step()`."""
        actor = self.nets["actor"]
        hs = mlp_forward(obs, self.aw, self.ab, "relu", keep=True)
        t = torch.tanh(hs[-1])
        x = torch.cat([obs, t * actor.scale + actor.bias], -1)
        qs = [x]  # the first critic alone: its slice of the stacked weights
        for i, (w, bias) in enumerate(zip(self.qw, self.qb, strict=True)):
            h = torch.addmm(bias[0, 0], qs[-1], w[0].t())
            qs.append(h.relu_() if i < len(self.qw) - 1 else h)
        n = len(obs)
        out = {"actor": -qs[-1][:, 0].mean()}
        g = torch.full((n, 1), -1.0 / n)  # d(-mean Q_1)/dQ_1, back to the action
        for i in reversed(range(len(self.qw))):
            g = _mm(g, self.qw[i][0])
            if i > 0:
                g = torch.ops.aten.threshold_backward(g, qs[i], 0)
        g = g[:, obs.shape[1]:] * actor.scale * (1 - t * t)
        actor_backward(hs, self.aw, g, self.agw, self.agb)
        pi_opt.step()
        return out

    @torch.no_grad()
    def polyak(self, tau: float) -> None:
        """The targets' lerp toward the online networks (the plain loop's `_foreach_lerp_`)."""
        torch._foreach_lerp_(self.targets, self.sources, tau)
