"""What the attention heads of `rlrun.nets.transformer.Transformer` do, measured at evaluation.

Off the hot path: training attends through SDPA, which never forms the probabilities. Here
each layer's q, k, v are recomputed on a fixed validation batch and attention is computed
explicitly (scores, causal mask, softmax, weighted sum); its output is compared with SDPA's
on the same q, k, v (`attention/sdpa_max_abs_diff`, ~1e-7 in float32), so the maps shown are
the ones the model uses. Per layer and head:

- entropy: -sum_j p_ij ln p_ij of each query row i, averaged over rows and sequences (nats;
  a row at position i can reach at most ln(i + 1), so ln(T + 1) - 1 on average for length T);
- diagonal score: the attention mass within +-2 positions of the query (causally: on the
  query itself and the two before it), averaged the same way;
- type, by the post's rule, diagonal first and then entropy: `local` when the diagonal score
  >= LOCAL_DIAGONAL (0.5: most of the mass on the last three characters); otherwise `copy`
  when the entropy <= COPY_ENTROPY (1.0 nats: e^1 ~ 2.7 keys effectively, sharp but not
  local, e.g. attending to an earlier occurrence); otherwise `broad` when the entropy is at
  least BROAD_FRACTION (0.75) of the uniform-attention entropy of the same rows; otherwise
  `mixed`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rlrun.nets.transformer import attend

LOCAL_DIAGONAL = 0.5
COPY_ENTROPY = 1.0
BROAD_FRACTION = 0.75
WINDOW = 2
HEAD_TYPES = ("local", "copy", "broad", "mixed")


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
    """Causal attention written out: (output (B, H, T, Dh), probabilities (B, H, T, T)) of
    q (B, H, T, Dh) over k, v (B, KV, T, Dh), query head j reading K/V head j // (H / KV)."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    t = q.shape[-2]
    scores = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(q.shape[-1])
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    probs = scores.masked_fill(future, float("-inf")).softmax(-1)
    return (probs @ v.float()).to(q.dtype), probs


@torch.no_grad()
def attention_probs(model, idx: torch.Tensor) -> tuple[list[torch.Tensor], float]:
    """The attention probabilities of every layer ((B, H, T, T) each) on idx (B, T), and the
    largest |explicit - SDPA| over all layers' attention outputs."""
    was_training = model.training
    model.eval()
    x, cos, sin = model.embed(idx)
    maps, diff = [], 0.0
    for blk in model.blocks:
        q, k, v = blk.attn.project(blk.n1(x), cos, sin)
        y, p = explicit_attention(q, k, v)
        diff = max(diff, float((y - attend(q, k, v)).abs().max()))
        maps.append(p)
        x = blk(x, cos, sin)
    model.train(was_training)
    return maps, diff


def head_stats(probs: torch.Tensor, window: int = WINDOW) -> tuple[torch.Tensor, torch.Tensor]:
    """(entropy, diagonal score), each (H,), of probabilities (B, H, T, T): per query row,
    then averaged over rows and sequences."""
    t = probs.shape[-1]
    ent = -(probs * probs.clamp_min(1e-30).log()).sum(-1)  # 0 ln 0 = 0
    i = torch.arange(t, device=probs.device)
    near = ((i[:, None] - i[None, :]).abs() <= window).to(probs.dtype)
    diag = (probs * near).sum(-1)
    return ent.mean((0, 2)), diag.mean((0, 2))


def uniform_entropy(t: int) -> float:
    """Mean over query positions 0..t-1 of ln(i + 1): the entropy of uniform causal attention."""
    return sum(math.log(i + 1) for i in range(t)) / t


def head_type(entropy: float, diagonal: float, t: int) -> str:
    """The post's rule: the diagonal score first, then the entropy (thresholds above)."""
    if diagonal >= LOCAL_DIAGONAL:
        return "local"
    if entropy <= COPY_ENTROPY:
        return "copy"
    if entropy >= BROAD_FRACTION * uniform_entropy(t):
        return "broad"
    return "mixed"


def _upscale(a: np.ndarray, f: int) -> np.ndarray:
    return a.repeat(f, -2).repeat(f, -1)


def map_grid(probs: torch.Tensor, scale: int = 4) -> np.ndarray:
    """One sequence's maps (H, T, T) -> a (1, H', W') grid in [0, 1], heads side by side,
    rows = queries, columns = keys; sqrt(p) so that broad heads' small weights show."""
    from rlrun.core.logger import image_grid

    a = _upscale(probs.float().sqrt().cpu().numpy(), scale)[:, None]
    return image_grid(a, nrow=a.shape[0], pad=2)


def entropy_heatmap(entropy: np.ndarray, t: int, cell: int = 24) -> np.ndarray:
    """Entropy (layers, heads) -> a (1, H, W) image, one cell each, white = uniform attention
    (entropy / uniform_entropy(t)), black = one key."""
    return _upscale((entropy / uniform_entropy(t)).clip(0, 1)[None], cell).astype(np.float32)


def log_attention(log: Any, model, idx: torch.Tensor, step: int) -> dict[str, Any]:
    """Compute and log the head statistics of `model` on the fixed batch idx (B, T): scalars
    `attention/entropy`, `attention/diagonal_score` (all heads' mean),
    `attention/entropy_layer<i>`, per head `attention/{entropy,diagonal_score}/layer<i>/
    head<j>`, the count of each head type `attention/heads_<type>`, the SDPA check
    `attention/sdpa_max_abs_diff`; the images `attention/maps/layer<i>` (the batch's first
    sequence) and `attention/entropy_heatmap` (layers x heads); a text table of types."""
    maps, diff = attention_probs(model, idx)
    t = idx.shape[1]
    stats = [head_stats(p) for p in maps]
    ent = np.array([e.cpu().numpy() for e, _ in stats])
    diag = np.array([d.cpu().numpy() for _, d in stats])
    types = [[head_type(float(ent[i, j]), float(diag[i, j]), t) for j in range(ent.shape[1])]
             for i in range(ent.shape[0])]
    scalars = {"attention/entropy": float(ent.mean()),
               "attention/diagonal_score": float(diag.mean()),
               "attention/sdpa_max_abs_diff": diff}
    rows = ["| layer | head | entropy (nats) | diagonal score | type |", "|---|---|---|---|---|"]
    for i in range(len(maps)):
        scalars[f"attention/entropy_layer{i}"] = float(ent[i].mean())
        for j in range(ent.shape[1]):
            scalars[f"attention/entropy/layer{i}/head{j}"] = float(ent[i, j])
            scalars[f"attention/diagonal_score/layer{i}/head{j}"] = float(diag[i, j])
            rows.append(f"| {i} | {j} | {ent[i, j]:.3f} | {diag[i, j]:.3f} | {types[i][j]} |")
        log.image(f"attention/maps/layer{i}", map_grid(maps[i][0]), step)
    for kind in HEAD_TYPES:
        scalars[f"attention/heads_{kind}"] = sum(r.count(kind) for r in types)
    log.scalars(scalars, step)
    log.image("attention/entropy_heatmap", entropy_heatmap(ent, t), step)
    log.text("attention/head_types", "\n".join(rows), step)
    return {"entropy": ent, "diagonal": diag, "types": types, "maps": maps, "diff": diff}
