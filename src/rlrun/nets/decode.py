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

Classifier-free guidance (`generate(..., guidance_scale=gamma, negative_prompt=...)`) runs a
second, unconditional context beside the prompt's, with its own cache and cut, and draws from
log p(x|uncond) + gamma (log p(x|prompt) - log p(x|uncond)) (`generate`'s docstring).
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


class _Context:
    """One decoding context: its characters, where its window starts, and its KV cache (or
    None: each step recomputes the window). The cut past block_size is the module's."""

    def __init__(self, model, ids: list[int], cache: bool):
        self.model, self.block = model, model.block_size
        self.keep = max(1, model.block_size // 2)
        self.dev = next(model.parameters()).device
        self.ids = list(ids or [0])[-self.block:]  # a longer prompt keeps its last block_size
        self.start = 0  # where the current window begins in ids
        self.kv = KVCache.for_model(model) if cache else None

    def next_logits(self) -> torch.Tensor:
        """Logits (V,) of the character after `ids`."""
        if len(self.ids) - self.start > self.block:  # full: cut to the last `keep` characters
            self.start = len(self.ids) - self.keep
            if self.kv is not None:
                self.kv.reset()
        if self.kv is not None:  # only the characters the cache has not seen yet
            new = self.ids[self.start + self.kv.length:]
            return self.model(torch.tensor([new], device=self.dev), self.kv)[0][0, -1]
        return self.model(torch.tensor([self.ids[self.start:]], device=self.dev))[0][0, -1]


def guided_scores(cond_logits: torch.Tensor, uncond_logits: torch.Tensor,
                  guidance_scale: float) -> torch.Tensor:
    """CFG for language models: log p_hat = log p(x|uncond) + gamma (log p(x|prompt)
    - log p(x|uncond)), from both branches' logits (normalised here with log_softmax, in
    float32). The result is unnormalised; temperature and sampling come after it."""
    lc = cond_logits.float().log_softmax(-1)
    lu = uncond_logits.float().log_softmax(-1)
    return lu + guidance_scale * (lc - lu)


@torch.no_grad()
def generate(model, prompt: list[int], n: int, temperature: float = 1.0,
             generator: torch.Generator | None = None, cache: bool = True,
             greedy: bool = False, guidance_scale: float | None = None,
             negative_prompt: list[int] | None = None) -> list[int]:
    """`n` characters after `prompt` (a list of ids; empty means id 0), sampled at
    `temperature` with `generator` or taken greedily. The model is put in eval mode and
    restored. With `cache` the prompt is prefilled once and each step is a length-1 forward;
    past block_size the context is cut to its last block_size // 2 characters (both ways).

    `guidance_scale` gamma turns on classifier-free guidance (Sanchez et al. 2023, "Stay on
    topic with classifier-free guidance"): each character is drawn from
    log p_hat = log p(x | uncond) + gamma (log p(x | prompt) - log p(x | uncond))
    (`guided_scores`), then divided by `temperature` (or its argmax taken). The unconditional
    branch starts from `negative_prompt`, or, when none is given (None or empty), from the
    prompt's last character alone; every character drawn is appended to both branches. This
    is the convention of transformers' `guidance_scale`
    (`UnbatchedClassifierFreeGuidanceLogitsProcessor` in
    src/transformers/generation/logits_process.py, read for this: the same formula on
    log_softmax scores, `unconditional_ids` defaulting to `input_ids[:, -1:]`; its
    generation/utils.py applies it before the temperature warper). gamma = 1 is plain
    decoding (the same characters: tested), gamma = 0 decoding from the unconditional branch,
    gamma > 1 sharpens towards the prompt. Each branch has its own KV cache and its own cut
    past block_size (tested against recomputation): two forwards per character, not one
    batched one, because the branches have different lengths and the Transformer keeps one
    position counter per cache, not per row.
    `guidance_scale=None` (the default) runs the prompt branch alone; transformers likewise
    skips the unconditional branch at exactly 1, which callers can do by passing None."""
    was_training = model.training
    model.eval()
    cond = _Context(model, prompt, cache)
    uncond = None
    if guidance_scale is not None:
        uncond = _Context(model, negative_prompt or cond.ids[-1:], cache)
    out: list[int] = []
    for _ in range(n):
        logits = cond.next_logits()
        if uncond is not None:
            logits = guided_scores(logits, uncond.next_logits(), guidance_scale)
        if greedy:
            nxt = int(logits.argmax())
        else:
            probs = (logits.float() / temperature).softmax(-1)
            nxt = int(torch.multinomial(probs, 1, generator=generator))
        for ctx in (cond, uncond) if uncond is not None else (cond,):
            ctx.ids.append(nxt)
        out.append(nxt)
    model.train(was_training)
    return out
