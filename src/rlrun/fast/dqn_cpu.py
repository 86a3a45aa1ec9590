"""DQN's CPU fast path: a minibatch update of an MLP Q-network in a few torch and numpy calls.

At DQN's sizes on a CPU (rl-zoo's 256x256 network, 64 rows a minibatch) the four 256x256
matrix products of an update take ~360 us, and the plain update (`dqn.dqn_loss` under
autograd, `clip_grad_norm_` and Adam over six tensors, `zero_grad`) spends as much again on
per-operation dispatch and autograd bookkeeping: ~1.1 ms in all. This module does the same
update with the same matrix products and a fraction of the other calls:

- the Q-network's forward with `addmm` (what `nn.Linear` runs) on the layers' own weights,
  keeping the activations, and its backward written out (`_backward`): the products autograd
  would run, each writing straight into its parameter's gradient (`out=`);
- the TD target, the Huber loss and its gradient with respect to Q(s, a) in numpy on the
  tensors' memory (64 numbers: numpy's ~1 us a call against torch's ~5-10 us);
- the parameters packed into one tensor (`FlatParams`), so Adam steps one tensor, and the
  gradient clip takes `clip_grad_norm_`'s norm and scales the packed gradient once;
- the greedy action of a training step by the same `addmm` chain without the module calls.

The gradient of the loss with respect to Q (Huber, beta 1, mean over B rows):
    d_i = Q(s_i, a_i) - y_i,   dL/dQ(s_i, a_i) = clip(d_i, -1, 1) / B,   0 for other actions
as torch's `smooth_l1_loss` backward computes it (the same float32 operations). The products
are the ones autograd calls (its weight gradient of `addmm(b, x, W.t())` is `g.t() @ x`), so
a run's parameters and logged numbers are the plain path's to the bit.

`select` is what `algo.fast_path` means: `off` never, `on` always (a ConfigError where it
cannot apply), `auto` where it applies: a CPU device, an `MLP` network (`network=mlp`) with
relu or tanh activations, float32, and no `algo.compile`. Pixels (`nature_cnn`) and GPUs run
the plain path. tests/test_fast_paths.py holds it to the plain code: the update's loss,
gradients and parameters, the greedy action, and a short run with the path on and off.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from rlrun.fast.flat import FlatParams
from rlrun.fast.option import choose
from rlrun.nets.mlp import MLP

KINDS = {nn.ReLU: "relu", nn.Tanh: "tanh"}  # activations with a written-out backward


def why_not(q_net: Any, device: str) -> str | None:
    """Why the fast path cannot run this Q-network on this device, or None when it can."""
    if torch.device(device).type != "cpu":
        return f"it runs on the CPU only (device={device})"
    if not isinstance(q_net, MLP):
        return "it needs an MLP network (network=mlp)"
    acts = [type(m) for m in q_net if not isinstance(m, nn.Linear)]
    if not all(a in KINDS for a in acts) or len(set(acts)) > 1:
        return "it needs relu or tanh activations (network.activation)"
    if any(p.dtype != torch.float32 for p in q_net.parameters()):
        return "it needs float32 parameters"
    return None


def select(cfg: Any, q_net: nn.Module, target_net: nn.Module, device: str) -> FastDQN | None:
    """What DQN's `cfg.fast_path` (with `cfg.compile`) means for `q_net` on `device`: the
    fast path, or None for the plain one."""
    return choose(cfg, lambda: why_not(q_net, device), lambda: FastDQN(q_net, target_net))


def _layers(net: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    linears = [m for m in net if isinstance(m, nn.Linear)]
    return [m.weight for m in linears], [m.bias for m in linears]


def _forward(x: torch.Tensor, ws: list[torch.Tensor], bs: list[torch.Tensor], kind: str,
             keep: bool) -> list[torch.Tensor]:
    """[input, every layer's output] (hidden ones activated, in place); keep=False: only the
    output, in a one-element list. Call under no_grad."""
    hs, h, last = [x], x, len(ws) - 1
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        h = torch.addmm(b, h, w.t())  # nn.Linear's own call on a 2-d input
        if i < last:
            h = h.relu_() if kind == "relu" else h.tanh_()
        if keep:
            hs.append(h)
    return hs if keep else [h]


def _backward(hs: list[torch.Tensor], ws: list[torch.Tensor], g: torch.Tensor, kind: str,
              gws: list[torch.Tensor], gbs: list[torch.Tensor]) -> None:
    """Autograd's products for dL/dW_i and dL/db_i, from g = dL/d(output) and `_forward`'s
    list, written into the gradients `gws`, `gbs`; none for the input."""
    for i in reversed(range(len(ws))):
        torch.mm(g.t(), hs[i], out=gws[i])
        torch.sum(g, 0, out=gbs[i])
        if i > 0:
            g = torch.mm(g, ws[i])
            g = torch.ops.aten.threshold_backward(g, hs[i], 0) if kind == "relu" \
                else torch.ops.aten.tanh_backward(g, hs[i])


class FastDQN:
    """The fast path for one Q-network and its target, with the plain path's methods
    (`dqn.PlainPath`): `params` for the optimiser, `greedy` for acting, `loss` for a
    minibatch, then `backward` and `clip_grad_norm_`. Check `why_not` first."""

    def __init__(self, q_net: MLP, target_net: nn.Module):
        acts = [m for m in q_net if not isinstance(m, nn.Linear)]
        self.kind = KINDS[type(acts[0])] if acts else "relu"
        self.packed = FlatParams(q_net)  # re-points the network's parameters into one tensor
        self.params = [self.packed.param]
        self.ws, self.bs = _layers(q_net)
        self.gws = [w.grad for w in self.ws]  # views of the packed gradient
        self.gbs = [b.grad for b in self.bs]
        self.grads = [p.grad for p in self.packed.params]  # in parameters() order
        self.target = _layers(target_net)  # updated in place by the loop (lerp, load)
        self._pending: tuple[list[torch.Tensor], torch.Tensor] | None = None

    @torch.no_grad()
    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """argmax_a Q(obs, a), as `dqn.q_policy`'s greedy computes it."""
        x = torch.as_tensor(obs)
        return _forward(x, self.ws, self.bs, self.kind, False)[0].argmax(-1).numpy()

    @torch.no_grad()
    def loss(self, b: dict[str, torch.Tensor], gamma: float,
             double: bool) -> dict[str, torch.Tensor]:
        """`dqn.dqn_loss`'s numbers (the TD loss and the mean Q(s, a)); `backward` then
        writes its gradient."""
        kind = self.kind
        next_q = _forward(b["next_obs"], *self.target, kind, False)[0].numpy()
        rows = np.arange(len(next_q))
        if double:
            best = _forward(b["next_obs"], self.ws, self.bs, kind, False)[0].numpy().argmax(1)
            next_v = next_q[rows, best]
        else:
            next_v = next_q.max(1)
        y = b["rewards"].numpy() + gamma * (1.0 - b["terminated"].numpy()) * next_v
        hs = _forward(b["obs"], self.ws, self.bs, kind, True)
        q_all = hs[-1].numpy()
        actions = b["actions"].numpy().reshape(-1)
        q = q_all[rows, actions]
        d = q - y
        ad = np.abs(d)
        td = np.where(ad < 1.0, 0.5 * d * d, ad - 0.5)
        g = np.zeros_like(q_all)  # dL/dQ: smooth_l1's backward (mean), scattered to a
        g[rows, actions] = np.float32(1.0 / len(d)) * np.clip(d, -1.0, 1.0)
        self._pending = (hs, torch.from_numpy(g))
        # the means by torch: its reduction order, so the logged numbers are the plain ones
        return {"td": torch.from_numpy(td).mean(), "q_values": torch.from_numpy(q).mean()}

    @torch.no_grad()
    def backward(self, losses: dict[str, torch.Tensor]) -> None:
        """The gradient of the last `loss` into the packed gradient (overwritten: no
        zero_grad needed)."""
        if self._pending is None:
            raise RuntimeError("backward() without a loss() before it")
        hs, g = self._pending
        self._pending = None
        _backward(hs, self.ws, g, self.kind, self.gws, self.gbs)

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """`nn.utils.clip_grad_norm_(params, max_norm, foreach=True)` to the bit: its norm of
        the per-tensor norms and its float32 coefficient (max_norm / (norm + 1e-6), taken
        as a reciprocal times max_norm, as torch's `__rtruediv__` does), with one multiply
        of the packed gradient, and none when the clip does not act."""
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(self.grads)))
        coef = np.float32(1.0) / (np.float32(total) + np.float32(1e-6)) * np.float32(max_norm)
        if coef < 1.0:
            self.packed.param.grad.mul_(float(coef))
        return total
