"""The convolutional torso of DQN's Nature paper (Mnih et al. 2015), for stacked frames."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlrun.core.errors import ConfigError


class NatureCNN(nn.Module):
    """conv 32x8x8/4, 64x4x4/2, 64x3x3/1, dense `hidden`, then `out_dim` outputs.

    `in_dim` is the observation shape (C, H, W); uint8 pixels are scaled to [0, 1] here, so
    replay buffers keep them as bytes (a quarter of the memory of float32)."""

    input_ranks = (3,)  # the observation shapes it takes: (C, H, W) images

    def __init__(self, in_dim: int | Sequence[int], out_dim: int, hidden: int = 512,
                 channels: Sequence[int] = (32, 64, 64)):
        super().__init__()
        shape = tuple(in_dim) if isinstance(in_dim, Sequence) else (int(in_dim),)
        if len(shape) != 3:
            raise ConfigError(f"network=nature_cnn needs image observations (C, H, W), got"
                              f" shape {shape}: use network=mlp")
        c1, c2, c3 = (int(c) for c in channels)
        self.convs = nn.Sequential(
            nn.Conv2d(shape[0], c1, 8, stride=4), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, *shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(n_flat, int(hidden)), nn.ReLU(),
                                  nn.Linear(int(hidden), int(out_dim)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return self.head(self.convs(x))
