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
    from rlrun.schemas import bandits, dp, envs, mc, td

    for group, name, cls in (
        ("algo", "epsilon_greedy", bandits.EpsilonGreedyConfig),
        ("algo", "ucb", bandits.UCBConfig),
        ("algo", "gradient_bandit", bandits.GradientBanditConfig),
        ("algo", "td_control", td.TDControlConfig),
        ("algo", "td_prediction", td.TDPredictionConfig),
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
    ):
        register(group, name, cls)
