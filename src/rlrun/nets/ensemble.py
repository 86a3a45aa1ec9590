"""E copies of an MLP run as one network, with a written-out backward for small-batch speed.

SAC's and TD3's twin critics, and PPO's and A2C's actor and critic, are small MLPs evaluated
together on the same rows. Stacking them turns each layer into one batched matmul. At the
sizes of classic-control and MuJoCo tasks (a few hundred rows, 64 to 256 units) an update on a
CPU is dominated by per-operation overhead and by two quirks of torch's CPU kernels rather than
by arithmetic (measured with torch 2.13 on this project's machines, see scripts/bench_deep_rl.py):

- a batched matmul whose output has only a few columns (a value head, a 2-action policy head,
  the weight gradient of a 4-input layer) runs 4-8x slower than the same product computed
  transposed; `linear` and `bmm` below pick the orientation with the wide output;
- `torch.tanh` on CPU runs ~7x slower than numpy's vectorised tanh, so on CPU the hidden
  activation is computed by numpy, in place, on the tensor's own memory.

The backward of Linear-activation-...-Linear is written out in `_MLPFunction` (one autograd
node for the whole network instead of three per layer) and computes only the gradients that
are needed: no input gradient for observations, no weight gradient for a frozen network. Other
activations, and torch.compile, take the plain autograd path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

_FAST_ACTS = {nn.Tanh: "tanh", nn.ReLU: "relu"}
_NARROW = 16  # outputs this narrow (and narrower than tall) are computed transposed on CPU
_NUMPY_ROWS = 64  # no-grad calls on at most this many rows run in numpy on CPU


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (E, M, K) @ b (E, K, N), computed as (b^T a^T)^T when N is small and M is not:
    torch's CPU batched GEMM is slow for narrow outputs, not for short ones."""
    n, m = b.shape[-1], a.shape[-2]
    if a.device.type == "cpu" and n < _NARROW and n < m:
        return torch.bmm(b.transpose(1, 2), a.transpose(1, 2)).transpose(1, 2)
    return torch.bmm(a, b)


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x (E, B, in) @ w^T + b, with w (E, out, in) as nn.Linear stores it and b (E, 1, out)."""
    if x.device.type == "cpu" and w.shape[1] < _NARROW and w.shape[1] < x.shape[1]:
        return torch.baddbmm(b.transpose(1, 2), w, x.transpose(1, 2)).transpose(1, 2)
    return torch.baddbmm(b, x, w.transpose(1, 2))


def _activate_(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The activation, in place on a fresh intermediate (numpy's tanh on CPU)."""
    if kind == "relu":
        return x.relu_()
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        a = x.numpy()
        np.tanh(a, out=a)
        return x
    return x.tanh_()


def _activation_backward(g: torch.Tensor, h: torch.Tensor, kind: str) -> torch.Tensor:
    """dL/d(pre-activation) from dL/dh and the activation's output h."""
    if kind == "relu":
        return torch.ops.aten.threshold_backward(g, h, 0)
    return torch.ops.aten.tanh_backward(g, h)


def _forward(x: torch.Tensor, ws: Sequence[torch.Tensor], bs: Sequence[torch.Tensor],
             kind: str) -> list[torch.Tensor]:
    """Every layer's output, hidden ones activated (for use without autograd)."""
    hs, last = [x], len(ws) - 1
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        h = linear(hs[-1], w, b)
        hs.append(_activate_(h, kind) if i < last else h)
    return hs


def _backward(hs: Sequence[torch.Tensor], ws: Sequence[torch.Tensor], g: torch.Tensor,
              kind: str, need_x: bool = False, need_w: Sequence[bool] | None = None,
              need_b: Sequence[bool] | None = None) -> tuple[torch.Tensor | None, list, list]:
    """(dL/dx, [dL/dW_i], [dL/db_i]) from g = dL/d(output) and the layer inputs hs[:-1]
    saved by `_forward`; gradients not needed come back as None."""
    n = len(ws)
    gw: list[torch.Tensor | None] = [None] * n
    gb: list[torch.Tensor | None] = [None] * n
    for i in reversed(range(n)):
        if need_w is None or need_w[i]:
            gw[i] = bmm(g.transpose(1, 2), hs[i])
        if need_b is None or need_b[i]:
            gb[i] = g.sum(1, keepdim=True)
        if i == 0:
            return (bmm(g, ws[0]) if need_x else None), gw, gb
        g = _activation_backward(bmm(g, ws[i]), hs[i], kind)
    raise ValueError("an MLP has at least one layer")


class _MLPFunction(torch.autograd.Function):
    """The fused network as one autograd node: (x, kind, *weights, *biases) -> output."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kind: str, *params: torch.Tensor) -> torch.Tensor:
        n = len(params) // 2
        hs = _forward(x, params[:n], params[n:], kind)
        ctx.kind = kind
        ctx.save_for_backward(*hs[:-1], *params[:n])
        return hs[-1]

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor) -> tuple:
        saved = ctx.saved_tensors
        n, need = len(saved) // 2, ctx.needs_input_grad
        gx, gw, gb = _backward(saved[:n], saved[n:], g, ctx.kind, need[0], need[2:2 + n],
                               need[2 + n:])
        return (gx, None, *gw, *gb)


class EnsembleMLP(nn.Module):
    """E copies of an MLP evaluated in one go: input (B, in) or (E, B, in) -> (E, B, out).

    Built from E already-initialised `nn.Sequential` MLPs (Linear, activation, ..., Linear),
    so it starts with exactly their weights, stored as nn.Linear stores them: weights[i] is
    (E, out, in), biases[i] is (E, 1, out). Members may differ in output size (an actor and a
    critic): the last layer is zero-padded to the largest and `out_dims` says how many outputs
    of each member are real (the padding gets no gradient, so it stays zero). Other module
    types are kept as a list and run one after another (correct, not fused).
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
        out, last = max(self.out_dims), len(linears[0]) - 1

        def pad(w: torch.Tensor, i: int) -> torch.Tensor:  # the last layer's rows up to `out`
            return nn.functional.pad(w, (0, 0, 0, out - w.shape[0])) if i == last else w

        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([pad(lins[i].weight.detach(), i) for lins in linears]))
            for i in range(last + 1))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([pad(lins[i].bias.detach()[:, None], i).t()
                                      for lins in linears]))
            for i in range(last + 1))
        self.acts = nn.ModuleList(acts)
        self._numpy_views: tuple | None = None  # numpy views of the parameters, by address
        kinds = {_FAST_ACTS.get(type(a)) for a in acts}
        self.kind = kinds.pop() if len(kinds) == 1 and None not in kinds else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            outs = [m(x) for m in self.members]
            n = max(self.out_dims)
            return torch.stack([nn.functional.pad(o, (0, n - o.shape[-1])) for o in outs])
        if x.dim() == 2:
            x = x.expand(self.n, *x.shape)
        # the ParameterLists' dicts directly: iterating a ParameterList costs ~4 us
        ws, bs = tuple(self.weights._parameters.values()), tuple(self.biases._parameters.values())
        if self.kind is None or torch.compiler.is_compiling():
            return self.reference(x)
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in ws)):
            return _MLPFunction.apply(x, self.kind, *ws, *bs)
        if self.numpy_ok(x):
            return torch.from_numpy(self.forward_numpy(x.numpy()))
        return _forward(x, ws, bs, self.kind)[-1]

    def numpy_ok(self, x: torch.Tensor | np.ndarray) -> bool:
        """Whether `forward_numpy` serves x: few rows, a fused tanh/relu body on the CPU,
        float32 throughout."""
        if not (self.fused and self.kind is not None and x.shape[-2] <= _NUMPY_ROWS):
            return False
        w = self.weights._parameters["0"]
        f32 = torch.float32 if isinstance(x, torch.Tensor) else np.float32
        return x.dtype == f32 and w.device.type == "cpu" and w.dtype == torch.float32 and \
            (not isinstance(x, torch.Tensor) or x.device.type == "cpu")

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """The output (E, B, out) for a few rows (a rollout step, an evaluation episode),
        computed by numpy on the parameters' own memory: at these sizes torch's per-call
        dispatch (~5 us a matmul) is most of the cost, numpy's is ~1 us. Check `numpy_ok`."""
        params = (*self.weights._parameters.values(), *self.biases._parameters.values())
        ptrs = tuple(p.data_ptr() for p in params)
        if self._numpy_views is None or self._numpy_views[0] != ptrs:  # moved or re-packed
            ws = [w.detach().numpy().transpose(0, 2, 1) for w in self.weights]
            self._numpy_views = (ptrs, ws, [b.detach().numpy() for b in self.biases])
        _, ws, bs = self._numpy_views
        h, last = x, len(ws) - 1
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = np.matmul(h, w)
            h += b
            if i < last:
                (np.tanh(h, out=h) if self.kind == "tanh" else np.maximum(h, 0, out=h))
        return h

    def forward_saving(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Without autograd: [input, every layer's output], the last being forward(x); what
        `param_grads` needs. For code that differentiates by hand (ppo_objective.py)."""
        if not self.fused or self.kind is None:
            raise ValueError("forward_saving needs a fused tanh or relu MLP")
        if x.dim() == 2:
            x = x.expand(self.n, *x.shape)
        with torch.no_grad():
            return _forward(x, tuple(self.weights._parameters.values()),
                            tuple(self.biases._parameters.values()), self.kind)

    def param_grads(self, hs: list[torch.Tensor], g: torch.Tensor) -> list[torch.Tensor]:
        """Gradients, in `parameters()` order (weights, then biases), of a loss with
        dL/d(output) = g, from `forward_saving`'s list."""
        with torch.no_grad():
            _, gw, gb = _backward(hs, tuple(self.weights._parameters.values()), g, self.kind)
        return [*gw, *gb]

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same network with plain autograd ops (activation modules, any kind)."""
        if x.dim() == 2:
            x = x.expand(self.n, *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w.transpose(1, 2))
            if i < last:
                x = self.acts[i](x)
        return x
