"""A decoder-only character transformer (RMSNorm, RoPE, causal SDPA, SwiGLU) whose feed-forward
block is dense or a sparse mixture of experts (`network.ffn=dense|switch|mixtral`), attention
multi-head, grouped-query or multi-query (`network.n_kv_heads=null|divisor|1`), and the
position encoding rotary, sinusoidal or absent (`network.pos_encoding=rope|sinusoidal|none`).

Built by the LM loop once the vocabulary is known:
`build_network(cfg.network, vocab_size=V)`. `forward(idx)` returns `(logits, aux)`: `aux.loss`
holds the MoE router losses (already multiplied by their coefficients), `aux.moe` the per-layer
routing statistics and `aux.flops` the forward matmul FLOPs of the call (an explicit count,
checked against torch's FLOP counter in tests). Nothing of a call is left on the module.
`forward(idx, cache)` continues a sequence held in a KV cache (`rlrun.nets.decode`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from rlrun.nets.moe import MoE
from rlrun.schemas.networks import moe_capacity_factor, moe_d_expert, moe_top_k


class ForwardAux(NamedTuple):
    """What a forward pass returns beside the logits."""

    loss: torch.Tensor  # router losses, weighted by aux_loss_coef and z_loss_coef (0 if dense)
    moe: list[Mapping[str, torch.Tensor]]  # routing statistics per MoE layer (MoEStats)
    flops: int  # forward matmul FLOPs of this call


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


def sinusoidal_table(max_len: int, d: int, scale: float = 0.02, base: float = 10000.0):
    """Vaswani et al.'s absolute encoding (max_len, d): sin on even, cos on odd dimensions,
    scaled so its per-dimension RMS equals the embeddings' initial std (`scale`): added to
    token embeddings of std 0.02, an unscaled table (RMS 0.71) would drown the tokens."""
    inv = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = torch.outer(torch.arange(max_len, dtype=torch.float32), inv)
    pe = torch.stack((ang.sin(), ang.cos()), -1).flatten(-2)
    return pe * (scale * 2 ** 0.5)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of x (B, H, T, Dh) by position-dependent angles; cos and
    sin hold the rows of x's positions (the first T rows when they are longer)."""
    t = x.shape[-2]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    c, s = cos[:t].to(x.dtype), sin[:t].to(x.dtype)
    return torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), -1).flatten(-2)


def _sdpa_has_enable_gqa() -> bool:
    try:
        q = torch.zeros(1, 2, 1, 2)
        F.scaled_dot_product_attention(q, q[:, :1], q[:, :1], enable_gqa=True)
        return True
    except TypeError:
        return False


# How K/V heads reach their query heads when n_kv_heads < n_heads: "enable_gqa" lets SDPA
# (torch >= 2.5) broadcast them, "expand" copies them with repeat_interleave first.
# scripts/bench_lm_decode.py times both: on this CPU build (torch 2.13) enable_gqa took
# 0.78-0.85x expand's time for a training step's attention and no more for a decode step
# (docs/lm.md), so it is the default where it exists.
GQA_MODES = ("expand", "enable_gqa") if _sdpa_has_enable_gqa() else ("expand",)
GQA_MODE = GQA_MODES[-1]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: int = 0,
           mode: str | None = None, causal: bool = True,
           key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Causal SDPA of q (B, H, T, Dh) over k, v (B, KV, past + T, Dh), KV dividing H: query
    head j reads K/V head j // (H / KV). `past` keys precede the queries (a KV cache), so
    query i sees keys 0..past + i: SDPA's `is_causal` aligns the mask top-left, which is
    right only without a past; one new token (T = 1) sees everything. `causal=False` (an
    encoder, `network.causal=false`): every query sees every key, or, with `key_mask`
    (B, T) bool, every key where it is True (padding left out)."""
    groups = q.shape[1] // k.shape[1]
    t = q.shape[-2]
    kw: dict = {}
    if groups > 1:
        if (mode or GQA_MODE) == "enable_gqa":
            kw["enable_gqa"] = True
        else:
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    if not causal:
        mask = None if key_mask is None else key_mask[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)
    if key_mask is not None:
        raise ValueError("key_mask is for encoders (causal=False)")
    if past == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, **kw)
    mask = None if t == 1 else torch.ones(t, past + t, dtype=torch.bool,
                                          device=q.device).tril(past)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)


class Attention(nn.Module):
    """Multi-head attention with n_kv_heads K/V heads: n_heads (MHA), 1 (MQA) or a divisor
    (GQA). One fused projection holds [q | k | v]; with n_kv_heads = n_heads its layout is
    the MHA one, so MHA checkpoints load unchanged."""

    def __init__(self, d: int, n_heads: int, n_kv_heads: int | None = None,
                 causal: bool = True):
        super().__init__()
        self.h, self.kv, self.hd = n_heads, n_kv_heads or n_heads, d // n_heads
        self.causal = causal
        self.qkv = nn.Linear(d, d + 2 * self.kv * self.hd, bias=False)
        self.proj = nn.Linear(d, d, bias=False)

    def project(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None):
        """q (B, H, T, Dh) and k, v (B, KV, T, Dh), rotary embeddings (when cos is given)
        applied to q and k: K is rotated before it is cached, so a cached key never moves."""
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split([self.h * self.hd, self.kv * self.hd, self.kv * self.hd],
                                    -1)
        q = q.view(b, t, self.h, self.hd).transpose(1, 2)
        k = k.view(b, t, self.kv, self.hd).transpose(1, 2)
        v = v.view(b, t, self.kv, self.hd).transpose(1, 2)
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None,
                cache=None, layer: int = 0, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.project(x, cos, sin)
        past = 0
        if cache is not None:  # write this step's K/V, attend over everything cached so far
            past = cache.length
            k, v = cache.update(layer, k, v)
        y = attend(q, k, v, past, causal=self.causal, key_mask=key_mask)
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
    def __init__(self, d: int, n_heads: int, ffn: nn.Module, n_kv_heads: int | None = None,
                 causal: bool = True):
        super().__init__()
        self.n1, self.attn = RMSNorm(d), Attention(d, n_heads, n_kv_heads, causal)
        self.n2, self.ffn = RMSNorm(d), ffn

    def forward(self, x, cos, sin, cache=None, layer: int = 0, keep=None):
        """`keep` (B, T) bool, an encoder's non-padding positions: attention reads only
        those keys and the FFN (a MoE's router, capacity and statistics) sees only those
        tokens; the others get no FFN update."""
        x = x + self.attn(self.n1(x), cos, sin, cache, layer, keep)
        if keep is None:
            return x + self.ffn(self.n2(x))
        h = self.n2(x)
        return x + torch.zeros_like(h).index_put((keep,), self.ffn(h[keep]))


class Transformer(nn.Module):
    """Token embedding -> n_layers blocks -> RMSNorm -> linear head (untied).

    `causal=False` makes it an encoder (bidirectional attention, `network.causal=false`);
    `lm_head=False` (passed by loops that put their own head on `hidden`, e.g.
    `rlrun.nets.classifier`) leaves out the vocabulary-sized output layer."""

    def __init__(self, vocab_size: int, d_model: int = 128, n_layers: int = 2, n_heads: int = 4,
                 block_size: int = 64, ffn: str = "dense", d_ff: int = 384, n_experts: int = 8,
                 top_k: int | None = None, d_expert: int | None = None,
                 capacity_factor: float | None = None, jitter: float = 0.0,
                 aux_loss_coef: float = 0.01, z_loss_coef: float = 0.001,
                 moe_every: int = 1, n_kv_heads: int | None = None,
                 pos_encoding: str = "rope", causal: bool = True, lm_head: bool = True):
        super().__init__()
        # The values are checked before a run by network.* 's schema (rlrun.schemas.networks,
        # preflight); the MoE defaults (top_k, d_expert, capacity) come from there too.
        k = moe_top_k(ffn, top_k)
        d_exp = moe_d_expert(ffn, d_ff, k, d_expert)
        capacity_factor = moe_capacity_factor(ffn, capacity_factor)
        self.block_size, self.vocab_size, self.d_model = block_size, vocab_size, d_model
        self.causal = bool(causal)
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads or n_heads
        self.head_dim, self.pos_encoding = d_model // n_heads, pos_encoding
        self.aux_coef, self.z_coef = aux_loss_coef, z_loss_coef

        def make_ffn(i: int) -> nn.Module:
            if ffn == "dense" or i % moe_every != moe_every - 1:
                return SwiGLU(d_model, d_ff)
            return MoE(d_model, d_exp, n_experts, ffn, k, capacity_factor or None, jitter)

        self.emb = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, make_ffn(i), n_kv_heads,
                                          self.causal) for i in range(n_layers))
        self.norm = RMSNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False) if lm_head else None
        cos, sin = rope_tables(d_model // n_heads, block_size)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("pe", sinusoidal_table(block_size, d_model), persistent=False)
        self.moe_layers = [b.ffn for b in self.blocks if isinstance(b.ffn, MoE)]
        for name, p in self.named_parameters():  # GPT-2 style small init
            if p.dim() < 2 or "router" in name:  # the router keeps its own small init
                continue
            nn.init.normal_(p, std=0.02)  # experts as the dense FFN: a fair comparison
            if name.endswith(("proj.weight", "w2.weight", "ffn.w2")):
                nn.init.normal_(p, std=0.02 / (2 * n_layers) ** 0.5)

    def embed(self, idx: torch.Tensor, start: int = 0):
        """Token embeddings of idx (B, T) at positions start.. (plus the sinusoidal table),
        and the rotary cos/sin rows of those positions (None unless pos_encoding=rope)."""
        t = idx.shape[1]
        if start + t > self.block_size:
            raise ValueError(f"positions up to {start + t} > block_size {self.block_size}")
        x = self.emb(idx)
        if self.pos_encoding == "sinusoidal":
            x = x + self.pe[start:start + t].to(x.dtype)
        if self.pos_encoding != "rope":
            return x, None, None
        return x, self.cos[start:start + t], self.sin[start:start + t]

    def forward(self, idx: torch.Tensor, cache=None) -> tuple[torch.Tensor, ForwardAux]:
        """Logits (B, T, V) and the call's `ForwardAux`. With a `rlrun.nets.decode.KVCache`,
        idx continues the cached sequence: positions (RoPE angles, the sinusoidal rows)
        start at the cache's length, each layer appends its K/V and attends over all cached
        keys."""
        if self.head is None:
            raise ValueError("built with lm_head=False: call hidden() and apply your own head")
        h, aux = self.hidden(idx, cache)
        return self.head(h), aux

    def hidden(self, idx: torch.Tensor, cache=None,
               keep: torch.Tensor | None = None) -> tuple[torch.Tensor, ForwardAux]:
        """The final normalised hidden states (B, T, d_model) and the call's `ForwardAux`
        (its FLOPs include the LM head when there is one): what `forward` feeds its head,
        and what an encoder's own head (a classifier's pooling) reads. An encoder may pass
        `keep` (B, T) bool, the positions that are not padding: attention and the FFNs then
        ignore the others (a text of padding only keeps all its positions)."""
        b, t = idx.shape
        if keep is not None:
            if self.causal or cache is not None:
                raise ValueError("keep= is for encoders (causal=False) without a cache")
            keep = keep | ~keep.any(1, keepdim=True)
        past = cache.length if cache is not None else 0
        x, cos, sin = self.embed(idx, past)
        for i, blk in enumerate(self.blocks):
            x = blk(x, cos, sin, cache, i, keep)
        if cache is not None:
            cache.length += t
        h = self.norm(x)
        aux = h.new_zeros((), dtype=torch.float32)
        for m in self.moe_layers:
            aux = aux + self.aux_coef * m.stats["aux_loss"] + self.z_coef * m.stats["z_loss"]
        ffn_tokens = None if keep is None else int(keep.sum())
        return h, ForwardAux(aux, [m.stats for m in self.moe_layers],
                             self.forward_flops(b, t, past, ffn_tokens))

    def forward_flops(self, b: int, t: int, past: int = 0,
                      ffn_tokens: int | None = None) -> int:
        """Matmul FLOPs (2 per multiply-add) of the last forward at batch b, length t after
        `past` cached positions: q/k/v (K and V have n_kv_heads heads) and output
        projections, the two attention matmuls (t x (past + t), as SDPA computes them), each
        FFN (MoE: router + the assignments actually kept; dense: `ffn_tokens`, all b * t
        unless padding was left out) and the head."""
        n, d = b * t, self.d_model
        kv = self.n_kv_heads * self.head_dim
        attn = 2 * n * d * (2 * d + 2 * kv) + 2 * 2 * b * t * (past + t) * d
        total = 2 * n * d * self.vocab_size if self.head is not None else 0
        for blk in self.blocks:
            f = blk.ffn
            nf = n if ffn_tokens is None else ffn_tokens
            total += attn + (f.flops if isinstance(f, MoE) else 2 * nf * d * 3 * f.d_ff)
        return total

    def num_params(self) -> tuple[int, int]:
        """(total, active per token): experts count k/N of their weights as active."""
        total = sum(p.numel() for p in self.parameters())
        inactive = sum((m.w13.numel() + m.w2.numel()) * (1 - m.k / m.n)
                       for m in self.moe_layers)
        return total, int(total - inactive)
