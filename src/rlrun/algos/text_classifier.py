"""Text classification with a dense or mixture-of-experts transformer encoder: the keras-io
example "Text classification with Switch Transformer", ported.

    rlrun algo=text_classifier                            # stdlib docstrings -> their package
    rlrun algo=text_classifier network.ffn=switch         # top-1 over 8 experts, capacity 1.25
    rlrun algo=text_classifier env=text_csv env.path=reviews.csv env.label_column=stars
    rlrun experiment=switch/imdb env.path=/data/aclImdb   # the keras-io hyperparameters
    rlrun -m experiment=switch/compare                    # dense vs Switch vs Mixtral, 3 seeds

One loop, top to bottom: shuffled epochs over the training split (each epoch's order is drawn
from the run's named stream `epoch <n>`, so a resumed run sees the same batches), cross-entropy
plus the router losses (`aux.loss`, already weighted by `network.aux_loss_coef` and
`network.z_loss_coef`), AdamW with warm-up and cosine decay, gradient clipping. The encoder is
`network=encoder` (the transformer with `causal=false`), its `block_size` set to `env.max_len`;
`rlrun.nets.classifier` mean-pools it and puts a linear head on top.

Every `algo.eval_every` steps and at the end the validation split is scored (`eval/accuracy`,
`eval/macro_f1`, `eval/loss`, `eval/majority_baseline`: the validation share of training's
most frequent class, what always answering it scores; `eval/confusion`, an image: rows are
true classes, columns predictions, each row normalised). At the end the test split is
scored the same way under `test/*`. Routing statistics are `moe/*`, as for `algo=lm`. The
vocabulary and label names are saved as `<run>/vocab.json`.

`algo.init_from=LM_RUN` starts the encoder from an `algo=lm` run's embedding and blocks
(`rlrun.algos.init_from`): a causal LM's blocks become a bidirectional encoder
(`network.causal=false` says how it attends now; the log says the source was causal). With
`algo.init_from_vocab=same` the texts are encoded with the LM's tokenizer (copied into the run
dir), with `extend` with env.tokenizer's vocabulary, whose tokens the LM also has (the same
bytes) starting from its rows.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlrun.algos.lm import learning_rate, log_moe, make_optimizer
from rlrun.core.checkpoint import atomic_write_bytes
from rlrun.data.text_classification import LabelledText
from rlrun.data.tokens import TOKENIZER_FILE
from rlrun.nets import build_network
from rlrun.nets.classifier import SequenceClassifier
from rlrun.schemas.text_classifier import TextClassifierConfig


def scores(confusion: torch.Tensor) -> tuple[float, float]:
    """(accuracy, macro-F1) of a confusion matrix (rows true, columns predicted); the F1
    mean runs over the classes that occur as truth or prediction (as scikit-learn's)."""
    tp = confusion.diag().double()
    true, pred = confusion.sum(1).double(), confusion.sum(0).double()
    f1 = 2 * tp / (true + pred).clamp(min=1)
    present = (true + pred) > 0
    return float(tp.sum() / confusion.sum()), float(f1[present].mean())


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int,
             batch: int, dev: torch.device) -> tuple[float, torch.Tensor]:
    """Mean cross-entropy over a split and its confusion matrix."""
    model.eval()
    loss, conf = 0.0, torch.zeros(n_classes, n_classes, dtype=torch.long)
    for i in range(0, len(x), batch):
        logits, _ = model(x[i:i + batch].to(dev))
        yb = y[i:i + batch]
        loss += float(F.cross_entropy(logits.float().cpu(), yb, reduction="sum"))
        conf += torch.bincount(yb * n_classes + logits.argmax(-1).cpu(),
                               minlength=n_classes ** 2).view(n_classes, n_classes)
    model.train()
    return loss / len(x), conf


def confusion_image(conf: torch.Tensor) -> torch.Tensor:
    """(1, H, W) in [0, 1]: each row (true class) normalised, one square block per cell."""
    rows = conf.double() / conf.sum(1, keepdim=True).clamp(min=1)
    scale = max(1, 256 // len(conf))
    return rows.repeat_interleave(scale, 0).repeat_interleave(scale, 1)[None].float()


def log_split(log: Any, prefix: str, model, data: LabelledText, split: str, majority: int,
              cfg: TextClassifierConfig, dev: torch.device, step: int) -> float:
    """Score one split under `prefix/*`; returns its accuracy."""
    x, y = data.splits[split]
    loss, conf = evaluate(model, x, y, data.n_classes, cfg.eval_batch_size, dev)
    acc, f1 = scores(conf)
    log.scalars({f"{prefix}/accuracy": acc, f"{prefix}/macro_f1": f1, f"{prefix}/loss": loss,
                 f"{prefix}/majority_baseline": float((y == majority).double().mean())}, step)
    log.image(f"{prefix}/confusion", confusion_image(conf), step)
    return acc


def run(ctx) -> None:
    cfg, dev = ctx.algo, torch.device(ctx.device)
    src = source_tokens = None
    if cfg.init_from:  # an LM run's weights (and, with init_from_vocab=same, its tokenizer)
        from rlrun.algos.init_from import open_source

        src = open_source(cfg.init_from)
        source_tokens = src.tokenizer()
    data = LabelledText(ctx.env, source_tokens if cfg.init_from_vocab == "same" else None)
    encoder = build_network(ctx.network, vocab_size=len(data.vocab), lm_head=False,
                            block_size=data.max_len)
    model = SequenceClassifier(encoder, data.n_classes, cfg.dropout, pad_id=data.pad,
                               hidden=cfg.head_hidden, mask_padding=cfg.mask_padding).to(dev)
    opt = make_optimizer(model, cfg)
    x_train, y_train = data.splits["train"]
    n_train = len(x_train)
    per_epoch = max(1, n_train // cfg.batch_size)  # the last partial batch of an epoch waits
    majority = int(torch.bincount(y_train).argmax())
    st = {"tokens": 0}

    ctx.track(model=model, opt=opt, counters=st)
    log = ctx.logger
    if not ctx.resume():
        if src is not None:
            from rlrun.algos.init_from import init_encoder

            if data.source is not None:  # the LM's own ids, then padding (a new row)
                mapping = np.append(np.arange(len(data.vocab) - 1), -1)
            else:  # the classifier's vocabulary: rows of tokens the LM has, by their bytes
                mapping = data.vocabulary().map_from(source_tokens.vocabulary())
            causal = bool(src.cfg.network.get("causal", True))
            rec = init_encoder(encoder, src, mapping, causal)
            ctx.record(init_from={**rec, "vocab": cfg.init_from_vocab})
            logging.getLogger("rlrun").info(
                "init_from: the embedding and blocks of %s (step %d, sha256 %s...)%s; %d of %d"
                " tokens from its rows", rec["run_dir"], rec["step"], rec["sha256"][:12],
                ", a causal LM: its blocks now attend both ways (network.causal=false)"
                if causal else "", rec["tokens_from_source"], len(mapping))
        total, active = model.num_params()
        log.scalars({"model/params": total, "model/active_params": active,
                     "data/train": n_train, "data/val": len(data.splits["val"][1]),
                     "data/test": len(data.splits["test"][1]), "data/classes": data.n_classes,
                     "data/vocab": len(data.vocab)}, 0)
        log.text("data/labels", ", ".join(data.labels), 0)
    atomic_write_bytes(ctx.run_dir / "vocab.json", json.dumps(data.to_json()).encode())
    if data.kind == TOKENIZER_FILE:  # the LM's tokenizer, for rlrun-eval and classify()
        source_tokens.tokenizer.save(str(ctx.run_dir / TOKENIZER_FILE))

    acc = None
    order = torch.empty(0, dtype=torch.long)
    t_log, tok_log = time.perf_counter(), st["tokens"]
    ctx.start_progress(cfg.total_steps)
    while ctx.step < cfg.total_steps:
        epoch, pos = divmod(ctx.step, per_epoch)
        if pos == 0 or len(order) == 0:  # this epoch's order: its own named stream
            g = torch.Generator().manual_seed(ctx.seed_of(f"epoch {epoch}"))
            order = torch.randperm(n_train, generator=g)
        idx = order[pos * cfg.batch_size:(pos + 1) * cfg.batch_size]
        lr = learning_rate(cfg, ctx.step, ctx.step / cfg.total_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = x_train[idx].to(dev), y_train[idx].to(dev)
        logits, aux = model(x)
        ce = F.cross_entropy(logits, y)
        loss = ce + aux.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step = ctx.step + 1
        st["tokens"] += x.numel()
        done = step >= cfg.total_steps
        if ctx.every("log", cfg.log_every, step) or done:
            now = time.perf_counter()
            log.scalars({"losses/train": float(ce.detach()),
                         "losses/router": float(aux.loss.detach()),
                         "charts/learning_rate": lr, "charts/epoch": step / per_epoch,
                         "charts/tokens": st["tokens"],
                         "charts/tokens_per_s": (st["tokens"] - tok_log) / max(now - t_log,
                                                                                1e-9)}, step)
            log_moe(log, aux.moe, step)
            t_log, tok_log = now, st["tokens"]
        if ctx.every("eval", cfg.eval_every, step) or done:
            acc = log_split(log, "eval", model, data, "val", majority, cfg, dev, step)
            if done:
                log_split(log, "test", model, data, "test", majority, cfg, dev, step)
            t_log = time.perf_counter()  # evaluation time is not training throughput
        if ctx.tick(step, acc):
            break
    ctx.finish()


def load_text_classifier(ctx) -> Any:
    """rlrun-eval's hook: the saved classifier labels new texts (`text=...`)."""
    from rlrun.data.text_classification import saved_classifier

    model, predict = saved_classifier(ctx.run_dir, ctx.network, ctx.algo)
    ctx.track(model=model.to(ctx.device))  # the loop's name
    ctx.resume()
    return predict
