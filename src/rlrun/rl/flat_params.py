"""All of a module's parameters packed into one tensor (a CPU speed device of PPO's)."""

from __future__ import annotations

from typing import Any


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

    def __init__(self, module: Any):
        import torch

        self.params = params = [p for p in module.parameters() if p.requires_grad]
        self.param = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        self.param.grad = torch.zeros_like(self.param)
        start = 0
        for p in params:
            end = start + p.numel()
            p.data = self.param.data[start:end].view_as(p)
            p.grad = self.param.grad[start:end].view_as(p)
            start = end

    def zero_grad(self) -> None:
        self.param.grad.zero_()

    def flatten(self, tensors: Any) -> Any:
        """One tensor per packed parameter (in `params` order) as one flat tensor."""
        import torch

        return torch.cat([t.reshape(-1) for t in tensors])

    def clip_grad_norm_(self, max_norm: float) -> Any:
        """`torch.nn.utils.clip_grad_norm_` over all gradients at once; returns the norm."""
        import torch

        grad = self.param.grad
        norm = torch.linalg.vector_norm(grad)
        if grad.device.type == "cpu":  # a Python float costs no sync here, and 3 fewer ops
            coef = max_norm / (float(norm) + 1e-6)
            if coef < 1.0:
                grad.mul_(coef)
        else:
            grad.mul_((max_norm / (norm + 1e-6)).clamp_(max=1.0))
        return norm
