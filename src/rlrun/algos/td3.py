"""DDPG (Lillicrap et al. 2016) and TD3 (Fujimoto et al. 2018), continuous actions, one file.

    rlrun algo=td3 env=Pendulum-v1                  # tuned (rl-zoo): about -150 in 20k steps
    rlrun algo=ddpg env=Pendulum-v1
    rlrun algo=td3 algo.exploration_noise=0.2 algo.policy_frequency=3

Both learn a deterministic actor mu(s) (tanh, scaled to the action box) and Q critics from
replay, act with Gaussian exploration noise (std `exploration_noise` x half the action
range), and Polyak-average target networks. TD3 adds its three fixes, each a setting here,
so DDPG is the same loop with them off (configs/algo/ddpg.yaml): twin critics and the
minimum of their targets (`n_critics: 2`), target policy smoothing (`policy_noise`, clipped
at `noise_clip`, both in units of half the action range) and delayed actor and target
updates (`policy_frequency`). The critics are one fused `QEnsemble`. On a CPU with relu
MLPs, `algo.fast_path` (auto) runs the same two steps with their backward written out
(rlrun/fast/td3_cpu.py; tests/test_fast_paths.py holds the two equal).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rlrun.fast import td3_cpu
from rlrun.nets import build_network
from rlrun.nets.actor_critic import QEnsemble
from rlrun.rl.buffers import ReplayBuffer
from rlrun.rl.evaluation import Evaluator
from rlrun.rl.training import (
    SPSMeter,
    adam,
    log_episodes,
    maybe_compile,
    step_into_replay,
    train_due,
)
from rlrun.rl.vec_env import training_envs
from rlrun.schemas.deep_rl import TD3Config


class DeterministicActor(nn.Module):
    """mu(s) = tanh(body(s)) scaled to the action box."""

    def __init__(self, body: nn.Module, low: torch.Tensor, high: torch.Tensor):
        super().__init__()
        self.body = body
        self.register_buffer("scale", ((high - low) / 2).float())
        self.register_buffer("bias", ((high + low) / 2).float())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(obs)) * self.scale + self.bias


def smoothed_target_action(actor_target: nn.Module, next_obs: torch.Tensor,
                           policy_noise: float, noise_clip: float) -> torch.Tensor:
    """mu'(s') + clip(N(0, policy_noise), -noise_clip, noise_clip), both x half range,
    clipped to the action box (TD3's target policy smoothing; no noise when 0)."""
    a = actor_target(next_obs)
    if policy_noise > 0:
        scale = actor_target.scale
        noise = (torch.randn_like(a) * policy_noise).clamp(-noise_clip, noise_clip) * scale
        low, high = actor_target.bias - scale, actor_target.bias + scale
        a = torch.max(torch.min(a + noise, high), low)
    return a


def critic_loss(nets: dict, b: dict, gamma: float, policy_noise: float,
                noise_clip: float) -> dict[str, torch.Tensor]:
    """Each critic's MSE to r + gamma (1 - terminated) min_i Q'_i(s', a~), summed."""
    with torch.no_grad():
        next_a = smoothed_target_action(nets["actor_target"], b["next_obs"], policy_noise,
                                        noise_clip)
        next_q = nets["qf_target"](b["next_obs"], next_a).min(0).values
        target = b["rewards"] + gamma * (1 - b["terminated"]) * next_q
    q = nets["qf"](b["obs"], b["actions"])
    per_q = (q - target).pow(2).mean(-1)
    out = {f"qf{i + 1}": per_q[i] for i in range(len(per_q))}
    return {**out, "critic": per_q.sum(), "q_values": q.detach().mean()}


def first_critic(qf: QEnsemble, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Q_1(s, a) alone: the first member's slice of the fused critics' weights (running all
    of them, as the actor step would with `qf(obs, act)[0]`, doubles its cost for TD3)."""
    net = qf.net
    if not net.fused:
        return qf(obs, act)[0]
    x = torch.cat([obs, act], -1)
    for w, b, act_fn in net.layers():
        x = torch.nn.functional.linear(x, w[0], b[0, 0])
        if act_fn is not None:
            x = act_fn(x)
    return x[..., 0]


def actor_loss(nets: dict, obs: torch.Tensor) -> dict[str, torch.Tensor]:
    """-Q_1(s, mu(s)): the first critic judges the actor (as in TD3's paper)."""
    return {"actor": -first_critic(nets["qf"], obs, nets["actor"](obs)).mean()}


def build(net_cfg: Any, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray,
          n_critics: int, device: str) -> dict[str, nn.Module]:
    t = dict(dtype=torch.float32)
    nets = {"actor": DeterministicActor(build_network(net_cfg, in_dim=obs_dim, out_dim=act_dim),
                                        torch.tensor(low, **t), torch.tensor(high, **t)),
            "qf": QEnsemble([build_network(net_cfg, in_dim=obs_dim + act_dim, out_dim=1)
                             for _ in range(n_critics)])}
    for name in ("actor", "qf"):
        nets[name + "_target"] = copy.deepcopy(nets[name]).requires_grad_(False)
    return {k: v.to(device) for k, v in nets.items()}


def actor_policy(actor: nn.Module, dev: Any) -> Callable[[np.ndarray], np.ndarray]:
    """mu(s) from and to numpy: the deterministic policy that evaluation plays."""
    def policy(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actor(torch.as_tensor(o, device=dev, dtype=torch.float32)).cpu().numpy()

    return policy


def load_policy(ctx: Any, env: Any, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    """rlrun-eval's hook: mu(s); deterministic=false adds training's exploration noise."""
    space = env.action_space
    nets = build(ctx.network, int(np.prod(env.observation_space.shape)), int(space.shape[0]),
                 space.low, space.high, ctx.algo.n_critics, ctx.device)
    ctx.track(nets=nets)  # the loop's name
    ctx.resume()
    mu = actor_policy(nets["actor"], torch.device(ctx.device))
    if deterministic:
        return mu
    rng, sd = ctx.rng("eval_noise"), ctx.algo.exploration_noise  # follows seed=
    half_range = (space.high - space.low) / 2
    return lambda o: np.clip(mu(o) + rng.normal(0.0, sd, (len(o), len(half_range))) * half_range,
                             space.low, space.high).astype(np.float32)


def run(ctx) -> None:
    cfg, dev = ctx.algo, torch.device(ctx.device)
    envs = training_envs(ctx)
    n_envs = envs.num_envs
    space = envs.single_action_space
    obs_dim, act_dim = int(np.prod(envs.single_observation_space.shape)), int(space.shape[0])
    nets = build(ctx.network, obs_dim, act_dim, space.low, space.high, cfg.n_critics,
                 ctx.device)
    # algo.fast_path: the same update in fewer torch calls on a CPU (rlrun/fast/td3_cpu.py)
    fast = td3_cpu.select(cfg, nets, ctx.device)
    q_opt = adam(fast.q_params if fast else nets["qf"].parameters(), cfg.learning_rate,
                 ctx.device)
    pi_opt = adam(fast.pi_params if fast else nets["actor"].parameters(), cfg.learning_rate,
                  ctx.device)
    rb = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps), (obs_dim,), (act_dim,), dev,
                      seed=ctx.seed_of("buffer"))
    rng = ctx.rng("actions")
    c_loss = maybe_compile(critic_loss, cfg.compile, ctx.device)
    a_loss = maybe_compile(actor_loss, cfg.compile, ctx.device)
    evaluator = Evaluator.of_run(ctx, cfg.eval_episodes, load_policy)
    target_params = [p for k in ("actor", "qf") for p in nets[k + "_target"].parameters()]
    source_params = [p for k in ("actor", "qf") for p in nets[k].parameters()]
    half_range = (space.high - space.low) / 2
    st = {"updates": 0}

    ctx.track(nets=nets, q_opt=q_opt, pi_opt=pi_opt, rng=rng, counters=st)
    ctx.track_per_rank(envs=envs, rb=rb)
    obs = ctx.resume().obs

    policy = actor_policy(nets["actor"], dev)
    log, last_return, losses = ctx.logger, None, {}
    sps = SPSMeter(ctx.step)
    ctx.start_progress(cfg.total_steps)
    while ctx.step < cfg.total_steps:
        if ctx.step < cfg.learning_starts:
            actions = rng.uniform(space.low, space.high, (n_envs, act_dim)).astype(np.float32)
        else:
            noise = rng.normal(0.0, cfg.exploration_noise, (n_envs, act_dim)) * half_range
            actions = np.clip(policy(obs) + noise, space.low, space.high).astype(np.float32)
        obs, infos = step_into_replay(envs, rb, obs, actions)
        step = ctx.step + n_envs
        last_return = log_episodes(log, infos, step, last_return)

        if train_due(cfg, step, n_envs):
            for _ in range(cfg.gradient_steps):
                losses.update(_update(nets, rb, cfg, q_opt, pi_opt, c_loss, a_loss,
                                      st["updates"], target_params, source_params, fast))
                st["updates"] += 1
        if ctx.every("log", cfg.log_every, step) or step >= cfg.total_steps:
            log.scalar("charts/SPS", sps.read(step), step)
            if losses:  # the only host syncs of the loop
                log.scalars({f"losses/{k}": float(v) for k, v in losses.items()
                             if k != "critic"}, step)
        if ctx.every("eval", cfg.eval_every, step) or step >= cfg.total_steps:
            evaluator.run(policy, log, step)
        if ctx.tick(step, last_return):
            break
    ctx.finish(close=(evaluator, envs))


def _update(nets, rb, cfg: TD3Config, q_opt, pi_opt, c_loss, a_loss, n_updates, target_params,
            source_params, fast=None) -> dict[str, torch.Tensor]:
    """One critic step; every `policy_frequency` of them an actor step and the Polyak
    update of all targets (TD3's delayed updates; DDPG: every step). `fast`
    (td3_cpu.FastTD3): the same steps with their backward written out."""
    b = rb.sample(cfg.batch_size)
    if fast is not None:
        out = fast.critic_step(b, cfg.gamma, cfg.policy_noise, cfg.noise_clip, q_opt)
        if n_updates % cfg.policy_frequency == 0:
            out.update(fast.actor_step(b["obs"], pi_opt))
            fast.polyak(cfg.tau)
        return out
    out = c_loss(nets, b, cfg.gamma, cfg.policy_noise, cfg.noise_clip)
    q_opt.zero_grad(set_to_none=True)
    out["critic"].backward()
    q_opt.step()
    if n_updates % cfg.policy_frequency == 0:
        nets["qf"].requires_grad_(False)  # the actor's loss needs no critic gradients
        a_out = a_loss(nets, b["obs"])
        pi_opt.zero_grad(set_to_none=True)
        a_out["actor"].backward()
        pi_opt.step()
        nets["qf"].requires_grad_(True)
        out.update(a_out)
        with torch.no_grad():
            torch._foreach_lerp_(target_params, source_params, cfg.tau)
    return {k: v.detach() for k, v in out.items()}
