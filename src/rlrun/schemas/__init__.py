"""rlrun's own schemas, registered in Hydra's ConfigStore as `schema/<group>/<name>` (the
YAML files name them at the head of their defaults lists; `rlrun.core.schema`)."""

from __future__ import annotations

import functools


@functools.cache
def register_all() -> None:
    """Register every schema of rlrun (once per process); plugins register their own when
    their entry point is loaded."""
    from rlrun.core.logger import LoggerConfig
    from rlrun.core.schema import register
    from rlrun.schemas import bandits, data, ddpm, envs, lm, networks, td, text_classifier

    for group, name, cls in (
        ("algo", "epsilon_greedy", bandits.EpsilonGreedyConfig),
        ("algo", "ucb", bandits.UCBConfig),
        ("algo", "gradient_bandit", bandits.GradientBanditConfig),
        ("algo", "td_control", td.TDControlConfig),
        ("algo", "td_prediction", td.TDPredictionConfig),
        ("env", "bandit", envs.BanditConfig),
        ("env", "tabular", envs.TabularEnvConfig),
        ("logger", "tensorboard", LoggerConfig),
        ("algo", "lm", lm.LMConfig),
        ("algo", "ddpm", ddpm.DDPMConfig),
        ("algo", "text_classifier", text_classifier.TextClassifierConfig),
        ("env", "text", data.TextConfig),
        ("env", "text_file", data.TextFileConfig),
        ("env", "tokens", data.TokensConfig),
        ("env", "text_classification", data.TextClassificationConfig),
        ("env", "images", data.ImageDataConfig),
        ("network", "mlp", networks.MLPConfig),
        ("network", "nature_cnn", networks.NatureCNNConfig),
        ("network", "unet", networks.UNetConfig),
        ("network", "transformer", networks.TransformerConfig),
    ):
        register(group, name, cls)
