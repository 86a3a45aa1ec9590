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
    from rlrun.schemas import (
        bandits,
        data,
        ddpm,
        deep_rl,
        dp,
        envs,
        gym,
        lm,
        mc,
        networks,
        td,
        text_classifier,
    )

    for group, name, cls in (
        ("algo", "epsilon_greedy", bandits.EpsilonGreedyConfig),
        ("algo", "ucb", bandits.UCBConfig),
        ("algo", "gradient_bandit", bandits.GradientBanditConfig),
        ("algo", "td_control", td.TDControlConfig),
        ("algo", "td_prediction", td.TDPredictionConfig),
        ("algo", "sac", deep_rl.SACConfig),
        ("algo", "td3", deep_rl.TD3Config),  # ddpg too: TD3 with its three fixes off
        ("algo", "dqn", deep_rl.DQNConfig),
        ("algo", "ppo", deep_rl.PPOConfig),
        ("algo", "a2c", deep_rl.A2CConfig),
        ("algo", "policy_evaluation", dp.PolicyEvaluationConfig),
        ("algo", "value_iteration", dp.ValueIterationConfig),
        ("algo", "policy_iteration", dp.PolicyIterationConfig),
        ("algo", "mc_prediction", mc.MCPredictionConfig),
        ("algo", "mc_control_es", mc.MCControlESConfig),
        ("algo", "mc_off_policy", mc.MCOffPolicyConfig),
        ("algo", "n_step_td", mc.NStepTDConfig),
        ("env", "bandit", envs.BanditConfig),
        ("env", "tabular", envs.TabularEnvConfig),
        ("env", "jacks_car_rental", envs.JacksCarRentalConfig),
        ("env", "gamblers_problem", envs.GamblersProblemConfig),
        ("logger", "tensorboard", LoggerConfig),
        ("algo", "lm", lm.LMConfig),
        ("algo", "ddpm", ddpm.DDPMConfig),
        ("algo", "text_classifier", text_classifier.TextClassifierConfig),
        ("env", "text", data.TextConfig),
        ("env", "text_file", data.TextFileConfig),
        ("env", "tokens", data.TokensConfig),
        ("env", "text_classification", data.TextClassificationConfig),
        ("env", "labelled_text", data.LabelledTextConfig),
        ("env", "images", data.ImageDataConfig),
        ("network", "mlp", networks.MLPConfig),
        ("network", "nature_cnn", networks.NatureCNNConfig),
        ("network", "unet", networks.UNetConfig),
        ("network", "transformer", networks.TransformerConfig),
        ("env", "gym", gym.GymEnvConfig),
    ):
        register(group, name, cls)
