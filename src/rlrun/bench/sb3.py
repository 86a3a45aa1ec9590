"""Stable-Baselines3 models with the hyperparameters of an rlrun config, for `--vs sb3`.

The one mapping: scripts/bench_deep_rl.py, bench_classic_rl.py and bench_updates_classic_rl.py
import it too, so the scripts and the installed command compare against the same SB3 runs.
Imported only under --vs sb3 (the `bench` extra)."""

from __future__ import annotations

from typing import Any

ALGOS = ("ppo", "sac", "dqn", "td3", "ddpg", "a2c")


def model(algo: str, cfg: Any, seed: int) -> Any:
    """An SB3 model for `cfg` (a composed rlrun config), on CPU, seeded."""
    import gymnasium as gym
    import numpy as np
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import NormalActionNoise

    a, env_id = cfg.algo, cfg.env.id
    net = list(cfg.network.hidden_sizes) if "hidden_sizes" in cfg.network else None
    common = {"seed": seed, "device": "cpu", "verbose": 0}
    torch.manual_seed(seed)
    if algo == "sac":
        return sb3.SAC("MlpPolicy", gym.make(env_id), learning_rate=a.q_lr,
                       buffer_size=a.buffer_size, learning_starts=a.learning_starts,
                       batch_size=a.batch_size, tau=a.tau, gamma=a.gamma, train_freq=1,
                       gradient_steps=a.gradient_steps, ent_coef="auto",
                       target_update_interval=a.target_network_frequency,
                       policy_kwargs={"net_arch": net}, **common)
    if algo == "dqn":
        from rlrun.envs.gym import is_atari

        if is_atari(env_id):  # SB3's AtariWrapper (its own EpisodicLife, FireReset) + stack
            from stable_baselines3.common.env_util import make_atari_env
            from stable_baselines3.common.vec_env import VecFrameStack

            env = VecFrameStack(make_atari_env(env_id, n_envs=1, seed=seed,
                                               env_kwargs={"frameskip": 1}), 4)
            policy, kw = "CnnPolicy", {}
        else:
            env, policy, kw = gym.make(env_id), "MlpPolicy", {"policy_kwargs":
                                                              {"net_arch": net}}
        lr = (lambda left: left * a.learning_rate) if a.anneal_lr else a.learning_rate
        return sb3.DQN(policy, env, learning_rate=lr, buffer_size=a.buffer_size,
                       learning_starts=a.learning_starts, batch_size=a.batch_size, tau=a.tau,
                       gamma=a.gamma, train_freq=a.train_frequency,
                       gradient_steps=a.gradient_steps,
                       target_update_interval=a.target_network_frequency,
                       exploration_fraction=a.exploration_fraction,
                       exploration_initial_eps=a.start_e, exploration_final_eps=a.end_e,
                       max_grad_norm=a.max_grad_norm, **kw, **common)
    if algo in ("td3", "ddpg"):
        env = gym.make(env_id)
        n = env.action_space.shape[0]
        noise = NormalActionNoise(np.zeros(n), a.exploration_noise * np.ones(n))
        kw = dict(learning_rate=a.learning_rate, buffer_size=a.buffer_size,
                  learning_starts=a.learning_starts, batch_size=a.batch_size, tau=a.tau,
                  gamma=a.gamma, train_freq=a.train_frequency, gradient_steps=a.gradient_steps,
                  action_noise=noise, policy_kwargs={"net_arch": net,
                                                     "n_critics": a.n_critics}, **common)
        if algo == "ddpg":
            return sb3.DDPG("MlpPolicy", env, **kw)
        return sb3.TD3("MlpPolicy", env, policy_delay=a.policy_frequency,
                       target_policy_noise=a.policy_noise, target_noise_clip=a.noise_clip,
                       **kw)
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[cfg.network.activation]
    policy_kwargs = {"net_arch": {"pi": net, "vf": net}, "activation_fn": act}
    if algo == "a2c":
        return sb3.A2C("MlpPolicy", make_vec_env(env_id, n_envs=cfg.env.num_envs or 8,
                                                 seed=seed),
                       learning_rate=a.learning_rate, n_steps=a.num_steps, gamma=a.gamma,
                       gae_lambda=a.gae_lambda, ent_coef=a.ent_coef, vf_coef=a.vf_coef,
                       max_grad_norm=a.max_grad_norm, rms_prop_eps=a.rms_eps,
                       use_rms_prop=a.optimizer == "rmsprop",
                       normalize_advantage=a.normalize_advantage,
                       policy_kwargs=policy_kwargs, **common)
    n_envs = cfg.env.num_envs or 4

    def sched(v: float, on: bool) -> Any:
        return (lambda frac: frac * v) if on else v

    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if a.get("normalize_obs") or a.get("normalize_reward"):
        from stable_baselines3.common.vec_env import VecNormalize

        env = VecNormalize(env, norm_obs=bool(a.normalize_obs),
                           norm_reward=bool(a.normalize_reward), gamma=a.gamma)
    return sb3.PPO("MlpPolicy", env, learning_rate=sched(a.learning_rate, a.anneal_lr),
                   n_steps=a.num_steps, batch_size=a.num_steps * n_envs // a.num_minibatches,
                   n_epochs=a.update_epochs, gamma=a.gamma, gae_lambda=a.gae_lambda,
                   clip_range=sched(a.clip_coef, a.anneal_clip),
                   clip_range_vf=sched(a.clip_coef, a.anneal_clip) if a.clip_vloss else None,
                   ent_coef=a.ent_coef, vf_coef=a.vf_coef, max_grad_norm=a.max_grad_norm,
                   policy_kwargs=policy_kwargs, **common)
