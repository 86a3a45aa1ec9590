"""A decoder-only character transformer (RMSNorm, RoPE, causal SDPA, SwiGLU) whose feed-forward
block is dense or a sparse mixture of experts (`network.ffn=dense|switch|mixtral`).

Built by the LM loop once the vocabulary is known:
`build_network(cfg.network, vocab_size=V)`. `forward(idx)` returns the logits; the MoE
losses (already multiplied by their coefficients) are in `model.aux_loss` after a call, the
per-layer routing statistics in `model.moe_stats()`, and the forward matmul FLOPs of the last
call in `model.last_flops` (an explicit count, checked against torch's FLOP counter in tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlrun.core.errors import ConfigError
from rlrun.nets.moe import MoE

FFNS = ("dense", "switch", "mixtral")


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) \
            * self.weight


def rope_tables(head_dim: int, max_len: int, base: float = 10000.0):
    """cos/sin tables (max_len, head_dim/2) of rotary position embeddings."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = torch.outer(torch.arange(max_len, dtype=torch.float32), inv)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of x (B, H, T, Dh) by position-dependent angles."""
    t = x.shape[-2]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    c, s = cos[:t].to(x.dtype), sin[:t].to(x.dtype)
    return torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), -1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.h = n_heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class SwiGLU(nn.Module):
    """Dense feed-forward: W2 (silu(x W1) * x W3), W1 and W3 fused into one matmul."""

    def __init__(self, d: int, d_ff: int):
        super().__init__()
        self.d_ff = d_ff
        self.w13 = nn.Linear(d, 2 * d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.w13(x).chunk(2, -1)
        return self.w2(F.silu(g) * u)


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int, ffn: nn.Module):
        super().__init__()
        self.n1, self.attn, self.n2, self.ffn = RMSNorm(d), Attention(d, n_heads), RMSNorm(d), ffn

    def forward(self, x, cos, sin):
        x = x + self.attn(self.n1(x), cos, sin)
        return x + self.ffn(self.n2(x))


class Transformer(nn.Module):
    """Token embedding -> n_layers blocks -> RMSNorm -> linear head (untied)."""

    def __init__(self, vocab_size: int, d_model: int = 128, n_layers: int = 2, n_heads: int = 4,
                 block_size: int = 64, ffn: str = "dense", d_ff: int = 384, n_experts: int = 8,
                 top_k: int | None = None, d_expert: int | None = None,
                 capacity_factor: float | None = None, jitter: float = 0.0,
                 aux_loss_coef: float = 0.01, z_loss_coef: float = 0.001,
                 moe_every: int = 1):
        super().__init__()
        if ffn not in FFNS:
            raise ConfigError(f"network.ffn={ffn!r}: use one of {', '.join(FFNS)}")
        for key, v in (("d_model", d_model), ("n_layers", n_layers), ("n_heads", n_heads),
                       ("block_size", block_size), ("d_ff", d_ff), ("n_experts", n_experts),
                       ("moe_every", moe_every)):
            if v < 1:
                raise ConfigError(f"network.{key}={v} must be >= 1")
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ConfigError(f"network.d_model={d_model} must split into n_heads={n_heads}"
                              " heads of even size (rotary embeddings rotate pairs)")
        if capacity_factor is not None and capacity_factor < 0:
            raise ConfigError(f"network.capacity_factor={capacity_factor} must be >= 0 or null")
        if capacity_factor is None:  # the papers' defaults: Switch drops, Mixtral does not
            capacity_factor = 1.25 if ffn == "switch" else 0.0
        if not 0 <= jitter < 1 or aux_loss_coef < 0 or z_loss_coef < 0:
            raise ConfigError("network.jitter must be in [0, 1), aux_loss_coef and"
                              " z_loss_coef >= 0")
        if ffn == "dense" and top_k not in (None, 1):
            raise ConfigError(f"network.top_k={top_k} needs a MoE: network.ffn=switch|mixtral")
        k = top_k if top_k is not None else (1 if ffn == "switch" else 2)
        if ffn != "dense" and not 1 <= k <= n_experts:
            raise ConfigError(f"network.top_k={k} must be in [1, network.n_experts={n_experts}]"
                              f" (or null: {1 if ffn == 'switch' else 2} for ffn={ffn})")
        d_exp = d_expert if d_expert is not None else (d_ff if ffn == "switch" else d_ff // k)
        if ffn != "dense" and d_exp < 1:
            raise ConfigError(f"network.d_expert={d_exp} must be >= 1: raise network.d_ff"
                              f" (d_ff / top_k gives each expert's width) or set d_expert")
        self.block_size, self.vocab_size, self.d_model = block_size, vocab_size, d_model
        self.aux_coef, self.z_coef = aux_loss_coef, z_loss_coef

        def make_ffn(i: int) -> nn.Module:
            if ffn == "dense" or i % moe_every != moe_every - 1:
                return SwiGLU(d_model, d_ff)
            return MoE(d_model, d_exp, n_experts, ffn, k, capacity_factor or None, jitter)

        self.emb = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, make_ffn(i))
                                    for i in range(n_layers))
        self.norm = RMSNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        cos, sin = rope_tables(d_model // n_heads, block_size)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.moe_layers = [b.ffn for b in self.blocks if isinstance(b.ffn, MoE)]
        self.aux_loss = torch.zeros(())
        self.last_flops = 0
        for name, p in self.named_parameters():  # GPT-2 style small init
            if p.dim() < 2 or "router" in name:  # the router keeps its own small init
                continue
            nn.init.normal_(p, std=0.02)  # experts as the dense FFN: a fair comparison
            if name.endswith(("proj.weight", "w2.weight", "ffn.w2")):
                nn.init.normal_(p, std=0.02 / (2 * n_layers) ** 0.5)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        b, t = idx.shape
        if t > self.block_size:
            raise ValueError(f"sequence of {t} > block_size {self.block_size}")
        x = self.emb(idx)
        for blk in self.blocks:
            x = blk(x, self.cos, self.sin)
        logits = self.head(self.norm(x))
        aux = logits.new_zeros((), dtype=torch.float32)
        for m in self.moe_layers:
            aux = aux + self.aux_coef * m.stats["aux_loss"] + self.z_coef * m.stats["z_loss"]
        self.aux_loss = aux
        self.last_flops = self.forward_flops(b, t)
        return logits

    def forward_flops(self, b: int, t: int) -> int:
        """Matmul FLOPs (2 per multiply-add) of the last forward at batch b, length t: q/k/v
        and output projections, the two attention matmuls (full t x t, as SDPA computes
        them), each FFN (MoE: router + the assignments actually kept) and the head."""
        n, d = b * t, self.d_model
        attn = 2 * n * d * 4 * d + 2 * 2 * b * t * t * d
        total = 2 * n * d * self.vocab_size
        for blk in self.blocks:
            f = blk.ffn
            total += attn + (f.flops if isinstance(f, MoE) else 2 * n * d * 3 * f.d_ff)
        return total

    def moe_stats(self) -> list[dict[str, torch.Tensor]]:
        return [m.stats for m in self.moe_layers]

    def num_params(self) -> tuple[int, int]:
        """(total, active per token): experts count k/N of their weights as active."""
        total = sum(p.numel() for p in self.parameters())
        inactive = sum((m.w13.numel() + m.w2.numel()) * (1 - m.k / m.n)
                       for m in self.moe_layers)
        return total, int(total - inactive)
