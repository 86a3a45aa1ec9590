"""A plain MLP, the default network of the deep RL loops."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlrun.schemas import networks

# name -> module class; the names are the schema's choices (network.activation)
ACTIVATIONS = {name: getattr(nn, cls) for name, cls in networks.ACTIVATIONS.items()}


class MLP(nn.Sequential):
    """Linear layers with `activation` between them; none after the output layer."""

    input_ranks = (1,)  # the observation shapes it takes: flat vectors

    def __init__(self, in_dim: int, out_dim: int, hidden_sizes: Sequence[int] = (256, 256),
                 activation: str = "relu"):
        layers: list[nn.Module] = []
        sizes = [int(in_dim), *map(int, hidden_sizes)]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], int(out_dim)))
        super().__init__(*layers)
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)
