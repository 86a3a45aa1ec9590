"""The DDPM UNet (Ho et al. 2020, their `diffusion_tf` model) in a few small modules.

Residual blocks (GroupNorm, activation, 3x3 conv, the time embedding added in between,
dropout, a second conv), sinusoidal time-step embeddings fed to every residual block,
multi-head self-attention at the chosen resolutions, and a down path whose activations are
concatenated back into the up path. Any square image whose side divides by
2 ** (len(ch_mult) - 1) works; a side that does not is a one-line ConfigError.

Class conditioning (`n_classes=K`, for classifier-free guidance, Ho & Salimans 2022): a learned
class embedding of the time embedding's width is added to it, as in guided-diffusion's
`label_emb` and diffusers' `class_embedding` (both `nn.Embedding`, default N(0, 1) init). It
has K + 1 rows: row K is the learned null class, the unconditional branch eps(x) that training
reaches by dropping labels (`rlrun.nets.diffusion.drop_labels`). It is built after every other
layer, so a conditional UNet holds the unconditional one's parameters, drawn from the same
seed, plus this table; `n_classes=None` builds exactly the unconditional UNet of before (the
same state_dict, tested), and its checkpoints load unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rlrun.core.errors import ConfigError
from rlrun.schemas import networks

# name -> module class; the names are the schema's choices (network.activation)
ACTIVATIONS = {name: getattr(nn, networks.ACTIVATIONS[name]) for name in networks.UNET_ACTIVATIONS}


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of integer steps `t` (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device,
                                                           dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    """GN-act-conv, + projected time embedding, GN-act-dropout-conv, + (1x1) skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float,
                 act: type[nn.Module]):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Sequential(act(), nn.Linear(emb_dim, c_out))
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.act, self.drop = act(), nn.Dropout(dropout)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (as in DDPM)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.drop(self.act(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual."""

    def __init__(self, c: int, groups: int, heads: int):
        super().__init__()
        self.norm, self.heads = nn.GroupNorm(groups, c), heads
        self.qkv, self.out = nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w) \
            .permute(1, 0, 2, 4, 3).unbind(0)  # each (B, heads, HW, C/heads)
        y = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(y.permute(0, 1, 3, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """eps_theta(x_t, t): image (B, C, H, W) and integer steps (B,) -> (B, C, H, W)."""

    def __init__(self, in_channels: int, image_size: int, ch: int = 64,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 2,
                 attn_resolutions: Sequence[int] = (16,), dropout: float = 0.1,
                 groups: int = 32, heads: int = 1, activation: str = "silu",
                 n_classes: int | None = None):
        super().__init__()
        mults = [int(m) for m in ch_mult]
        if n_classes is not None and n_classes < 1:
            raise ConfigError(f"n_classes={n_classes}: a class-conditional UNet needs >= 1"
                              " class (null: unconditional)")
        networks.check_unet_size(image_size, mults)
        act = ACTIVATIONS[activation]
        emb_dim = 4 * ch
        self.ch, self.in_channels, self.image_size = ch, in_channels, image_size
        self.time = nn.Sequential(nn.Linear(ch, emb_dim), act(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        attn_at = {int(r) for r in attn_resolutions}

        def res(ci: int, co: int) -> ResBlock:
            return ResBlock(ci, co, emb_dim, groups, dropout, act)

        def attn(c: int, size: int) -> nn.Module:
            return Attention(c, groups, heads) if size in attn_at else nn.Identity()

        # down path: remember every activation's width, the up path concatenates them back
        self.down = nn.ModuleList()
        skips, c, size = [ch], ch, image_size
        for level, m in enumerate(mults):
            for _ in range(num_res_blocks):
                self.down.append(nn.ModuleList([res(c, ch * m), attn(ch * m, size)]))
                c = ch * m
                skips.append(c)
            if level < len(mults) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
                size //= 2
        self.mid = nn.ModuleList([res(c, c), Attention(c, groups, heads), res(c, c)])
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(mults))):
            for _ in range(num_res_blocks + 1):
                self.up.append(nn.ModuleList([res(c + skips.pop(), ch * m), attn(ch * m, size)]))
                c = ch * m
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(c, c, 3, padding=1)))
                size *= 2
        self.out = nn.Sequential(nn.GroupNorm(groups, c), act(),
                                 nn.Conv2d(c, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        # last, so that every layer above draws the same initial weights as without it
        self.n_classes = None if n_classes is None else int(n_classes)
        if self.n_classes is not None:
            self.label = nn.Embedding(self.n_classes + 1, emb_dim)  # row n_classes: null class

    @property
    def null_class(self) -> int | None:
        """The label of the unconditional branch eps(x) (None: an unconditional UNet)."""
        return self.n_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                y: torch.Tensor | None = None) -> torch.Tensor:
        """eps for images x (B, C, H, W) at steps t (B,); a conditional UNet also takes class
        labels y (B,) in 0..n_classes, n_classes being the null class (y=None: all null)."""
        emb = self.time(timestep_embedding(t, self.ch))
        if self.n_classes is not None:
            if y is None:
                y = torch.full_like(t, self.n_classes, dtype=torch.long)
            emb = emb + self.label(y)
        elif y is not None:
            raise ValueError("this UNet is unconditional (n_classes=None): it takes no labels")
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer[1](layer[0](h, emb)) if isinstance(layer, nn.ModuleList) else layer(h)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                h = layer[1](layer[0](torch.cat([h, hs.pop()], dim=1), emb))
            else:
                h = layer(h)
        return self.out(h)
