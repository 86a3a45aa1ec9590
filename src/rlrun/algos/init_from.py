"""`algo.init_from=RUN_DIR`: start a run from an LM run's weights (fine-tuning, continued
pre-training), for `algo=lm` and `algo=text_classifier` (docs/lm.md#your-own-data).

A new run, not a resume: the optimiser is new, and the learning-rate schedule and the budget
are the new config's; only the weights come from the source run's last checkpoint (a
finished or an interrupted run). The new run records where they came from in results.json:
`init_from` (the source dir, the step and SHA-256 of its checkpoint, and how the vocabulary
was mapped).

What must agree (checked by `check`, in preflight, before any run dir exists):
- the source is an `algo=lm` run with a checkpoint; its config is read under the trust rules
  (`rlrun.core.resume.read_run_config`), its checkpoint with `weights_only=True`
  (`rlrun.core.checkpoint.load_checkpoint`): nothing in it can run code;
- the architecture: `ARCH_KEYS` of the network, compared by their effective values (null
  `n_kv_heads` is `n_heads`; a MoE's default `top_k` and `d_expert` are spelled out); the
  error names every key that differs. `block_size` may differ (positions are rotary or a
  fixed table, nothing learned), and so may the routing coefficients (`capacity_factor`,
  `jitter`, `aux_loss_coef`, `z_loss_coef`) and `causal`: a text classifier's encoder
  (`network.causal=false`) starts from a causal LM's blocks, and says so in its log;
- the tokens (`algo.init_from_vocab`): with `same` (the default) an LM's new data must have
  the source's tokenizer, id for id (`rlrun.data.tokens.Vocabulary`), and a classifier
  encodes its texts with the source's tokenizer; with `extend` the new run keeps its own
  vocabulary, and each token that stands for the same bytes as a source token starts from
  that token's embedding (and output) row, each other one from the mean of the source's
  rows (Hewitt 2021, "Initializing new word embeddings for pretrained language models":
  the mean keeps a new token's logit near the average instead of arbitrary).

Torch is imported only by the functions that load weights (preflight imports this module).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlrun.core.errors import CheckpointError, ConfigError, DataError
from rlrun.data.tokens import RunTokenizer, TokenShards, Vocabulary
from rlrun.schemas.data import TokensConfig
from rlrun.schemas.networks import moe_d_expert, moe_top_k

LM_LOOP = "rlrun.algos.lm.run"
# Keys that fix the shapes of the weights or how they are used.
ARCH_KEYS = ("_target_", "d_model", "n_layers", "n_heads", "n_kv_heads", "pos_encoding", "ffn",
             "d_ff", "n_experts", "top_k", "d_expert", "moe_every")


def architecture(net: Any) -> dict[str, Any]:
    """The effective value of each architecture key of a network config (MoE keys only for
    a MoE; null n_kv_heads spelled out as n_heads, null top_k and d_expert as the paper's)."""
    get = net.get
    arch = {k: get(k) for k in ("_target_", "d_model", "n_layers", "n_heads", "pos_encoding",
                                "ffn", "d_ff")}
    arch["n_kv_heads"] = get("n_kv_heads") or get("n_heads")
    ffn = get("ffn", "dense")
    if ffn != "dense":
        k = moe_top_k(ffn, get("top_k"))
        arch.update(n_experts=get("n_experts"), top_k=k, moe_every=get("moe_every"),
                    d_expert=moe_d_expert(ffn, int(get("d_ff")), k, get("d_expert")))
    return arch


@dataclass
class SourceRun:
    """An LM run dir to start from, its config read under the trust rules."""

    value: str  # as the user wrote it, for messages
    path: Path
    cfg: Any

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    def tokenizer(self) -> RunTokenizer:
        """The source's tokenizer: the one it saved in its run dir, or (a run of an older
        rlrun) the one its data gives: the shards' tokenizer.json, or its text's characters."""
        saved = RunTokenizer.read(self.path)
        if saved is not None:
            return saved
        from rlrun.core.config import import_object, validate

        env = validate(self.cfg.env, import_object(str(self.cfg.env.schema), "env.schema"),
                       "env")
        if isinstance(env, TokensConfig):
            return RunTokenizer(f"{env.path}/tokenizer.json",
                                tokenizer=TokenShards.open(str(env.path)).tokenizer())
        from rlrun.data.text import load_text

        return RunTokenizer(f"the characters of {env.path or 'its default corpus'}",
                            chars=sorted(set(load_text(env))))


def open_source(value: str) -> SourceRun:
    """The run dir `algo.init_from` names, checked to be an LM run with a checkpoint."""
    from rlrun.core.resume import read_run_config

    path = Path(value).expanduser().resolve()
    where = f"algo.init_from={value}"
    if not path.is_dir():
        raise ConfigError(f"{where}: no such run dir")
    if not (path / ".hydra" / "config.yaml").is_file():
        raise ConfigError(f"{where} is not a run dir (no .hydra/config.yaml): name the folder"
                          " of one algo=lm run, e.g. outputs/lm/<env>/<date>_<time>")
    cfg = read_run_config(path, where)  # names only code rlrun's configs name
    if str(cfg.algo.get("loop")) != LM_LOOP:
        raise ConfigError(f"{where} is an algo={cfg.algo.get('name')} run; init_from starts"
                          " from an algo=lm run's weights")
    if not (path / "checkpoints" / "last.pt").is_file():
        raise CheckpointError(f"{where} has no checkpoint (checkpoints/last.pt): it stopped"
                              " before its first save")
    return SourceRun(value, path, cfg)


def check_architecture(network: Any, src: SourceRun) -> None:
    """One ConfigError naming every architecture key whose value differs from the source's."""
    here, there = architecture(network), architecture(src.cfg.network)
    differ = [k for k in ARCH_KEYS if (k in here or k in there) and here.get(k) != there.get(k)
              # null n_kv_heads follows n_heads: named once, as n_heads
              and not (k == "n_kv_heads" and network.get(k) is None
                       and src.cfg.network.get(k) is None)]
    if differ:
        shown = ", ".join(f"network.{k}={_show(here.get(k))} (init_from run:"
                          f" {_show(there.get(k))})" for k in differ)
        raise ConfigError(f"algo.init_from={src.value}: the architecture differs in {shown};"
                          " set them to the init_from run's values")


def _show(v: Any) -> str:
    return "-" if v is None else str(v)


def check(cfg: Any, algo: Any, env: Any) -> None:
    """What preflight checks of `algo.init_from` (nothing when it is null): the source run,
    the architecture and, for an LM with `init_from_vocab=same`, the tokens."""
    value = getattr(algo, "init_from", None)
    if not value:
        return
    src = open_source(str(value))
    check_architecture(cfg.network, src)
    source_tokens = src.tokenizer()  # readable (the classifier encodes with it)
    if str(cfg.algo.get("loop")) == LM_LOOP and algo.init_from_vocab == "same":
        check_same_tokens(env, source_tokens, src)


def data_vocabulary(env: Any) -> tuple[Vocabulary, str]:
    """The vocabulary an LM run on `env` gets, and how to name that data in a message."""
    if isinstance(env, TokensConfig):
        return TokenShards.open(str(env.path)).vocabulary(), f"env.path={env.path}"
    from rlrun.data.text import load_text

    where = f"env.path={env.path}" if env.path else f"env={env.name}"
    return Vocabulary.of_chars(sorted(set(load_text(env))), "of its text"), where


def check_same_tokens(env: Any, source: RunTokenizer, src: SourceRun) -> None:
    here, where = data_vocabulary(env)
    there = source.vocabulary()
    if here.pieces == there.pieces:
        return
    shards = isinstance(env, TokensConfig)
    fix = "" if source.tokenizer is None else (
        f"prepare it with tokenizer={source.where}, or " if shards else
        f"prepare that text with rlrun-prepare ... tokenizer={source.where} and train on"
        " env=tokens, or ")
    what = "was prepared with" if shards else "has"
    raise DataError(f"{where} {what} a different tokenizer than the algo.init_from run"
                    f" ({here.what} against {there.what}): {fix}set"
                    " algo.init_from_vocab=extend to start the tokens both hold from the"
                    " source's rows")


# ---- loading the weights (the loops) ---------------------------------------------------------
def source_weights(src: SourceRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """The source model's state dict and what results.json records of it (dir, step,
    SHA-256 of the checkpoint file as read)."""
    from rlrun.core.checkpoint import load_checkpoint

    data = src.checkpoint.read_bytes()  # hashed and loaded from the same bytes
    state = load_checkpoint(src.checkpoint, data=data)
    model = (state.get("loop") or {}).get("model")
    if not isinstance(model, dict):
        raise CheckpointError(f"algo.init_from={src.value}: its checkpoint holds no model")
    return model, {"run_dir": str(src.path), "checkpoint": str(src.checkpoint),
                   "step": int(state.get("step", 0)),
                   "sha256": hashlib.sha256(data).hexdigest()}


def map_rows(own: Any, source: Any, mapping: Any) -> Any:
    """Rows of a new embedding (or output) matrix: `source[mapping[i]]` where mapping[i] >= 0,
    else the mean of the source's rows."""
    import torch

    out = own.detach().clone()
    m = torch.as_tensor(mapping, dtype=torch.long)
    known = m >= 0
    out[known] = source[m[known]].to(out)
    out[~known] = source.float().mean(0).to(out)
    return out


def load_into(model: Any, state: dict[str, Any], mapping: Any, value: str,
              skip: tuple[str, ...] = ()) -> None:
    """Load the source `state` into `model` (a Transformer): the token rows through
    `mapping` (new id -> source id or -1; None: the same ids), the rest as they are; keys
    in `skip` (the LM head, for an encoder) are left out. A key or shape that does not fit
    is a one-line CheckpointError."""
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(skip)} if skip else dict(state)
    if mapping is not None:
        for key in ("emb.weight", "head.weight"):
            if key in state and key in own:
                state[key] = map_rows(own[key], state[key], mapping)
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(
        state[k].shape))
    if missing or extra or wrong:
        what = "; ".join(f"{name}: {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}"
                         for name, keys in (("missing", missing), ("unexpected", extra),
                                            ("other shapes", wrong)) if keys)
        raise CheckpointError(f"algo.init_from={value}: its weights do not fit this network"
                              f" ({what})")
    model.load_state_dict(state)


def init_lm(model: Any, src: SourceRun, vocab_mode: str, vocabulary: Vocabulary) -> dict:
    """Load an LM from the source run (the loop calls it on a fresh run, after building the
    model and before training); returns the results.json record."""
    state, record = source_weights(src)
    mapping = None
    if vocab_mode == "extend":
        mapping = vocabulary.map_from(src.tokenizer().vocabulary())
        record.update(tokens_from_source=int((mapping >= 0).sum()),
                      tokens_new=int((mapping < 0).sum()))
    load_into(model, state, mapping, src.value)
    return {**record, "vocab": vocab_mode}


def init_encoder(encoder: Any, src: SourceRun, mapping: Any, causal_source: bool) -> dict:
    """Load a classifier's encoder (a Transformer without its LM head) from a source LM:
    the embedding through `mapping`, the blocks and the final norm as they are."""
    state, record = source_weights(src)
    load_into(encoder, state, mapping, src.value, skip=("head.",))
    known = int((mapping >= 0).sum())
    return {**record, "tokens_from_source": known, "tokens_new": int(len(mapping) - known),
            "causal_source": causal_source}
