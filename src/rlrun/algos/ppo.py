"""Proximal Policy Optimisation (Schulman et al. 2017), clipped surrogate, CleanRL-style.

    rlrun algo=ppo env=CartPole-v1                  # tuned (rl-zoo): 500 within 100k steps
    rlrun algo=ppo env=Pendulum-v1                  # tuned, with observation/reward normalisation
    rlrun algo=ppo env.num_envs=16 env.vectorization=async

One iteration: `num_steps` steps of `env.num_envs` envs with the current policy; advantages
by GAE(lambda); then `update_epochs` passes over the rollout in `num_minibatches` minibatches
of the clipped objective, with a clipped value loss, an entropy bonus, advantage
normalisation, gradient-norm clipping, and an optional early stop once the approximate KL
to the rollout policy passes `target_kl`. Learning rate (and optionally the clip range)
anneal linearly to 0. A truncated episode (time limit) is bootstrapped: its last reward
gets + gamma V(final_obs), as SB3 does, so time limits do not look like failures.

Speed on a CPU: `algo.fast_path` (auto: on for a CPU with a tanh or relu MLP) runs the same
update with a fraction of the torch calls (rlrun/fast/ppo_cpu.py); the code below is the plain
path it stands in for, which GPUs and `algo.compile=true` run and tests/test_fast_paths.py
holds it to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rlrun.envs.gym import space_kind
from rlrun.fast import ppo_cpu
from rlrun.nets.actor_critic import ActorCritic
from rlrun.rl.evaluation import Evaluator
from rlrun.rl.rollout import agent_policy, bootstrap_truncated, build_agent, gae
from rlrun.rl.training import (
    ObsNormalizer,
    SPSMeter,
    adam,
    log_episodes,
    maybe_compile,
    whole_rollouts,
)
from rlrun.rl.vec_env import num_envs, training_envs
from rlrun.schemas.deep_rl import PPOConfig


def ppo_loss(agent: ActorCritic, b: dict[str, torch.Tensor], clip: float | torch.Tensor,
             clip_vloss: bool, ent_coef: float, vf_coef: float,
             norm_adv: bool) -> dict[str, torch.Tensor]:
    """The clipped surrogate, (clipped) value loss and entropy of one minibatch."""
    logp, entropy, value = agent.evaluate(b["obs"], b["actions"])
    log_ratio = logp - b["logp"]
    ratio = log_ratio.exp()
    adv = b["adv"]
    if norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
    if clip_vloss:
        v_clipped = b["values"] + (value - b["values"]).clamp(-clip, clip)
        v_loss = 0.5 * torch.max((value - b["returns"]).pow(2),
                                 (v_clipped - b["returns"]).pow(2)).mean()
    else:
        v_loss = 0.5 * (value - b["returns"]).pow(2).mean()
    ent = entropy.mean()
    return {"loss": policy - ent_coef * ent + vf_coef * v_loss, "policy": policy,
            "value": v_loss, "entropy": ent, "log_ratio": log_ratio.detach()}


def ratio_stats(log_ratio: torch.Tensor, clip: float) -> dict[str, torch.Tensor]:
    """Approximate KL to the rollout policy (the unbiased k3 estimator) and the fraction of
    clipped ratios, over the last minibatch; computed once per update for the logs (once per
    epoch with `target_kl`), not per minibatch."""
    ratio = log_ratio.exp()
    return {"approx_kl": ((ratio - 1) - log_ratio).mean(),
            "clipfrac": ((ratio - 1).abs() > clip).float().mean()}


class PlainPath:
    """A rollout step, the minibatch loss and the gradient bookkeeping in plain torch.
    `ppo_cpu.FastPPO` has the same methods and numbers, with fewer, fused calls."""

    def __init__(self, agent: ActorCritic, compiled: bool, device: str):
        self.params, self.step = list(agent.parameters()), agent.step
        self.loss = maybe_compile(ppo_loss, compiled, device)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        return nn.utils.clip_grad_norm_(self.params, max_norm, foreach=True)


def _wrappers(cfg: PPOConfig) -> tuple:
    import gymnasium as gym

    w = gym.wrappers.vector
    out: list = []
    if cfg.normalize_reward:
        out += [lambda e: w.NormalizeReward(e, gamma=cfg.gamma),
                lambda e: w.ClipReward(e, -cfg.clip_reward, cfg.clip_reward)]
    return tuple(out)


def run(ctx) -> None:
    cfg, dev = ctx.algo, torch.device(ctx.device)
    n_envs = num_envs(ctx)  # the minibatches hold >= 2 steps each (PPOConfig.check_env)
    envs = training_envs(ctx, _wrappers(cfg))
    space = envs.single_action_space
    continuous = space_kind(space) == "continuous"
    obs_shape = envs.single_observation_space.shape
    act_shape = space.shape if continuous else ()
    act_dim = int(space.shape[0]) if continuous else int(space.n)
    agent = build_agent(ctx.network, int(np.prod(obs_shape)), act_dim, continuous,
                        cfg.log_std_init).to(dev)
    # algo.fast_path: the same update in fewer torch calls on a CPU (rlrun/fast/ppo_cpu.py)
    path = ppo_cpu.select(cfg, agent, ctx.device) or PlainPath(agent, cfg.compile, ctx.device)
    opt = adam(path.params, cfg.learning_rate, ctx.device, eps=1e-5)
    norm = ObsNormalizer(obs_shape, cfg.clip_obs) if cfg.normalize_obs else None
    evaluator = Evaluator.of_run(ctx, cfg.eval_episodes, load_policy)
    T, batch = cfg.num_steps, cfg.num_steps * n_envs
    n_iters = whole_rollouts(ctx, cfg.total_steps, T, n_envs)  # never past the budget
    mb_size = max(1, batch // cfg.num_minibatches)
    f32 = dict(dtype=torch.float32, device=dev)
    # the rollout lives in numpy (one host copy per step is free on CPU) and moves to the
    # device once per rollout; per-step tensor writes cost more than the env step itself
    buf = {"obs": np.zeros((T, n_envs, *obs_shape), np.float32),
           "actions": np.zeros((T, n_envs, *act_shape),
                               np.float32 if continuous else np.int64),
           "logp": np.zeros((T, n_envs), np.float32), "values": np.zeros((T, n_envs), np.float32),
           "rewards": np.zeros((T, n_envs), np.float32),
           "dones": np.zeros((T, n_envs), np.float32)}
    low, high = (space.low, space.high) if continuous else (None, None)

    ctx.track(agent=agent, opt=opt, obs_norm=norm or {})
    ctx.track_per_rank(envs=envs)
    resumed = ctx.resume()
    # the loop sees observations normalised by the statistics up to now (a fresh run's
    # include its first reset; a resumed run's are the saved ones, left as they were)
    obs = norm(resumed.obs, update=not resumed) if norm else resumed.obs

    def value_of(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return agent.value(torch.as_tensor(o, **f32)).cpu().numpy()

    policy = agent_policy(agent, space, True, norm.frozen if norm else None)
    log, last_return, sps = ctx.logger, None, SPSMeter(ctx.step)
    end = n_iters * batch
    ctx.start_progress(end)
    while ctx.step < end:
        frac = 1.0 - ctx.step // batch / n_iters  # iterations left (each one `batch` steps)
        lr = cfg.learning_rate * frac if cfg.anneal_lr else cfg.learning_rate
        opt.param_groups[0]["lr"] = lr
        clip = cfg.clip_coef * frac if cfg.anneal_clip else cfg.clip_coef
        noise = agent.draw_noise(T, n_envs)  # the rollout's sampling draws, in one call
        step = ctx.step
        for t in range(T):  # ---- rollout
            buf["obs"][t] = obs
            a, buf["logp"][t], buf["values"][t] = path.step(buf["obs"][t], noise[t])
            buf["actions"][t] = a
            raw_obs, reward, term, trunc, infos = envs.step(np.clip(a, low, high)
                                                            if continuous else a)
            obs = norm(raw_obs, update=True) if norm else raw_obs
            buf["rewards"][t] = reward
            bootstrap_truncated(buf["rewards"][t], term, trunc, infos, value_of, cfg.gamma,
                                norm.frozen if norm else None)
            buf["dones"][t] = term | trunc
            step += n_envs
            last_return = log_episodes(log, infos, step, last_return)
        with torch.no_grad():
            next_value = agent.value(torch.as_tensor(obs, **f32)).cpu().numpy()
        adv, returns = gae(buf["rewards"], buf["values"], buf["dones"], next_value,
                           cfg.gamma, cfg.gae_lambda)
        flat = {k: torch.as_tensor(v.reshape(batch, *v.shape[2:]), device=dev)
                for k, v in {**buf, "adv": adv, "returns": returns}.items()}
        out = _learn(path, opt, agent, flat, cfg, clip, mb_size)
        y, v = flat["returns"], flat["values"]
        explained = 1 - torch.var(y - v) / torch.var(y).clamp_min(1e-8)
        log.scalars({f"losses/{k}": float(out[k]) for k in ("policy", "value", "entropy")},
                    step)
        log.scalars({"charts/approx_kl": float(out["approx_kl"]),
                     "charts/clipfrac": float(out["clipfrac"]),
                     "charts/explained_variance": float(explained),
                     "charts/learning_rate": lr, "charts/SPS": sps.read(step)}, step)
        if ctx.every("eval", cfg.eval_every, step) or step >= end:
            evaluator.run(policy, log, step)
        if ctx.tick(step, last_return):
            break
    ctx.finish(close=(evaluator, envs))


def load_policy(ctx: Any, env: Any, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    """rlrun-eval's hook: the saved agent, on observations normalised as in evaluation."""
    space, obs_shape = env.action_space, env.observation_space.shape
    continuous = space_kind(space) == "continuous"
    act_dim = int(space.shape[0]) if continuous else int(space.n)
    agent = build_agent(ctx.network, int(np.prod(obs_shape)), act_dim, continuous,
                        ctx.algo.log_std_init).to(ctx.device)
    norm = ObsNormalizer(obs_shape, ctx.algo.clip_obs) if ctx.algo.normalize_obs else None
    ctx.track(agent=agent, obs_norm=norm or {})  # the loop's names
    ctx.resume()
    return agent_policy(agent, space, deterministic, norm.frozen if norm else None)


def _learn(path: PlainPath | ppo_cpu.FastPPO, opt, agent: nn.Module, flat: dict,
           cfg: PPOConfig, clip: float, mb_size: int) -> dict[str, torch.Tensor]:
    """`update_epochs` shuffled passes of minibatch steps; stops early past `target_kl`."""
    batch = flat["adv"].shape[0]
    out: dict[str, torch.Tensor] = {}
    whole = mb_size >= batch  # one minibatch: no shuffle or gather, normalise once
    if whole and cfg.norm_adv:
        adv = flat["adv"]
        flat = {**flat, "adv": (adv - adv.mean()) / (adv.std() + 1e-8)}
    norm_adv = cfg.norm_adv and not whole
    # compiled: an annealed Python float would be baked into the graph and recompile it
    # every update; a 0-d tensor is an input
    clip_arg = torch.tensor(clip, device=flat["adv"].device) if cfg.compile else clip
    for _ in range(cfg.update_epochs):
        perm = None if whole else torch.randperm(batch, device=flat["adv"].device)
        for start in range(0, batch, mb_size):
            mb = flat if perm is None else {k: v[perm[start:start + mb_size]]
                                            for k, v in flat.items()}
            out = path.loss(agent, mb, clip_arg, cfg.clip_vloss, cfg.ent_coef, cfg.vf_coef,
                            norm_adv)
            path.zero_grad()
            out["loss"].backward()
            path.clip_grad_norm_(cfg.max_grad_norm)
            opt.step()
        if cfg.target_kl is not None:
            out.update(ratio_stats(out["log_ratio"], clip))
            if float(out["approx_kl"]) > cfg.target_kl:
                break
    if cfg.target_kl is None:  # the last epoch's, for the logs
        out.update(ratio_stats(out["log_ratio"], clip))
    return {k: v.detach() for k, v in out.items()}
