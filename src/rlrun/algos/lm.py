"""Language modelling with a dense or mixture-of-experts transformer, on characters or on
token shards.

    rlrun algo=lm                                        # dense FFN on Python's own docs
    rlrun algo=lm network.ffn=mixtral                    # 8 SwiGLU experts, top-2 (Mixtral)
    rlrun algo=lm network.ffn=switch network.capacity_factor=1.0 network.jitter=0.01
    rlrun algo=lm algo.flop_budget=2e13                  # stop at a training-FLOP budget
    rlrun algo=lm env=text_file env.path=book.txt
    rlrun algo=lm env=tokens env.path=data/stdlib        # shards of rlrun-prepare (BPE)
    rlrun algo=lm env=tokens env.path=data/code algo.init_from=RUN_DIR   # fine-tune a run
    torchrun --standalone --nproc_per_node=2 -m rlrun algo=lm   # data-parallel: docs/scaling.md

One loop, top to bottom, as in nanoGPT: random windows of the training text (characters in
memory, or token shards through np.memmap: `rlrun.data.lm_data`), next-token cross-entropy
plus the MoE router losses (already weighted by `network.aux_loss_coef` and
`network.z_loss_coef`), AdamW with warmup and cosine decay, gradient clipping. The run ends at
`algo.total_steps` optimizer steps or when the cumulative training FLOPs reach
`algo.flop_budget`, whichever comes first; the learning-rate schedule follows whichever is
further along, so runs cut by a FLOP budget still anneal. Training FLOPs are 3x the forward
matmul FLOPs the model counts itself (backward: one matmul for the input gradient and one for
the weight gradient per forward matmul); MoE layers count only the assignments they kept.

Evaluation (every `algo.eval_every` steps and at the end) scores fixed validation windows
(`eval/val_loss`, nats per token (character), `eval/val_ppl`, and `eval/val_bpb`, bits per
byte of the text the targets stand for, which compares runs with different tokenizers),
logs what the attention heads do
on the first of them (`attention/*`, `rlrun.nets.attention_stats`; `algo.attention_stats`)
and a text sample decoded with a KV cache (`rlrun.nets.decode`), with classifier-free guidance
when `algo.sample_cfg` is not 1 (Sanchez et al. 2023, transformers' convention: the
unconditional branch is `algo.sample_negative_prompt`, or the prompt's last character alone;
docs/lm.md#classifier-free-guidance). Attention variants
(`network.n_kv_heads`, `network.pos_encoding`) are the network's: see docs/lm.md.

`algo.init_from=RUN_DIR` starts a fresh run from another LM run's weights (`rlrun.algos.
init_from`: checked in preflight, recorded in results.json); the optimiser, schedule and
budget are this run's. A resumed run continues from its own checkpoint instead.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlrun.core.errors import ConfigError
from rlrun.data.lm_data import open_lm_data, saved_text_codec
from rlrun.data.tokens import bits_per_byte
from rlrun.nets import build_network
from rlrun.nets.attention_stats import log_attention
from rlrun.nets.decode import generate
from rlrun.schemas.lm import LMConfig

MOE_TAGS = ("entropy", "top1_share", "dropped_fraction", "aux_loss", "z_loss")
log_ = logging.getLogger("rlrun")


def learning_rate(cfg: LMConfig, step: int, progress: float) -> float:
    """Linear warmup over `warmup_steps`, then cosine to lr * min_lr_ratio at progress 1."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cos)


def make_optimizer(model: torch.nn.Module, cfg: LMConfig) -> torch.optim.AdamW:
    """AdamW; matrices (and expert stacks) decay, norms and the router do not."""
    decay, keep = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "router" not in name else keep).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": keep, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: list, dev: torch.device,
             token_bytes: np.ndarray) -> tuple[float, float]:
    """(mean next-token cross-entropy in nats, bits per byte) over the fixed validation
    batches. Bits per byte: the summed cross-entropy of the targets that stand for text,
    / ln 2, / the bytes they stand for (`token_bytes`; the end-of-text token has none and is
    left out of both sums)."""
    model.eval()
    total = nats = 0.0
    n_bytes = 0
    per_token = torch.as_tensor(token_bytes)
    for x, y in batches:
        logits, _ = model(x.to(dev))
        ce = F.cross_entropy(logits.flatten(0, 1), y.to(dev).flatten(), reduction="none")
        total += float(ce.mean())
        b = per_token[y.flatten()].to(ce.device)
        nats += float(ce[b > 0].double().sum())
        n_bytes += int(b.sum())
    model.train()
    return total / len(batches), bits_per_byte(nats, n_bytes)


def log_moe(log: Any, stats: list[Mapping[str, torch.Tensor]], step: int) -> None:
    """Routing statistics of a forward (`aux.moe`), per MoE layer and averaged over layers."""
    if not stats:
        return
    for tag in MOE_TAGS:
        vals = [float(s[tag].detach()) for s in stats]
        log.scalar(f"moe/{tag}", sum(vals) / len(vals), step)
        for i, v in enumerate(vals):
            log.scalar(f"moe/{tag}/layer{i}", v, step)
    for i, s in enumerate(stats):
        counts = s["counts"].cpu()
        n = len(counts)
        values = torch.repeat_interleave(torch.arange(n), counts)
        log.histogram(f"moe/expert_load/layer{i}", values, step,
                      bins=np.arange(n + 1) - 0.5)


def run(ctx) -> None:
    cfg, dev, dist = ctx.algo, torch.device(ctx.device), ctx.dist  # dist: ranks (torchrun)
    block = int(ctx.network.block_size)
    # characters in memory, or token shards; each rank draws its own batches (stream
    # `batches`, per rank), and its own router jitter (torch's global RNG)
    data = open_lm_data(ctx, block)
    model = build_network(ctx.network, vocab_size=data.vocab_size).to(dev)
    opt = make_optimizer(model, cfg)
    ddp = dist.wrap(model)  # DDP under torchrun (averages gradients); the model on 1 process
    torch.manual_seed(ctx.seed_of("torch"))
    val = data.eval_batches(cfg.batch_size, cfg.eval_batches)
    prompt = data.encode(cfg.sample_prompt)
    negative = encode_known(data.encode, data.unknown, cfg.sample_negative_prompt,
                            "algo.sample_negative_prompt")
    st = {"flops": 0, "tokens": 0}

    ctx.track(model=model, opt=opt, counters=st)
    ctx.track_per_rank(batches=data.rng)
    log = ctx.logger
    if dist.is_main:  # the tokenizer, for rlrun-eval and a later algo.init_from
        data.save(ctx.run_dir)
    if not ctx.resume():
        if cfg.init_from:  # the source's weights; the optimiser and schedule are this run's
            from rlrun.algos.init_from import init_lm, open_source

            rec = init_lm(model, open_source(cfg.init_from), cfg.init_from_vocab,
                          data.vocabulary())
            ctx.record(init_from=rec)
            log_.info("init_from: the weights of %s (step %d, sha256 %s...)%s",
                      rec["run_dir"], rec["step"], rec["sha256"][:12],
                      f"; {rec['tokens_new']} new tokens start from the mean row"
                      if "tokens_new" in rec else "")
        total, active = model.num_params()
        log.scalars({"model/params": total, "model/active_params": active,
                     "data/unigram_entropy": data.unigram_entropy()}, 0)
        log.text("data/vocabulary", data.describe(), 0)

    budget = cfg.flop_budget or math.inf
    ppl = None
    t_log, tok_log = time.perf_counter(), st["tokens"]
    ctx.start_progress(cfg.total_steps)
    while ctx.step < cfg.total_steps and st["flops"] < budget:
        lr = learning_rate(cfg, ctx.step, max(ctx.step / cfg.total_steps, st["flops"] / budget))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = data.batch(cfg.batch_size)  # per rank
        x, y = x.to(dev), y.to(dev)
        logits, aux = ddp(x)
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss = ce + aux.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step = ctx.step + 1
        st["flops"] += 3 * dist.sum(aux.flops)  # all ranks' (the same on one process)
        st["tokens"] += x.numel() * dist.world_size
        done = step >= cfg.total_steps or st["flops"] >= budget
        if ctx.every("log", cfg.log_every, step) or done:
            now = time.perf_counter()
            log.scalars({"losses/train": dist.mean(ce.detach()),  # over ranks
                         "losses/router": dist.mean(aux.loss.detach()),
                         "charts/learning_rate": lr, "charts/flops": st["flops"],
                         "charts/tokens": st["tokens"],
                         "charts/tokens_per_s": (st["tokens"] - tok_log) / max(now - t_log,
                                                                                1e-9)}, step)
            log_moe(log, aux.moe, step)
            t_log, tok_log = now, st["tokens"]
        if (ctx.every("eval", cfg.eval_every, step) or done) and dist.is_main:
            vl, bpb = evaluate(model, val, dev, data.token_bytes)
            ppl = math.exp(vl)
            log.scalars({"eval/val_loss": vl, "eval/val_ppl": ppl, "eval/val_bpb": bpb,
                         "eval/flops": st["flops"]}, step)
            if cfg.attention_stats:  # the first 8 validation windows, explicit attention
                log_attention(log, model, val[0][0][:8].to(dev), step)
            if cfg.sample_chars:  # KV-cache decoding, its own RNG (training's is untouched);
                g = sample_generator(ctx.seed, step, dev)  # rlrun-eval replays it
                text = data.decode(generate(model, prompt, cfg.sample_chars,
                                            cfg.sample_temperature, g,
                                            **guidance(cfg.sample_cfg, negative)))
                log.text("eval/sample", "    " + (cfg.sample_prompt + text)
                         .replace("\n", "\n    "), step)
            t_log = time.perf_counter()  # evaluation time is not training throughput
        if ctx.tick(step, ppl):
            break
    ctx.finish()


def sample_generator(seed: int, step: int, device: Any) -> torch.Generator:
    """The generator of the text sample at `step`: seeded `seed + step`, so that rlrun-eval
    decodes the run's own sample again (docs/eval.md)."""
    return torch.Generator(device=device).manual_seed(seed + step)


def guidance(cfg: float, negative: list[int]) -> dict[str, Any]:
    """`generate`'s CFG arguments for scale `cfg` (gamma; 1: plain decoding, no second
    branch, as transformers skips it at exactly 1) and the encoded negative prompt."""
    return {"guidance_scale": None if cfg == 1 else cfg, "negative_prompt": negative or None}


def encode_known(encode: Callable[[str], list[int]], unknown_in: Callable[[str], str],
                 text: str, key: str) -> list[int]:
    """`text` encoded; a character outside a character model's vocabulary is a one-line
    error naming them (`key`: the option that gave the text; a byte-level tokenizer knows
    every text)."""
    unknown = unknown_in(text)
    if unknown:
        raise ConfigError(f"{key}={text!r} holds characters the model never saw: {unknown!r}")
    return encode(text)


def load_text_generator(ctx: Any) -> Callable[..., str]:
    """rlrun-eval's hook: `generate(prompt, chars, temperature, cfg=1.0, negative_prompt="")
    -> text` from the saved model, decoded with the KV cache and seeded `ctx.seed + step` as
    the run's own samples are; `cfg` != 1 decodes with classifier-free guidance. A run on
    token shards encodes and decodes with the tokenizer.json in its run dir (`chars` then
    counts tokens)."""
    encode, decode, vocab_size, unknown_in = saved_text_codec(
        ctx.run_dir, ctx.env, int(ctx.network.block_size))
    model = build_network(ctx.network, vocab_size=vocab_size).to(ctx.device)
    ctx.track(model=model)  # the loop's name
    ctx.resume()

    def gen(prompt: str, chars: int, temperature: float, cfg: float = 1.0,
            negative_prompt: str = "") -> str:
        unknown = unknown_in(prompt)
        if unknown:
            raise ConfigError(f"prompt= holds characters the model never saw: {unknown!r}")
        negative = encode_known(encode, unknown_in, negative_prompt, "negative_prompt")
        g = sample_generator(ctx.seed, ctx.step, ctx.device)
        return decode(generate(model, encode(prompt), chars, temperature, g,
                               **guidance(cfg, negative)))

    return gen
