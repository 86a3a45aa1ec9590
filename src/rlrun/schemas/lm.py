"""Settings of the language model, on characters or token shards (loop: rlrun.algos.lm;
docs/lm.md)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, ClassVar

from rlrun.core.errors import ConfigError
from rlrun.core.schema import AlgoSchema, AlgoSpec, opt

# Routing statistics of the mixture-of-experts layers whose best value is the lowest.
MOE_MINIMIZED = ("moe/dropped_fraction*", "moe/aux_loss*", "moe/z_loss*")
INIT_FROM_VOCABS = ("same", "extend")
INIT_FROM_HELP = ("a finished or interrupted algo=lm run dir to start from: its weights, with a"
                  " new optimiser, schedule and budget (this config's); its network must match"
                  " this one's (docs/lm.md#your-own-data); null: from scratch")


def unknown_chars(text: str, vocabulary: Collection[str]) -> str:
    """The characters of `text` outside `vocabulary`, once each, sorted (for errors)."""
    return "".join(sorted(set(text) - set(vocabulary)))


@dataclass
class LMConfig(AlgoSchema):
    spec: ClassVar[AlgoSpec] = AlgoSpec(
        task_kinds=("text", "tokens"), objective="eval/val_ppl", goal="min",
        minimize=("eval/val_loss", "eval/val_bpb", *MOE_MINIMIZED),
        also_report=("eval/val_bpb",),
        logged_tags=("charts/*", "losses/*", "eval/val_*", "eval/flops", "model/*", "data/*",
                     "moe/*", "attention/*"),
        network_inputs=("vocab_size",), data_parallel=True, parallel_ops=True)

    total_steps: int = opt(600, "optimizer steps", ge=1)
    flop_budget: float | None = opt(None, "training FLOPs (3x the forward matmuls): the run"
                                          " stops at whichever of this and total_steps comes"
                                          " first; null: no FLOP budget", gt=0)
    batch_size: int = opt(32, "sequences of network.block_size tokens (characters) per step"
                              " (per rank under torchrun)", ge=1)
    lr: float = opt(3e-3, "peak learning rate (AdamW)", gt=0)
    min_lr_ratio: float = opt(0.1, "the cosine decay ends at lr * min_lr_ratio", ge=0, le=1)
    warmup_steps: int = opt(30, "linear learning-rate warm-up", ge=0)
    weight_decay: float = opt(0.1, "AdamW weight decay of matrices and expert stacks (norms"
                                   " and the router: none)", ge=0)
    beta1: float = opt(0.9, "AdamW beta1", ge=0, lt=1)
    beta2: float = opt(0.95, "AdamW beta2", ge=0, lt=1)
    grad_clip: float = opt(1.0, "max gradient norm; 0: off", ge=0)
    eval_every: int = opt(200, "steps between validation scores, attention statistics and a"
                               " text sample; 0: only at the end", ge=0)
    eval_batches: int = opt(8, "fixed validation batches per evaluation", ge=1)
    log_every: int = opt(20, "steps between training scalars (losses, tokens/s, moe/*)", ge=1)
    sample_chars: int = opt(200, "characters (tokens, on env=tokens) generated at each"
                                 " evaluation; 0: none", ge=0)
    sample_temperature: float = opt(0.8, "softmax temperature of the samples", gt=0)
    sample_prompt: str = opt("The ", "the text each sample continues")
    sample_cfg: float = opt(1.0, "classifier-free guidance scale gamma of the samples:"
                                 " log p(x|uncond) + gamma (log p(x|prompt) - log p(x|uncond))"
                                 " (Sanchez et al. 2023; transformers' guidance_scale); 1: plain"
                                 " decoding", ge=0)
    sample_negative_prompt: str = opt("", "sample_cfg != 1: the text the unconditional branch"
                                          " starts from; empty: the prompt's last character"
                                          " alone (transformers' convention)")
    attention_stats: bool = opt(True, "per-head attention entropy, diagonal score, type and"
                                      " maps at each evaluation (attention/*)")
    init_from: str | None = opt(None, INIT_FROM_HELP)
    init_from_vocab: str = opt("same", "same: this run's tokens must be the init_from run's (a"
                                       " different tokenizer is refused); extend: tokens that"
                                       " stand for the same bytes start from the source's"
                                       " embedding and output rows, the others from the mean"
                                       " of its rows", choices=INIT_FROM_VOCABS)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sample_negative_prompt and self.sample_cfg == 1:
            raise ConfigError(f"sample_negative_prompt={self.sample_negative_prompt!r} changes"
                              " nothing at sample_cfg=1 (plain decoding): set a guidance scale,"
                              " e.g. algo.sample_cfg=1.5")

    def check_network(self, network: Any, env: Any) -> None:
        """A transformer, causal: a language model predicts the next character and must not
        see it."""
        if "block_size" not in network:
            raise ConfigError("algo=lm needs network=transformer")
        if not network.get("causal", True):
            raise ConfigError("network.causal=false: a language model predicts the next"
                              " character and must not see it; algo=lm needs"
                              " network.causal=true")

    def check_env(self, env: Any, data: bool = True) -> None:
        """The negative prompt's characters must be in the corpus's vocabulary (the prompt's
        unknown ones are dropped, as before; a negative prompt without them would silently
        be another one)."""
        from rlrun.schemas.data import TokensConfig

        if data and self.sample_negative_prompt and not isinstance(env, TokensConfig):
            from rlrun.data.text import load_text  # (token shards' byte-level BPE: any text)

            unknown = unknown_chars(self.sample_negative_prompt, set(load_text(env)))
            if unknown:
                raise ConfigError(f"algo.sample_negative_prompt={self.sample_negative_prompt!r}"
                                  f" holds characters outside the corpus's vocabulary:"
                                  f" {unknown!r}")

    def budget_schedules(self) -> list[str]:
        return ["the cosine learning-rate decay now ends at the new total_steps"]
