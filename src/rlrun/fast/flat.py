"""A module's parameters packed into one tensor, for the fast paths' optimiser steps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FlatParams:
    """A module's parameters as views of one flat tensor, and their gradients as views of
    another, so the optimiser sees one parameter.

    Why: an optimiser step, a gradient-norm clip and a zero_grad each loop over the parameter
    list in Python. For PPO's small networks that bookkeeping cost more than the arithmetic
    (about 200 us per minibatch for six tensors). Packed, `adam([flat.param], ...)` steps one
    tensor with the same numbers (Adam is elementwise), the clip is one norm and zeroing one
    fill. Autograd keeps accumulating into each parameter's own `.grad`, which is a view of
    `flat.param.grad` (the layout DDP's `gradient_as_bucket_view` uses), so gradients must be
    zeroed with `zero_grad()` here, never set to None. Build it after moving the module to its
    device; `load_state_dict` on the module afterwards copies into the views.
    """

    def __init__(self, module: nn.Module):
        self.params = params = [p for p in module.parameters() if p.requires_grad]
        self.param = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        self.param.grad = torch.zeros_like(self.param)
        start = 0
        for p in params:
            end = start + p.numel()
            p.data = self.param.data[start:end].view_as(p)
            p.grad = self.param.grad[start:end].view_as(p)
            start = end

    def zero_grad(self) -> None:
        self.param.grad.zero_()

    def flatten(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """One tensor per packed parameter (in `params` order) as one flat tensor."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """`torch.nn.utils.clip_grad_norm_` over all gradients at once; returns the norm."""
        grad = self.param.grad
        norm = torch.linalg.vector_norm(grad)
        coef = max_norm / (float(norm) + 1e-6)  # a Python float: no sync on a CPU, 3 fewer ops
        if coef < 1.0:
            grad.mul_(coef)
        return norm


def flat_data(module: nn.Module) -> torch.Tensor:
    """All of a module's parameters re-pointed into one flat tensor (no gradients: a target
    network), returned; in `parameters()` order, as `FlatParams` packs its online twin, so
    a Polyak update is one `lerp_` of the two flat tensors."""
    params = list(module.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    start = 0
    for p in params:
        p.data = flat[start:start + p.numel()].view_as(p)
        start += p.numel()
    return flat
