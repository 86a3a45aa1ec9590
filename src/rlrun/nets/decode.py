"""Autoregressive decoding for `rlrun.nets.transformer.Transformer`, with or without a KV cache.

With the cache the prompt is one forward pass, then each new character is one forward pass of
length 1 that appends its keys and values to the cache and attends over all cached ones;
RoPE angles (and sinusoidal rows) continue from the cache's length. Without it every step
recomputes the whole context.

Past `block_size` the prompt is cut, not the cache rolled: when the cache is full the last
`block_size // 2` characters are prefilled again into an emptied cache. Every forward then
sees positions 0..block_size-1 from the start of its context, as in training; a rolled cache
would keep keys whose lower layers saw characters that are no longer in the window, and
would need positions the model never trained on (sinusoidal). `generate(..., cache=False)`
applies the same cut to its context, so both ways compute the same logits at every step and
greedy decoding gives the same characters (tested), at any length.
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values (batch, n_kv_heads, max_len, head_dim) per layer, preallocated;
    `length` positions are filled. Its size is 2 x layers x kv_heads x head_dim x
    bytes_per_element per token, which is what GQA/MQA shrink by n_heads / n_kv_heads."""

    def __init__(self, n_layers: int, batch: int, n_kv_heads: int, head_dim: int,
                 max_len: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        shape = (batch, n_kv_heads, max_len, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.max_len, self.length = max_len, 0

    @classmethod
    def for_model(cls, model, batch: int = 1, max_len: int | None = None) -> KVCache:
        p = next(model.parameters())
        return cls(len(model.blocks), batch, model.n_kv_heads, model.head_dim,
                   max_len or model.block_size, p.dtype, p.device)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Write k, v (B, KV, T, Dh) at positions length..length+T of `layer`; return that
        layer's keys and values of positions 0..length+T. The model advances `length` once
        all layers have written."""
        end = self.length + k.shape[-2]
        if end > self.max_len:
            raise ValueError(f"KV cache full: {end} > max_len {self.max_len}")
        self.k[layer][:, :, self.length:end] = k
        self.v[layer][:, :, self.length:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def reset(self) -> None:
        self.length = 0

    def nbytes(self) -> int:
        """Bytes the cache's tensors hold (all max_len positions), read from their storage."""
        return sum(t.untyped_storage().nbytes() for t in self.k + self.v)

    def used_bytes(self) -> int:
        """Bytes of the `length` filled positions."""
        return self.nbytes() * self.length // self.max_len


def cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, bytes_per_elem: int,
                tokens: int, batch: int = 1) -> int:
    """The analytical KV-cache size: 2 (K and V) x layers x kv_heads x head_dim x bytes per
    element x tokens (x batch)."""
    return 2 * n_layers * n_kv_heads * head_dim * bytes_per_elem * tokens * batch


@torch.no_grad()
def generate(model, prompt: list[int], n: int, temperature: float = 1.0,
             generator: torch.Generator | None = None, cache: bool = True,
             greedy: bool = False) -> list[int]:
    """`n` characters after `prompt` (a list of ids; empty means id 0), sampled at
    `temperature` with `generator` or taken greedily. The model is put in eval mode and
    restored. With `cache` the prompt is prefilled once and each step is a length-1 forward;
    past block_size the context is cut to its last block_size // 2 characters (both ways)."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    block, keep = model.block_size, max(1, model.block_size // 2)
    ids = list(prompt or [0])[-block:]  # a longer prompt keeps its last block_size chars
    start = 0  # where the current context begins in ids
    kv = KVCache.for_model(model) if cache else None
    out: list[int] = []
    for _ in range(n):
        if len(ids) - start > block:  # full: cut the context to its last `keep` characters
            start = len(ids) - keep
            if kv is not None:
                kv.reset()
        if kv is not None:  # only the characters the cache has not seen yet
            logits = model(torch.tensor([ids[start + kv.length:]], device=dev), kv)[0][0, -1]
        else:
            logits = model(torch.tensor([ids[start:]], device=dev))[0][0, -1]
        if greedy:
            nxt = int(logits.argmax())
        else:
            probs = (logits.float() / temperature).softmax(-1)
            nxt = int(torch.multinomial(probs, 1, generator=generator))
        ids.append(nxt)
        out.append(nxt)
    model.train(was_training)
    return out
