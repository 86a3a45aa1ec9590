"""E copies of an MLP run as one network: each layer one batched matmul over the copies.

SAC's and TD3's twin critics, and PPO's and A2C's actor and critic, are small MLPs evaluated
together on the same rows. Stacking their weights turns E small matmuls per layer into one
`baddbmm`, which halves (or better) the kernel launches of an update at classic-control and
MuJoCo sizes. Everything here is plain autograd. PPO's CPU fast path (rlrun/fast/ppo_cpu.py)
reads the same stacked weights and differentiates them by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


class EnsembleMLP(nn.Module):
    """E copies of an MLP evaluated in one go: input (B, in) or (E, B, in) -> (E, B, out).

    Built from E already-initialised `nn.Sequential` MLPs (Linear, activation, ..., Linear),
    so it starts with exactly their weights, stored as nn.Linear stores them: weights[i] is
    (E, out, in), biases[i] is (E, 1, out). Members may differ in output size (an actor and a
    critic): the last layer is zero-padded to the largest and `out_dims` says how many outputs
    of each member are real (the padding gets no gradient, so it stays zero). `fused` says
    whether the members were stacked; other networks (another module type, different hidden
    sizes) are kept as a list and run one after another.
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

    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor, Callable | None]]:
        """(weight, bias, activation or None after the last layer) per layer. Read from the
        registered dicts: indexing a ParameterList or ModuleList costs microseconds per access
        (string keys), about 40% of a forward of the tiny networks A2C and PPO run every
        env step; activations are their functional forms (no Module call)."""
        acts = [_FUNCTIONAL.get(type(a), a) for a in self.acts._modules.values()]
        return list(zip(self.weights._parameters.values(), self.biases._parameters.values(),
                        [*acts, None], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            outs = [m(x) for m in self.members]
            n = max(self.out_dims)
            return torch.stack([nn.functional.pad(o, (0, n - o.shape[-1])) for o in outs])
        if x.dim() == 2:
            x = x.expand(self.n, *x.shape)
        for w, b, act in self.layers():
            x = torch.baddbmm(b, x, w.transpose(1, 2))
            if act is not None:
                x = act(x)
        return x


# activation modules -> the functions they call (same kernels, same numbers)
_FUNCTIONAL: dict[type, Callable] = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh}
