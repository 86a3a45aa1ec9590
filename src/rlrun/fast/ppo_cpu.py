"""PPO's CPU fast path: one update of a small actor-critic in a few numpy and torch calls.

At PPO's sizes on a CPU (64-unit layers, 64 to 512 rows) a torch operation costs 5-10 us of
dispatch and autograd bookkeeping whatever its size, and a plain update (`ppo.ppo_loss` under
autograd, Adam over six tensors) has ~150 of them: the bookkeeping, not the arithmetic, is
most of the time. This module does the same update with a fraction of the calls. It bought
PPO on CartPole from 1.6x to 2.7x Stable-Baselines3's steps/s (scripts/bench_deep_rl.py):

- the network: the actor and critic's stacked weights (`EnsembleMLP`) run forward and
  backward by hand, without autograd (`_forward`, `_backward`). Narrow products (a value
  head, a 2-action head, the weight gradient of a 4-input layer) are computed transposed,
  because torch's CPU batched GEMM is 4-8x slower for narrow outputs than for short ones
  (`bmm`, `linear`); tanh comes from numpy, in place, ~7x faster than torch's CPU tanh;
- the objective: a minibatch's loss and its gradient with respect to the network's outputs,
  in closed form in numpy (`objective`), all of it one autograd node (`PPOObjective`);
- the optimiser: the parameters packed into one tensor (`FlatParams`), so Adam, the
  gradient clip and zero_grad each touch one tensor;
- the rollout: a step's forward pass in numpy on the parameters' own memory (`FastPPO.step`),
  for a few envs ~25 us instead of ~90, with the rollout's random draws taken in one torch
  call by `ActorCritic.draw_noise` (the plain path replays the same draws).

`select` is what `algo.fast_path` means: `off` never, `on` always (a ConfigError where it
cannot apply), `auto` where it applies and pays: a CPU device, an MLP body with tanh or relu
activations (`EnsembleMLP` of identical hidden sizes), float32, and no `algo.compile`.
On a GPU these calls would be host round trips, so `auto` keeps the plain path there.
tests/test_fast_paths.py checks every piece against the plain code (values, gradients,
twenty epochs of updates, and a short `train()` run with the path on and off).

The objective's gradient with respect to the network's outputs, in closed form:

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rlrun.fast.flat import FlatParams
from rlrun.fast.option import choose
from rlrun.nets.actor_critic import ActorCritic
from rlrun.nets.ensemble import EnsembleMLP

KINDS = {nn.Tanh: "tanh", nn.ReLU: "relu"}  # activations with a written-out backward
_NARROW = 16  # outputs this narrow (and narrower than tall) are computed transposed
_NUMPY_ROWS = 64  # rollout steps on at most this many rows run in numpy


def why_not(agent: Any, device: str) -> str | None:
    """Why the fast path cannot run this agent on this device, or None when it can."""
    body = getattr(agent, "body", None)
    if torch.device(device).type != "cpu":
        return f"it runs on the CPU only (device={device})"
    if not (isinstance(agent, ActorCritic) and isinstance(body, EnsembleMLP) and body.fused):
        return "it needs an MLP network (actor and critic of the same hidden sizes)"
    if not all(type(a) in KINDS for a in body.acts) or len({type(a) for a in body.acts}) > 1:
        return "it needs tanh or relu activations (network.activation)"
    if any(p.dtype != torch.float32 for p in agent.parameters()):
        return "it needs float32 parameters"
    return None


def select(cfg: Any, agent: Any, device: str) -> FastPPO | None:
    """What PPO's `cfg.fast_path` (with `cfg.compile`) means for `agent` on `device`: the fast
    path, or None for the plain one."""
    return choose(cfg, lambda: why_not(agent, device), lambda: FastPPO(agent))


# ---- the network, forward and backward by hand -------------------------------------------------
def bmm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """a (E, M, K) @ b (E, K, N) (into `out`), computed as (b^T a^T)^T when N is small and M
    is not: torch's CPU batched GEMM is slow for narrow outputs, not for short ones."""
    n, m = b.shape[-1], a.shape[-2]
    if n < _NARROW and n < m:
        c = torch.bmm(b.transpose(1, 2), a.transpose(1, 2)).transpose(1, 2)
        return c if out is None else out.copy_(c)
    return torch.bmm(a, b) if out is None else torch.bmm(a, b, out=out)


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x (E, B, in) @ w^T + b, with w (E, out, in) as nn.Linear stores it and b (E, 1, out)."""
    if w.shape[1] < _NARROW and w.shape[1] < x.shape[1]:
        return torch.baddbmm(b.transpose(1, 2), w, x.transpose(1, 2)).transpose(1, 2)
    return torch.baddbmm(b, x, w.transpose(1, 2))


def _activate_(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The activation, in place on a fresh intermediate (tanh by numpy, on x's memory)."""
    if kind == "relu":
        return x.relu_()
    a = x.numpy()
    np.tanh(a, out=a)
    return x


def _forward(x: torch.Tensor, ws: Sequence[torch.Tensor], bs: Sequence[torch.Tensor],
             kind: str) -> list[torch.Tensor]:
    """[input, every layer's output] (hidden ones activated), what `_backward` needs."""
    hs, last = [x], len(ws) - 1
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        h = linear(hs[-1], w, b)
        hs.append(_activate_(h, kind) if i < last else h)
    return hs


def _backward(hs: Sequence[torch.Tensor], ws: Sequence[torch.Tensor], g: torch.Tensor,
              kind: str, out: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """[dL/dW_i] + [dL/db_i] (`parameters()` order) from g = dL/d(output) and `_forward`'s
    list; no gradient for the input (observations need none). `out`: tensors of those
    shapes (a packed gradient's views) to write them into, saving a copy."""
    n = len(ws)
    gw: list[torch.Tensor] = [g] * n
    gb: list[torch.Tensor] = [g] * n
    for i in reversed(range(n)):
        if out is None:
            gw[i], gb[i] = bmm(g.transpose(1, 2), hs[i]), g.sum(1, keepdim=True)
        else:
            gw[i] = bmm(g.transpose(1, 2), hs[i], out=out[i])
            gb[i] = torch.sum(g, 1, keepdim=True, out=out[n + i])
        if i > 0:
            g = bmm(g, ws[i])
            g = torch.ops.aten.threshold_backward(g, hs[i], 0) if kind == "relu" \
                else torch.ops.aten.tanh_backward(g, hs[i])
    return [*gw, *gb]


# ---- the objective, one autograd node ----------------------------------------------------------
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
    """(packed parameters, fast path, batch, obs, coefficients) -> (loss, [policy loss, value
    loss, entropy], log ratio); only the loss is differentiable, with respect to the packed
    parameters: its forward computes the whole gradient, its backward hands it over."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, fast: FastPPO, b: dict[str, np.ndarray],
                obs: torch.Tensor, clip: float, clip_vloss: bool, ent_coef: float,
                vf_coef: float) -> tuple[torch.Tensor, ...]:
        agent, ws, bs = fast.agent, *fast.layers()
        hs = _forward(obs.expand(agent.body.n, *obs.shape), ws, bs, fast.kind)
        log_std = agent.log_std.detach().numpy() if agent.continuous else None
        loss, stats, log_ratio, d_y, d_log_std = objective(
            hs[-1].numpy(), log_std, agent.act_dim, b, clip, clip_vloss, ent_coef, vf_coef)
        grads = _backward(hs, ws, torch.from_numpy(d_y), fast.kind)
        if d_log_std is not None:  # parameters() lists the agent's own log_std first
            grads.insert(0, torch.from_numpy(d_log_std.astype(np.float32, copy=False)))
        ctx.grad = fast.packed.flatten(grads)
        stats_t = torch.tensor(stats)
        log_ratio_t = torch.from_numpy(log_ratio.astype(np.float32, copy=False))
        ctx.mark_non_differentiable(stats_t, log_ratio_t)
        ctx.set_materialize_grads(False)
        return torch.tensor(loss), stats_t, log_ratio_t

    @staticmethod
    def backward(ctx, g: torch.Tensor | None, *_: torch.Tensor | None) -> tuple:
        return (None if g is None else g * ctx.grad,) + (None,) * 7


# ---- what PPO's loop calls ----------------------------------------------------------------------
class FastPPO:
    """The fast path for one agent, with the plain path's methods (`ppo.PlainPath`):
    `params` for the optimiser, `step` for rollouts and evaluation, `loss` for a minibatch,
    `zero_grad` and `clip_grad_norm_` around its backward. Check `why_not` first."""

    def __init__(self, agent: ActorCritic):
        acts = agent.body.acts  # none without hidden layers: then the kind is never used
        self.agent, self.kind = agent, KINDS[type(acts[0])] if len(acts) else "relu"
        self.packed = FlatParams(agent)  # re-points the agent's parameters into one tensor
        self.params = [self.packed.param]
        self._views: tuple | None = None  # numpy views of the layers, by address

    def layers(self) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """(weights, biases) of the stacked body, read from the ParameterLists' dicts
        directly: iterating a ParameterList costs ~4 us."""
        body = self.agent.body
        return (tuple(body.weights._parameters.values()),
                tuple(body.biases._parameters.values()))

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """The body's output (2, B, out) computed by numpy on the parameters' own memory: for
        a few rows torch's per-call dispatch (~5 us a matmul) is most of the cost, numpy's
        ~1 us."""
        ws, bs = self.layers()
        ptrs = tuple(p.data_ptr() for p in (*ws, *bs))
        if self._views is None or self._views[0] != ptrs:  # moved or loaded elsewhere
            self._views = (ptrs, [w.detach().numpy().transpose(0, 2, 1) for w in ws],
                           [b.detach().numpy() for b in bs])
        _, ws_np, bs_np = self._views
        h, last = x, len(ws_np) - 1
        for i, (w, b) in enumerate(zip(ws_np, bs_np, strict=True)):
            h = np.matmul(h, w)
            h += b
            if i < last:
                (np.tanh(h, out=h) if self.kind == "tanh" else np.maximum(h, 0, out=h))
        return h

    def step(self, obs: np.ndarray, noise: torch.Tensor | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`ActorCritic.step` (action, log-prob, value; noise None: the mode) in numpy, with
        the same draws and the same numbers up to rounding."""
        if obs.shape[0] > _NUMPY_ROWS or obs.dtype != np.float32:
            return self.agent.step(obs, noise)
        agent = self.agent
        y = self.forward_numpy(obs)
        out, value = y[0, :, :agent.act_dim], y[1, :, 0]
        if agent.continuous:
            log_std = agent.log_std.detach().numpy()
            z = np.zeros_like(out) if noise is None else noise.numpy()
            a = out + np.exp(log_std) * z  # so (a - out) / std = z
            logp = (-0.5 * z * z - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * out.shape[1]
            return a, logp.astype(np.float32), value
        top = out.max(-1, keepdims=True)
        log_z = top[:, 0] + np.log(np.exp(out - top).sum(-1))  # logsumexp
        a = (out if noise is None else out + noise.numpy()).argmax(-1)
        return a, out[np.arange(len(a)), a] - log_z, value

    def loss(self, agent: ActorCritic, b: dict[str, torch.Tensor], clip: float,
             clip_vloss: bool, ent_coef: float, vf_coef: float,
             norm_adv: bool) -> dict[str, torch.Tensor]:
        """`ppo.ppo_loss`'s numbers; on backward the gradient lands in `params[0].grad`."""
        nb = {k: b[k].numpy() for k in ("actions", "logp", "adv", "returns", "values")}
        if norm_adv:
            adv = nb["adv"]
            nb["adv"] = (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)
        loss, stats, log_ratio = PPOObjective.apply(
            self.packed.param, self, nb, b["obs"], float(clip), clip_vloss, ent_coef, vf_coef)
        return {"loss": loss, "policy": stats[0], "value": stats[1], "entropy": stats[2],
                "log_ratio": log_ratio}

    def zero_grad(self) -> None:
        self.packed.zero_grad()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        return self.packed.clip_grad_norm_(max_norm)
