"""PPO's minibatch loss and its gradient in one pass, written out: the CPU fast path.

`ppo.ppo_loss` is the objective as autograd sees it: about 25 small operations, each with a
backward node, after the network's forward. At PPO's sizes (64-unit layers, 64 to 512 rows)
an operation costs 5-10 us of dispatch and bookkeeping whatever its size, so on a CPU the
bookkeeping, not the arithmetic, was most of an update. `PPOObjective` is one autograd node
from the packed parameters (`FlatParams`) to the loss. Its forward runs the fused
actor-critic network (`EnsembleMLP.forward_saving`), the objective and its gradient in numpy
(a numpy call on rows this small costs a fifth of a torch one), and the network's backward
(`EnsembleMLP.param_grads`); its backward hands the flat gradient to autograd. The gradient
of the objective with respect to the network's outputs, in closed form:

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

tests/test_deep_rl.py checks the losses and gradients against `ppo_loss` under autograd, for
both action kinds, with and without value clipping and advantage normalisation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlrun.nets.actor_critic import ActorCritic
from rlrun.nets.ensemble import EnsembleMLP
from rlrun.rl.flat_params import FlatParams


def objective(y: np.ndarray, log_std: np.ndarray | None, act_dim: int,
              b: dict[str, np.ndarray], clip: float, clip_vloss: bool, ent_coef: float,
              vf_coef: float) -> tuple[float, list[float], np.ndarray, np.ndarray, Any]:
    """(loss, [policy loss, value loss, entropy], log ratio, dL/dy, dL/dlog_std | None) for
    the body's output y (2, B, out): y[0, :, :act_dim] the policy outputs (logits or means),
    y[1, :, 0] the values."""
    # (sums over n rather than .mean(), and indexing rather than take_along_axis: numpy's
    # Python-level wrappers cost more than the arithmetic on arrays this small)
    out, value, n = y[0, :, :act_dim], y[1, :, 0], y.shape[1]
    adv = b["adv"]
    if log_std is None:  # Categorical over logits
        shifted = out - out.max(-1, keepdims=True)
        logp_all = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        p = np.exp(logp_all)
        ent_rows = -(p * logp_all).sum(-1)
        ent = ent_rows.sum() / n
        rows, actions = np.arange(n), b["actions"].astype(np.int64, copy=False)
        logp = logp_all[rows, actions]
    else:  # diagonal Gaussian, state-independent log-std
        inv_std = np.exp(-log_std)
        z = (b["actions"] - out) * inv_std
        logp = (-0.5 * z * z - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * act_dim
        ent = log_std.sum() + 0.5 * math.log(2 * math.pi * math.e) * act_dim
    log_ratio = logp - b["logp"]
    ratio = np.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * np.minimum(np.maximum(ratio, 1 - clip), 1 + clip)
    policy = np.maximum(unclipped, clipped).sum() / n
    d_logp = np.where(unclipped >= clipped, unclipped, 0.0) / n  # dL/dlogp
    err = value - b["returns"]
    if clip_vloss:
        delta = value - b["values"]
        err_clipped = (b["values"] + np.minimum(np.maximum(delta, -clip), clip)) - b["returns"]
        sq, sq_clipped = err * err, err_clipped * err_clipped
        v_loss = 0.5 * np.maximum(sq, sq_clipped).sum() / n
        d_value = np.where(sq >= sq_clipped, err,
                           np.where(np.abs(delta) <= clip, err_clipped, 0.0))
    else:
        v_loss = 0.5 * (err * err).sum() / n
        d_value = err
    d_y = np.zeros_like(y)
    d_y[1, :, 0] = d_value * (vf_coef / n)
    d_log_std = None
    if log_std is None:
        d_out = -d_logp[:, None] * p
        d_out[rows, actions] += d_logp  # d_logp * (onehot(a) - p)
        if ent_coef:
            d_out += (ent_coef / n) * p * (logp_all + ent_rows[:, None])
    else:
        d_out = d_logp[:, None] * z * inv_std
        d_log_std = (d_logp[:, None] * (z * z - 1)).sum(0) - ent_coef
    d_y[0, :, :act_dim] = d_out
    loss = policy - ent_coef * ent + vf_coef * v_loss
    return float(loss), [float(policy), float(v_loss), float(ent)], log_ratio, d_y, d_log_std


class PPOObjective(torch.autograd.Function):
    """(packed parameters, agent, packing, batch, coefficients) -> (loss, [policy loss, value
    loss, entropy], log ratio); only the loss is differentiable, with respect to the packed
    parameters."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, agent: ActorCritic, packed: FlatParams,
                b: dict[str, np.ndarray], obs: torch.Tensor, clip: float, clip_vloss: bool,
                ent_coef: float, vf_coef: float) -> tuple[torch.Tensor, ...]:
        hs = agent.body.forward_saving(obs)
        log_std = agent.log_std.detach().numpy() if agent.continuous else None
        loss, stats, log_ratio, d_y, d_log_std = objective(
            hs[-1].numpy(), log_std, agent.act_dim, b, clip, clip_vloss, ent_coef, vf_coef)
        grads = agent.body.param_grads(hs, torch.from_numpy(d_y))
        if d_log_std is not None:  # parameters() lists the agent's own log_std first
            grads.insert(0, torch.from_numpy(d_log_std.astype(np.float32, copy=False)))
        ctx.grad = packed.flatten(grads)
        stats_t = torch.tensor(stats)
        log_ratio_t = torch.from_numpy(log_ratio.astype(np.float32, copy=False))
        ctx.mark_non_differentiable(stats_t, log_ratio_t)
        ctx.set_materialize_grads(False)
        return torch.tensor(loss), stats_t, log_ratio_t

    @staticmethod
    def backward(ctx, g: torch.Tensor | None, *_: torch.Tensor | None) -> tuple:
        return (None if g is None else g * ctx.grad,) + (None,) * 8


def fused_ppo_loss(agent: ActorCritic, b: dict[str, torch.Tensor], clip: float,
                   clip_vloss: bool, ent_coef: float, vf_coef: float, norm_adv: bool, *,
                   packed: FlatParams) -> dict[str, torch.Tensor]:
    """`ppo.ppo_loss`'s numbers, with the gradient landing in `packed.param.grad` on
    backward (see the module doc). Use `make_loss` to check that it applies."""
    nb = {k: b[k].numpy() for k in ("actions", "logp", "adv", "returns", "values")}
    if norm_adv:
        adv = nb["adv"]
        nb["adv"] = (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)
    loss, stats, log_ratio = PPOObjective.apply(
        packed.param, agent, packed, nb, b["obs"], float(clip), clip_vloss, ent_coef, vf_coef)
    return {"loss": loss, "policy": stats[0], "value": stats[1], "entropy": stats[2],
            "log_ratio": log_ratio}


def make_loss(agent: Any, packed: FlatParams) -> Callable | None:
    """`fused_ppo_loss` bound to `packed` when it applies: an `ActorCritic` whose body is a
    fused tanh/relu `EnsembleMLP` of float32 on the CPU, packed as its `parameters()` list.
    None otherwise (then `ppo_loss` under autograd is the way)."""
    body = getattr(agent, "body", None)
    if not (isinstance(agent, ActorCritic) and isinstance(body, EnsembleMLP) and body.fused
            and body.kind is not None):
        return None
    first = body.weights[0]
    if first.device.type != "cpu" or first.dtype != torch.float32:
        return None
    order = [*([agent.log_std] if agent.continuous else []), *body.parameters()]
    if [id(p) for p in packed.params] != [id(p) for p in order]:
        return None
    return functools.partial(fused_ppo_loss, packed=packed)
