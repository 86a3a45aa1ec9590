"""A network of the plugin's own: `network=linear`, a single linear layer.

    rlrun algo=reinforce env=corridor network=linear   # a tabular softmax policy on one-hots

rlrun builds networks with `hydra.utils.instantiate(cfg.network, in_dim=..., out_dim=...)`
once the task's shapes are known, so a network class takes `in_dim` and `out_dim` plus its
own options from configs/network/<name>.yaml.
"""

from __future__ import annotations

import torch
from torch import nn


class Linear(nn.Module):
    """y = W x + b on vector observations, started at zero (a uniform policy, a zero
    baseline)."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.layer = nn.Linear(in_dim, out_dim, bias=bias)
        nn.init.zeros_(self.layer.weight)
        if bias:
            nn.init.zeros_(self.layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)  # vector observations: (..., in_dim)
