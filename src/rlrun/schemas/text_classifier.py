"""Settings of the transformer text classifier (loop: rlrun.algos.text_classifier; the
keras-io "Text classification with Switch Transformer" example)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rlrun.core.errors import ConfigError
from rlrun.core.schema import AlgoSchema, AlgoSpec, opt
from rlrun.schemas.lm import INIT_FROM_HELP, INIT_FROM_VOCABS, MOE_MINIMIZED


@dataclass
class TextClassifierConfig(AlgoSchema):
    spec: ClassVar[AlgoSpec] = AlgoSpec(
        task_kinds=("text_classification",), objective="eval/accuracy", goal="max",
        minimize=("eval/loss", "test/loss", *MOE_MINIMIZED),
        logged_tags=("charts/*", "losses/*", "eval/*", "test/*", "model/*", "data/*", "moe/*"),
        network_inputs=("vocab_size",), parallel_ops=True)

    total_steps: int = opt(400, "optimizer steps", ge=1)
    batch_size: int = opt(32, "texts per step", ge=1)
    lr: float = opt(2e-3, "peak learning rate (AdamW)", gt=0)
    min_lr_ratio: float = opt(0.1, "the cosine decay ends at lr * min_lr_ratio", ge=0, le=1)
    warmup_steps: int = opt(20, "linear learning-rate warm-up", ge=0)
    weight_decay: float = opt(0.01, "AdamW weight decay of matrices (norms and the router:"
                                    " none)", ge=0)
    beta1: float = opt(0.9, "AdamW beta1", ge=0, lt=1)
    beta2: float = opt(0.98, "AdamW beta2", ge=0, lt=1)
    grad_clip: float = opt(1.0, "max gradient norm; 0: off", ge=0)
    dropout: float = opt(0.1, "before the classification head (and its hidden layer)", ge=0,
                         lt=1)
    head_hidden: int = opt(0, "0: a linear head; N: a ReLU layer of width N first (keras-io:"
                              " 32)", ge=0)
    mask_padding: bool = opt(True, "keep padding out of attention, the FFNs and the routers"
                                   " (keras-io: false)")
    eval_every: int = opt(100, "steps between validation scores; 0: only at the end", ge=0)
    eval_batch_size: int = opt(256, "texts per forward pass when scoring a split", ge=1)
    log_every: int = opt(20, "steps between training scalars (losses, tokens/s, moe/*)", ge=1)
    init_from: str | None = opt(None, INIT_FROM_HELP.replace(
        "its weights", "its embedding and blocks (a causal LM's blocks become this encoder's)"))
    init_from_vocab: str = opt("same", "same: the texts are encoded with the init_from run's"
                                       " tokenizer (env.tokenizer and env.vocab_size do not"
                                       " apply); extend: env.tokenizer's vocabulary, whose"
                                       " tokens the LM also has (the same bytes) start from"
                                       " its embedding rows", choices=INIT_FROM_VOCABS)

    def check_network(self, network: Any, env: Any) -> None:
        """An encoder: the transformer with bidirectional attention (the whole text at once)."""
        if "causal" not in network:
            raise ConfigError("algo=text_classifier needs network=encoder (a transformer)")
        if network.causal:
            raise ConfigError("network.causal=true: algo=text_classifier reads the whole text"
                              " at once; use network.causal=false (network=encoder)")

    def budget_schedules(self) -> list[str]:
        return ["the cosine learning-rate decay now ends at the new total_steps"]
