"""Settings of the networks (`configs/network/*.yaml`): one dataclass per network class, its
`_target_` first, then the constructor's arguments. Several configs may share one
(`network=encoder` is the transformer's schema with other values, `network=mlp_small` the
MLP's). The loops add the task's shapes when they build one, `build_network(cfg.network,
vocab_size=V)` (`rlrun.nets`), and preflight checks the node against the schema its
`_target_` names (`network_schema`). Torch-free: read at CLI start-up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rlrun.core.errors import ConfigError
from rlrun.core.schema import opt, registered

# activation name -> its torch.nn class (rlrun.nets.mlp and rlrun.nets.unet build from these)
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "elu": "ELU", "gelu": "GELU", "silu": "SiLU",
               "leaky_relu": "LeakyReLU"}
UNET_ACTIVATIONS = ("silu", "relu", "gelu")
FFNS = ("dense", "switch", "mixtral")
POS_ENCODINGS = ("rope", "sinusoidal", "none")


@dataclass
class MLPConfig:
    """`network=mlp` (256x256 relu) and `network=mlp_small` (64x64 tanh); in_dim and out_dim
    come from the task."""

    _target_: str = opt("rlrun.nets.mlp.MLP", "the network class")
    hidden_sizes: list[int] = opt(factory=lambda: [256, 256], help="widths of the hidden"
                                  " layers ([]: a linear map)", ge=1, each=True)
    activation: str = opt("relu", "between the layers (none after the output layer)",
                          choices=tuple(ACTIVATIONS))


@dataclass
class NatureCNNConfig:
    """`network=nature_cnn`: DQN's convolutional torso (Mnih et al. 2015) for stacked frames;
    in_dim (C, H, W) and out_dim come from the task."""

    _target_: str = opt("rlrun.nets.cnn.NatureCNN", "the network class")
    hidden: int = opt(512, "width of the dense layer after the convolutions", ge=1)
    channels: list[int] = opt(factory=lambda: [32, 64, 64], help="output channels of the"
                              " three convolutions (8x8/4, 4x4/2, 3x3/1)", ge=1, each=True)

    def __post_init__(self) -> None:
        if len(self.channels) != 3:
            raise ConfigError(f"channels={list(self.channels)} must name 3 widths, one per"
                              " convolution")


def check_unet_size(image_size: int, ch_mult: list[int]) -> None:
    """The UNet halves the image side at each level but the last: the side must divide by
    2 ** (levels - 1) (checked by the preflight, from env.size, and by the UNet itself)."""
    factor = 2 ** (len(ch_mult) - 1)
    if image_size % factor:
        raise ConfigError(
            f"image size {image_size} does not divide by the UNet's down-sampling factor"
            f" {factor} (network.ch_mult has {len(ch_mult)} levels): pick env.size as a"
            f" multiple of {factor} or fewer levels")


@dataclass
class UNetConfig:
    """`network=unet`, the DDPM UNet (Ho et al. 2020); in_channels and image_size come from
    the data (the side must divide by 2 ** (len(ch_mult) - 1))."""

    _target_: str = opt("rlrun.nets.unet.UNet", "the network class")
    ch: int = opt(64, "channels of the first level", ge=1)
    ch_mult: list[int] = opt(factory=lambda: [1, 2, 2], help="width multiplier per level; the"
                             " image side must divide by 2^(levels-1)", ge=1, each=True)
    num_res_blocks: int = opt(2, "residual blocks per level", ge=1)
    attn_resolutions: list[int] = opt(factory=lambda: [16], help="feature-map sides with"
                                      " self-attention (the middle always has it)", ge=1,
                                      each=True)
    dropout: float = opt(0.1, "dropout in the residual blocks", ge=0, lt=1)
    groups: int = opt(32, "GroupNorm groups (must divide every width)", ge=1)
    heads: int = opt(1, "attention heads (must divide every width)", ge=1)
    activation: str = opt("silu", "nonlinearity of the residual blocks and time embedding",
                          choices=UNET_ACTIVATIONS)

    def __post_init__(self) -> None:
        if not self.ch_mult:
            raise ConfigError("ch_mult=[] must name at least one level, e.g. [1, 2, 2]")
        widths = sorted({self.ch * m for m in self.ch_mult})
        if any(c % self.groups or c % self.heads for c in widths):
            raise ConfigError(f"groups={self.groups} and heads={self.heads} must both divide"
                              f" every channel width ({widths} from ch * ch_mult)")


def moe_top_k(ffn: str, top_k: int | None) -> int:
    """Experts per token: `top_k`, or the papers' choice (Switch 1, Mixtral 2)."""
    return top_k if top_k is not None else (1 if ffn == "switch" else 2)


def moe_d_expert(ffn: str, d_ff: int, k: int, d_expert: int | None) -> int:
    """Each expert's width: `d_expert`, or the dense FFN's active width per token (Switch:
    d_ff per expert; Mixtral: d_ff / top_k, so that k experts add up to d_ff)."""
    return d_expert if d_expert is not None else (d_ff if ffn == "switch" else d_ff // k)


def moe_capacity_factor(ffn: str, capacity_factor: float | None) -> float:
    """Slots per expert, as a factor; the papers' defaults: Switch 1.25, Mixtral no limit (0)."""
    if capacity_factor is not None:
        return capacity_factor
    return 1.25 if ffn == "switch" else 0.0


@dataclass
class TransformerConfig:
    """`network=transformer` (the LM's causal decoder) and `network=encoder` (bidirectional,
    algo=text_classifier): RMSNorm, SDPA attention, SwiGLU or mixture-of-experts FFNs;
    vocab_size comes from the data. See docs/lm.md."""

    _target_: str = opt("rlrun.nets.transformer.Transformer", "the network class")
    d_model: int = opt(128, "width of the residual stream", ge=1)
    n_layers: int = opt(2, "transformer blocks", ge=1)
    n_heads: int = opt(4, "attention (query) heads; d_model / n_heads must be even", ge=1)
    n_kv_heads: int | None = opt(None, "K/V heads: null = n_heads (MHA), 1 (MQA), a divisor of"
                                 " n_heads (GQA)", ge=1)
    pos_encoding: str = opt("rope", "rope (rotary), sinusoidal (added to the embeddings) or"
                            " none", choices=POS_ENCODINGS)
    block_size: int = opt(64, "context length in tokens (the classifier sets env.max_len)",
                          ge=1)
    ffn: str = opt("dense", "dense | switch (top-1, capacity, dropping) | mixtral (top-k of"
                   " n_experts)", choices=FFNS)
    d_ff: int = opt(384, "dense FFN width (and each Switch expert's; Mixtral: d_ff / top_k)",
                    ge=1)
    n_experts: int = opt(8, "experts per MoE layer (MoE only)", ge=1)
    top_k: int | None = opt(None, "experts per token; null: 1 for switch, 2 for mixtral", ge=1)
    d_expert: int | None = opt(None, "each expert's width; null: d_ff for switch, d_ff / top_k"
                               " for mixtral (= the dense FFN's active width)", ge=1)
    capacity_factor: float | None = opt(None, "slots per expert = ceil(cf * tokens * k /"
                                        " n_experts); 0: no limit; null: 1.25 for switch, no"
                                        " limit for mixtral", ge=0)
    jitter: float = opt(0.0, "Switch's multiplicative router-input noise, uniform in"
                        " [1-j, 1+j]", ge=0, lt=1)
    aux_loss_coef: float = opt(0.01, "weight of the Switch load-balancing loss"
                               " N * sum_i f_i P_i", ge=0)
    z_loss_coef: float = opt(0.001, "weight of the ST-MoE router z-loss"
                             " mean(logsumexp(logits)^2)", ge=0)
    moe_every: int = opt(1, "a MoE FFN in every n-th block (the others dense)", ge=1)
    causal: bool = opt(True, "causal attention (a decoder, algo=lm); false: bidirectional (an"
                       " encoder, algo=text_classifier)")

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"d_model={self.d_model} must split into n_heads={self.n_heads}"
                              " heads of even size (rotary embeddings rotate pairs)")
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads:
            raise ConfigError(f"n_kv_heads={self.n_kv_heads} must divide n_heads="
                              f"{self.n_heads} (null: MHA, 1: MQA, a divisor: GQA)")
        if self.ffn == "dense":
            if self.top_k not in (None, 1):
                raise ConfigError(f"top_k={self.top_k} needs a MoE: ffn=switch|mixtral")
            return
        k = moe_top_k(self.ffn, self.top_k)
        if self.ffn == "switch" and k != 1:
            raise ConfigError(f"top_k={k}: ffn=switch routes top-1; use ffn=mixtral for"
                              " top-k routing")
        if k > self.n_experts:
            raise ConfigError(f"top_k={k} must be in [1, n_experts={self.n_experts}]"
                              f" (or null: {1 if self.ffn == 'switch' else 2} for"
                              f" ffn={self.ffn})")
        if moe_d_expert(self.ffn, self.d_ff, k, self.d_expert) < 1:
            raise ConfigError(f"d_ff={self.d_ff} leaves each of the top_k={k} experts no width"
                              " (d_ff / top_k): raise d_ff or set d_expert")


def network_schema(target: object) -> type | None:
    """The registered network schema whose `_target_` is `target` (rlrun's or a plugin's),
    or None for a class nothing registers (a user's own `network._target_`)."""
    for cls in registered().values():
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if "_target_" in fields and fields["_target_"].default == target:
            return cls
    return None
