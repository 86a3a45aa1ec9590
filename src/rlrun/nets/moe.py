"""Sparse mixture-of-experts feed-forward blocks: Switch (top-1) and Mixtral (top-k) routing.

    route(logits, "switch", k=1)   -> top-1 expert, gate = its softmax probability (Switch)
    route(logits, "mixtral", k=2)  -> top-k experts, gates = softmax over the k chosen logits

Dispatch is batched, with no Python loop over tokens: the (token, choice) assignments are
sorted by expert (within an expert by position, so a full expert drops the latest characters
and routing stays causal), each expert runs once on its contiguous slice, and one
`index_add_` scatters the gated outputs back. The experts' matmuls run as one grouped matmul
(`torch._grouped_mm` over the sorted slices, forward and backward, on the CPU) or, where this
torch lacks it and on CUDA, as a Python loop over the experts; `EXPERTS` below picks one, and
the two give the same numbers (tests/test_lm.py).

Losses follow the papers: the Switch load-balancing loss `N * sum_i f_i * P_i` (f_i: share of
assignments routed to expert i before dropping, P_i: mean router probability of expert i;
1.0 when perfectly balanced, N when collapsed) and the ST-MoE router z-loss
`mean(logsumexp(logits)^2)`. The router runs in float32 whatever the model's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from rlrun.core.errors import ConfigError

ROUTERS = ("switch", "mixtral")


def route(logits: torch.Tensor, router: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Expert indices (T, k) and gate weights (T, k) from float32 router logits (T, E)."""
    if router == "switch":
        probs = logits.softmax(-1)
        gates, idx = probs.topk(k, dim=-1)  # Switch: the raw probability, not renormalised
        return idx, gates
    top, idx = logits.topk(k, dim=-1)
    return idx, top.softmax(-1)  # Mixtral: softmax over the selected logits only


def aux_loss(logits: torch.Tensor, idx: torch.Tensor,
             counts: torch.Tensor | None = None) -> torch.Tensor:
    """Switch load-balancing loss N * sum_i f_i P_i (f_i over all k choices, before dropping).
    `counts`: the assignments per expert where the caller has them (`dispatch`), to skip a
    second count of the same indices."""
    n = logits.shape[-1]
    if counts is None:
        counts = torch.bincount(idx.reshape(-1), minlength=n)
    f = counts.to(logits.dtype) / idx.numel()
    p = logits.softmax(-1).mean(0)
    return n * (f * p).sum()


def z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE router z-loss: mean over tokens of logsumexp(logits)^2."""
    return torch.logsumexp(logits, -1).pow(2).mean()


def capacity(n_tokens: int, n_experts: int, k: int, factor: float | None) -> int:
    """Slots per expert: ceil(factor * tokens * k / experts); no limit when factor is None."""
    if factor is None:
        return n_tokens * k
    return max(1, math.ceil(factor * n_tokens * k / n_experts))


def dispatch(idx: torch.Tensor, n_experts: int, cap: int, seq_len: int | None = None):
    """Sort the (token, choice) assignments by expert, each expert's in priority order, and
    keep at most `cap` per expert. Returns (order, counts, kept): `order` indexes the
    flattened choice-major assignments (a = choice * T + token), so that expert e's kept ones
    are order[starts[e]:starts[e]+kept[e]].

    Priority is (position in the sequence, sequence, choice) for tokens laid out as
    (batch, seq_len): a full expert drops later positions first, so a character's routing
    never depends on any later character, of its own sequence or another (capacity-based
    routing in batch order would let sequence 0's future evict sequence 1's past).

    The assignments are first laid out in priority order (a strided copy), then sorted by
    expert alone with a stable sort, which keeps the priority order within each expert: the
    same permutation as an argsort of the composite key (expert, priority), at under half
    its cost (no key arithmetic; a sort of small integers).
    """
    t, k = idx.shape
    a = torch.arange(t * k, device=idx.device).view(k, t)  # choice-major assignment ids
    if seq_len is None or seq_len >= t:
        by_priority = a.t()  # (token, choice)
    else:  # (position, sequence, choice)
        by_priority = a.view(k, t // seq_len, seq_len).permute(2, 1, 0)
    by_priority = by_priority.reshape(-1)
    flat = idx.t().reshape(-1)
    order = by_priority[torch.sort(flat[by_priority], stable=True).indices]
    counts = torch.bincount(flat, minlength=n_experts)
    kept = counts.clamp(max=cap)
    return order, counts, kept


def experts_loop(xs: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor,
                 kept: torch.Tensor, n_kept: list[int] | None) -> torch.Tensor:
    """SwiGLU experts on rows sorted by expert (`n_kept[e]` rows for expert e): one matmul
    pair per expert on its contiguous slice, a Python loop over the experts. `n_kept` is
    `kept` as a list where the caller already has it (None: read here)."""
    if n_kept is None:
        n_kept = kept.tolist()
    # unbind once: indexing w13[e] per expert would make backward build a full-size zero
    # gradient per expert; unbind's backward stacks the slices once
    w13s, w2s = w13.unbind(0), w2.unbind(0)
    pieces, at = [], 0
    for e, n in enumerate(n_kept):
        if n == 0:
            continue
        g, u = (xs[at:at + n] @ w13s[e]).chunk(2, -1)
        pieces.append((F.silu(g) * u) @ w2s[e])
        at += n
    return torch.cat(pieces)


def experts_grouped(xs: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor,
                    kept: torch.Tensor, n_kept: list[int] | None) -> torch.Tensor:
    """The same, each matmul of all experts as one grouped matmul over the row slices
    (`offs`: where each expert's rows end). Each expert's rows meet its own weights as in
    the loop, so the numbers are the loop's; it saves the per-expert operators and their
    autograd nodes (MoE against dense on CPU: issue 27). `_grouped_mm` wants rows of a
    multiple of 16 bytes: other widths (tiny test models) take the loop, as CUDA does."""
    if xs.device.type != "cpu" or any(
            n * xs.element_size() % 16 for n in (xs.shape[1], w13.shape[2], w2.shape[1])):
        # CUDA's kernel has dtype and architecture limits and has never run here
        # (scripts/gpu_check.sh will tell): the loop there until it is measured
        return experts_loop(xs, w13, w2, kept, n_kept)
    offs = torch.cumsum(kept, 0, dtype=torch.int32)
    g, u = torch._grouped_mm(xs, w13, offs=offs).chunk(2, -1)
    out = torch._grouped_mm(F.silu(g) * u, w2, offs=offs)
    if out.requires_grad:  # its backward refuses an expanded (stride-0) gradient, such as
        out.register_hook(torch.Tensor.contiguous)  # `.sum().backward()` sends: "Invalid strides"
    return out


def _grouped_mm_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of one `_grouped_mm`, 2 per multiply-add as torch counts `mm`: its
    FlopCounterMode has no formula for it and would count the experts as free. Groups split
    the rows (2-D x 3-D, forward), the contraction (2-D x 2-D, the weights' gradient) or
    the columns (3-D x 2-D); 3-D x 3-D is a batch."""
    a, b = list(a_shape), list(b_shape)
    if len(a) == 2:
        return 2 * a[0] * a[1] * b[-1]
    if len(b) == 2:
        return 2 * a[1] * a[2] * b[1]
    return 2 * a[0] * a[1] * a[2] * b[2]


# The experts' path: the grouped matmul where this torch has it, else the loop.
EXPERTS = experts_grouped if hasattr(torch, "_grouped_mm") else experts_loop

if EXPERTS is experts_grouped:
    from torch.utils import flop_counter

    if torch.ops.aten._grouped_mm.default not in flop_counter.flop_registry:
        flop_counter.register_flop_formula(torch.ops.aten._grouped_mm)(_grouped_mm_flops)


class MoEStats(Mapping[str, torch.Tensor]):
    """One forward's routing statistics, read as a dict: `aux_loss`, `z_loss` (the losses,
    with their graph), `counts` (assignments per expert before dropping), and `load`,
    `entropy`, `top1_share`, `dropped_fraction`, derived from the counts on first read.
    The training loop reads the derived ones on logging steps only (`rlrun.algos.lm.log_moe`),
    so the other steps skip their half-dozen small operators per layer; when read, they are
    the same numbers as computed eagerly."""

    KEYS = ("entropy", "top1_share", "dropped_fraction", "load", "counts", "aux_loss", "z_loss")

    def __init__(self, counts: torch.Tensor, n_assign: int, total_kept: int,
                 aux: torch.Tensor, z: torch.Tensor):
        self._d = {"counts": counts, "aux_loss": aux, "z_loss": z}
        self._n, self._kept = n_assign, total_kept

    def _derive(self) -> None:
        with torch.no_grad():
            load = self._d["counts"].float() / self._n
            nz = load[load > 0]
            self._d.update(entropy=-(nz * nz.log()).sum(), top1_share=load.max(),
                           dropped_fraction=torch.tensor(1.0 - self._kept / self._n),
                           load=load)

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._d and key in self.KEYS:
            self._derive()
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)


class MoE(nn.Module):
    """SwiGLU experts behind a float32 router; `forward(x)` returns y and keeps `stats`."""

    def __init__(self, d_model: int, d_expert: int, n_experts: int, router: str, top_k: int,
                 capacity_factor: float | None = None, jitter: float = 0.0):
        super().__init__()
        if router not in ROUTERS:
            raise ConfigError(f"router {router!r}: use one of {', '.join(ROUTERS)}")
        if not 1 <= top_k <= n_experts:
            raise ConfigError(f"top_k={top_k} must be in [1, n_experts={n_experts}]")
        if router == "switch" and top_k != 1:
            raise ConfigError(f"ffn=switch routes top-1 (got top_k={top_k}): use ffn=mixtral"
                              " for top-k routing")
        self.router_kind, self.k, self.n = router, top_k, n_experts
        self.capacity_factor, self.jitter, self.d_expert = capacity_factor, jitter, d_expert
        self.router = nn.Linear(d_model, n_experts, bias=False, dtype=torch.float32)
        nn.init.normal_(self.router.weight, std=0.02 / math.sqrt(d_model / 64))  # small init
        # Stacked expert weights: w13[e] is the fused gate+up projection of expert e.
        self.w13 = nn.Parameter(torch.empty(n_experts, d_model, 2 * d_expert))
        self.w2 = nn.Parameter(torch.empty(n_experts, d_expert, d_model))
        nn.init.normal_(self.w13, std=d_model ** -0.5)
        nn.init.normal_(self.w2, std=d_expert ** -0.5)
        self.stats: Mapping[str, torch.Tensor] = {}
        self.flops = 0  # forward matmul FLOPs of the last call (router + kept assignments)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        t, d = x.shape
        xr = x.float()
        if self.training and self.jitter > 0:  # Switch's multiplicative jitter on the input
            xr = xr * torch.empty_like(xr).uniform_(1 - self.jitter, 1 + self.jitter)
        logits = self.router(xr)  # float32
        idx, gates = route(logits, self.router_kind, self.k)
        cap = capacity(t, self.n, self.k, self.capacity_factor)
        order, counts, kept = dispatch(idx, self.n, cap,
                                       shape[-2] if len(shape) == 3 else None)
        tok = order % t  # assignment a = choice * t + token
        gate_sorted = gates.t().reshape(-1)[order].to(x.dtype)
        n_assign = order.numel()
        if cap >= n_assign:  # no capacity limit: every assignment kept, no host sync
            n_kept, total_kept = None, n_assign
        else:
            n_kept = kept.tolist()
            total_kept = sum(n_kept)
        if total_kept == n_assign:  # nothing dropped (no capacity limit, or none hit)
            rows, gs = tok, gate_sorted[:, None]
        else:  # kept assignments, grouped by expert: one gather of their tokens and gates
            starts = (torch.cumsum(counts, 0) - counts).tolist()
            keep = torch.cat([torch.arange(s0, s0 + n0, device=x.device)
                              for s0, n0 in zip(starts, n_kept, strict=True) if n0])
            rows, gs = tok[keep], gate_sorted[keep, None]
        out = torch.zeros_like(x)
        if total_kept:
            # index_select: its backward is an index_add_, twice as fast here as x[rows]'s
            ys = EXPERTS(x.index_select(0, rows), self.w13, self.w2, kept, n_kept)
            out.index_add_(0, rows, ys * gs)
        self.flops = 2 * t * d * self.n + total_kept * 2 * 3 * d * self.d_expert
        self.stats = MoEStats(counts, n_assign, total_kept,
                              aux_loss(logits, idx, counts), z_loss(logits))
        return out.reshape(shape)
