"""SAC's CPU fast path: the critic and actor steps of SAC v2 with their backward written out.

At SAC's sizes on a CPU (256x256 twin critics and actor, 256 rows) the matrix products are
about two thirds of an update and Stable-Baselines3 runs the same ones; the rest is
autograd's bookkeeping over ~150 small operations, the squashed Gaussian's elementwise graph
and the optimiser's per-tensor loops. This module runs the same steps with the same draws:

- the critic step: the target as the plain code computes it (the actor module under
  no_grad, the target critics), the online critics' forward and backward written out on
  their stacked weights (`ppo_cpu._forward`, `_backward`), the MSE gradient in closed form,
  one packed gradient (`FlatParams`) for one Adam tensor;
- the actor step: the actor body by `addmm`, the squashed Gaussian and its log-probability
  with their gradient in closed form (below), the critics' input gradient by the same
  written-out backward (their weights get none, as the plain code freezes them), alpha's
  gradient in closed form.

With a = tanh(u) * scale + bias, u = mu + std * eps, log_std = lo + (hi - lo)(tanh(p) + 1)/2,
z = (u - mu) / std and log pi = sum(-z^2/2 - log_std - log(2 pi)/2) - sum(log(1 - tanh(u)^2))
- sum(log scale):
    d log pi / du = -z / std + 2 tanh(u);  d log pi / d mu = z / std (direct);
    d log pi / d log_std = z^2 - 1 (direct);  du/dmu = 1;  du/dlog_std = std * eps;
    d log_std / dp = (hi - lo)(1 - tanh(p)^2) / 2.
The actor loss is mean(alpha log pi - min_i Q_i(s, a)) and alpha's is
-mean(alpha (log pi + H)) with d/dlog_alpha = -mean(alpha (log pi + H)).

`select` is what `algo.fast_path` means (auto: a CPU, SAC v2, relu MLPs whose critics are
stacked, float32, no compile). tests/test_fast_paths.py holds it to the plain code: the two
steps' losses, gradients and parameters, and a short run with the path on and off, up to
float rounding (the written-out sums round differently from autograd's).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rlrun.fast.dqn_cpu import _forward as mlp_forward
from rlrun.fast.option import choose
from rlrun.fast.ppo_cpu import _backward as ensemble_backward
from rlrun.fast.ppo_cpu import _forward as ensemble_forward
from rlrun.fast.td3_cpu import PackedActorCritic, actor_backward
from rlrun.fast.td3_cpu import why_not as actor_critic_why_not
from rlrun.nets.actor_critic import gaussian_log_prob, tanh_log_det


def why_not(nets: dict[str, nn.Module], cfg: Any, device: str) -> str | None:
    """Why the fast path cannot run these networks, or None when it can: TD3's conditions (a
    CPU, relu MLPs with stacked critics, float32) and SAC v2."""
    reason = actor_critic_why_not(nets, device)
    if reason is None and cfg.variant != "v2":
        return "it runs SAC v2 only (algo.variant=v2)"
    return reason


def select(cfg: Any, nets: dict[str, nn.Module], device: str) -> FastSAC | None:
    """What SAC's `cfg.fast_path` (with `cfg.compile`) means here: the fast path, or None."""
    return choose(cfg, lambda: why_not(nets, cfg, device), lambda: FastSAC(nets))


class FastSAC(PackedActorCritic):
    """The fast path for one SAC v2 agent: `q_params` and `pi_params` for the optimisers,
    `critic_step` and `actor_step` for the update (each ends with its optimiser's step)."""

    def __init__(self, nets: dict[str, nn.Module]):
        super().__init__(nets)
        self.log_scale = float(nets["actor"].scale.log().sum())

    @torch.no_grad()
    def critic_step(self, b: dict[str, torch.Tensor], log_alpha: torch.Tensor, gamma: float,
                    q_opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        """`sac.critic_loss` (v2), its backward and `q_opt.step()`; the losses."""
        alpha = log_alpha.exp()
        next_a, next_logp, _ = self.nets["actor"](b["next_obs"])  # the plain draw
        n = len(next_a)
        x = torch.cat([b["next_obs"], next_a], -1)
        next_q = ensemble_forward(x.expand(self.e, *x.shape), self.tw, self.tb,
                                  "relu")[-1].squeeze(-1)
        target = b["rewards"] + gamma * (1 - b["terminated"]) * (
            next_q.min(0).values - alpha * next_logp)
        x = torch.cat([b["obs"], b["actions"]], -1)
        hs = ensemble_forward(x.expand(self.e, *x.shape), self.qw, self.qb, "relu")
        q = hs[-1].squeeze(-1)
        err = q - target
        per_q = err.pow(2).mean(-1)
        ensemble_backward(hs, self.qw, (err * (2.0 / n)).unsqueeze(-1), "relu",
                          out=self.qgrads)
        q_opt.step()
        return {"qf1": per_q[0], "qf2": per_q[1], "q_values": q.mean(), "critic": per_q.sum()}

    @torch.no_grad()
    def actor_step(self, obs: torch.Tensor, log_alpha: torch.Tensor, target_entropy: float,
                   autotune: bool, pi_opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        """`sac.actor_loss`, its backward (alpha's too when autotuned) and `pi_opt.step()`."""
        actor = self.nets["actor"]
        hs = mlp_forward(obs, self.aw, self.ab, "relu", keep=True)
        h = hs[-1]
        n, act_dim = h.shape[0], h.shape[1] // 2
        mu, pre = h[:, :act_dim], h[:, act_dim:]
        lo, hi = actor.log_std_min, actor.log_std_max
        t = torch.tanh(pre)
        log_std = lo + 0.5 * (hi - lo) * (t + 1)
        std = log_std.exp()
        eps = torch.randn_like(mu)  # the plain actor's draw, at the same point of the stream
        u = mu + std * eps
        z = (u - mu) / std
        a_t = torch.tanh(u)
        logp = gaussian_log_prob(u, mu, log_std) - tanh_log_det(u).sum(-1) - self.log_scale
        a = a_t * actor.scale + actor.bias
        x = torch.cat([obs, a], -1)
        qs = ensemble_forward(x.expand(self.e, *x.shape), self.qw, self.qb, "relu")
        q = qs[-1].squeeze(-1)
        q_min, which = q.min(0)
        alpha = log_alpha.exp()
        out = {"actor": (alpha * logp - q_min).mean(), "entropy": -logp.mean()}
        # the critics' input gradient, from -1/n on the smaller Q of each row
        g = torch.zeros_like(qs[-1])
        g[which, torch.arange(n), 0] = -1.0 / n
        for i in reversed(range(len(self.qw))):
            # autograd's products: the first layer's narrow one transposed (5x faster alone)
            # rounds differently, and 150 updates of a run then drift 4e-4 from the plain path
            g = torch.bmm(g, self.qw[i])
            if i > 0:
                g = torch.ops.aten.threshold_backward(g, qs[i], 0)
        g_a = g.sum(0)[:, obs.shape[1]:]
        # the squashed Gaussian, in closed form (module docstring)
        g_logp = alpha / n
        g_u = g_logp * (2 * a_t - z / std) + g_a * actor.scale * (1 - a_t * a_t)
        g_mu = g_u + g_logp * z / std
        g_log_std = g_u * std * eps + g_logp * (z * z - 1)
        g_pre = g_log_std * (0.5 * (hi - lo)) * (1 - t * t)
        g = torch.cat([g_mu, g_pre], -1)
        actor_backward(hs, self.aw, g, self.agw, self.agb)
        if autotune:  # d/dlog_alpha of -mean(alpha (log pi + H)) is the loss itself
            out["alpha"] = -(alpha * (logp + target_entropy)).mean()
            log_alpha.grad = out["alpha"].clone()
        pi_opt.step()
        return out
