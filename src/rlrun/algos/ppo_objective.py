"""PPO's minibatch objective as one autograd node, its gradient written out in closed form.

`ppo.ppo_loss` is the objective as autograd sees it: about 25 small operations, each with a
backward node. At PPO's minibatch sizes (64 to 512 rows) every one of them costs 5-10 us of
dispatch and bookkeeping whatever its size, so on a CPU the loss's backward cost as much as
the network's. `fused_ppo_loss` computes the same numbers, and the gradient with respect to
the policy outputs, value and log-std, in one forward pass; backward only scales it:

    r = exp(logp - logp_old)
    policy  L = mean_i max(-A_i r_i, -A_i clip(r_i, 1-eps, 1+eps))
            dL/dlogp_i = -A_i r_i / B where the unclipped term is the larger (always the case
            with r_i inside the clip range), else 0
    Categorical  logp = logits[a] - logsumexp(logits)   dlogp/dlogits = onehot(a) - p
                 H = -sum p log p                        dH/dlogits = -p (log p + H)
    Gaussian     logp = sum_j -z_j^2/2 - log s_j - log(2 pi)/2, z = (a - mu)/s
                 dlogp/dmu = z/s,  dlogp/dlog s = z^2 - 1,  H = sum_j log s_j + const
    value   0.5 mean max((v - R)^2, (v_clip - R)^2),  v_clip = v_old + clip(v - v_old, -eps, eps)
            (the clipped branch passes gradient only where v - v_old is inside the clip)

tests/test_deep_rl.py checks losses and parameter gradients against `ppo_loss` under
autograd, for both action kinds, with and without value clipping.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class PPOObjective(torch.autograd.Function):
    """(body output y (2, B, out), log_std | None, batch, coefficients) -> (loss, [policy
    loss, value loss, entropy], log ratio); only the loss is differentiable. y[0, :, :A] are the
    policy outputs (logits or means), y[1, :, 0] the values. CPU tensors: the arithmetic is
    numpy's, whose per-call cost on rows this small is a fifth of torch's."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, log_std: torch.Tensor | None, act_dim: int,
                b: dict[str, np.ndarray], clip: float, clip_vloss: bool, ent_coef: float,
                vf_coef: float) -> tuple[torch.Tensor, ...]:
        y_np = y.numpy()
        out, value, n = y_np[0, :, :act_dim], y_np[1, :, 0], y_np.shape[1]
        adv = b["adv"]
        if log_std is None:  # Categorical over logits
            shifted = out - out.max(-1, keepdims=True)
            logp_all = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
            p = np.exp(logp_all)
            ent_rows = -(p * logp_all).sum(-1)
            ent = ent_rows.mean()
            actions = b["actions"].astype(np.int64)[:, None]
            logp = np.take_along_axis(logp_all, actions, -1)[:, 0]
        else:  # diagonal Gaussian, state-independent log-std
            ls = log_std.detach().numpy()
            inv_std = np.exp(-ls)
            z = (b["actions"] - out) * inv_std
            logp = (-0.5 * z * z - ls).sum(-1) - 0.5 * math.log(2 * math.pi) * act_dim
            ent = ls.sum() + 0.5 * math.log(2 * math.pi * math.e) * act_dim
        log_ratio = logp - b["logp"]
        ratio = np.exp(log_ratio)
        unclipped, clipped = -adv * ratio, -adv * ratio.clip(1 - clip, 1 + clip)
        policy = np.maximum(unclipped, clipped).mean()
        d_logp = np.where(unclipped >= clipped, unclipped, 0.0) / n  # dL/dlogp
        err = value - b["returns"]
        if clip_vloss:
            delta = value - b["values"]
            err_clipped = (b["values"] + delta.clip(-clip, clip)) - b["returns"]
            sq, sq_clipped = err * err, err_clipped * err_clipped
            v_loss = 0.5 * np.maximum(sq, sq_clipped).mean()
            d_value = np.where(sq >= sq_clipped, err,
                               np.where(np.abs(delta) <= clip, err_clipped, 0.0))
        else:
            v_loss = 0.5 * (err * err).mean()
            d_value = err
        d_y = np.zeros_like(y_np)
        d_y[1, :, 0] = d_value * (vf_coef / n)
        ctx.d_log_std = None
        if log_std is None:
            d_out = -d_logp[:, None] * p
            np.put_along_axis(d_out, actions, np.take_along_axis(d_out, actions, -1)
                              + d_logp[:, None], -1)  # d_logp * (onehot(a) - p)
            if ent_coef:
                d_out += (ent_coef / n) * p * (logp_all + ent_rows[:, None])
        else:
            d_out = d_logp[:, None] * z * inv_std
            ctx.d_log_std = torch.from_numpy(
                ((d_logp[:, None] * (z * z - 1)).sum(0) - ent_coef).astype(np.float32))
        d_y[0, :, :act_dim] = d_out
        ctx.d_y = torch.from_numpy(d_y)
        loss = policy - ent_coef * ent + vf_coef * v_loss
        stats = torch.tensor([policy, v_loss, ent], dtype=torch.float32)
        log_ratio = torch.from_numpy(log_ratio.astype(np.float32, copy=False))
        ctx.mark_non_differentiable(stats, log_ratio)
        ctx.set_materialize_grads(False)
        return torch.tensor(float(loss)), stats, log_ratio

    @staticmethod
    def backward(ctx, g: torch.Tensor | None, *_: torch.Tensor | None) -> tuple:
        if g is None:  # the loss was not differentiated
            return (None,) * 8
        d_log_std = None if ctx.d_log_std is None else g * ctx.d_log_std
        return g * ctx.d_y, d_log_std, None, None, None, None, None, None


def fused_ppo_loss(agent, b: dict[str, torch.Tensor], clip: float, clip_vloss: bool,
                   ent_coef: float, vf_coef: float, norm_adv: bool) -> dict[str, torch.Tensor]:
    """`ppo.ppo_loss`'s numbers and gradient from one autograd node (see the module doc), for
    an `ActorCritic` on the CPU."""
    y = agent.body(b["obs"])
    nb = {k: b[k].numpy() for k in ("actions", "logp", "adv", "returns", "values")}
    if norm_adv:
        adv = nb["adv"]
        nb["adv"] = (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)
    log_std = agent.log_std if agent.continuous else None
    loss, stats, log_ratio = PPOObjective.apply(
        y, log_std, agent.act_dim, nb, float(clip), clip_vloss, ent_coef, vf_coef)
    return {"loss": loss, "policy": stats[0], "value": stats[1], "entropy": stats[2],
            "log_ratio": log_ratio}
