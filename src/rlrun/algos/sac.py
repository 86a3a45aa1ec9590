"""Soft Actor-Critic (Haarnoja et al. 2018), continuous actions, CleanRL-style in one file.

    rlrun algo=sac env=Pendulum-v1                  # tuned: eval return ~ -150 in 20k steps
    rlrun algo=sac algo.variant=v1                  # the first paper: soft V network + target
    rlrun algo=sac algo.alpha=0.2 algo.autotune=false

variant=v2 (the default; "SAC: algorithms and applications"): twin Q critics with Polyak-
averaged targets, the clipped double-Q target r + g (min Q'(s', a') - alpha log pi(a'|s')),
and the entropy coefficient tuned toward `target_entropy` (-|A| by default).
variant=v1 (the ICML 2018 paper): a state-value network V(s) with a Polyak target; Q learns
r + g V'(s'), V learns min Q(s, a) - alpha log pi(a|s) with a ~ pi. Both share the
tanh-squashed Gaussian actor, trained to minimise alpha log pi(a|s) - min Q(s, a).

Speed on a CPU comes from: the twin critics as one batched network (`QEnsemble`), fused
Adam, Polyak averaging with one `_foreach_lerp_`, the critics frozen during the actor step,
the replay buffer on the device, and no `.item()` host syncs except when logging; and
`algo.fast_path` (auto: on for v2 on a CPU with relu MLPs), which runs the same two steps
with their backward written out (rlrun/fast/sac_cpu.py; the plain code below is what GPUs,
v1 and `algo.compile=true` run, and tests/test_fast_paths.py holds the two equal).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlrun.fast import sac_cpu
from rlrun.nets import build_network
from rlrun.nets.actor_critic import QEnsemble, SquashedGaussianActor
from rlrun.rl.buffers import ReplayBuffer
from rlrun.rl.evaluation import Evaluator
from rlrun.rl.training import (
    SPSMeter,
    adam,
    log_episodes,
    maybe_compile,
    ndtr,
    step_into_replay,
    train_due,
)
from rlrun.rl.vec_env import training_envs
from rlrun.schemas.deep_rl import SACConfig

LOGGED = ("qf1", "qf2", "actor", "alpha", "value", "q_values")


def build(net_cfg: Any, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray,
          cfg: SACConfig, device: str) -> dict[str, torch.nn.Module]:
    """The actor, twin critics and targets (v1: also V and its target) on `device`."""
    def body(i: int, o: int) -> torch.nn.Module:
        return build_network(net_cfg, in_dim=i, out_dim=o)

    t = dict(dtype=torch.float32)
    nets = {"actor": SquashedGaussianActor(body(obs_dim, 2 * act_dim), torch.tensor(low, **t),
                                           torch.tensor(high, **t), cfg.log_std_min,
                                           cfg.log_std_max),
            "qf": QEnsemble([body(obs_dim + act_dim, 1) for _ in range(2)])}
    if cfg.variant == "v1":
        nets["vf"] = QEnsemble([body(obs_dim, 1)])
    for name in list(nets):
        if name != "actor":
            nets[name + "_target"] = copy.deepcopy(nets[name]).requires_grad_(False)
    return {k: v.to(device) for k, v in nets.items()}


def critic_loss(nets: dict, b: dict, log_alpha: torch.Tensor, gamma: float,
                v1: bool) -> dict[str, torch.Tensor]:
    """Per-critic MSE to the soft Bellman target; v1 adds the V loss."""
    alpha = log_alpha.exp().detach()
    out = {}
    with torch.no_grad():
        if v1:
            next_v = nets["vf_target"](b["next_obs"])[0]
        else:
            next_a, next_logp, _ = nets["actor"](b["next_obs"])
            next_v = nets["qf_target"](b["next_obs"], next_a).min(0).values - alpha * next_logp
        target = b["rewards"] + gamma * (1 - b["terminated"]) * next_v
    q = nets["qf"](b["obs"], b["actions"])
    per_q = (q - target).pow(2).mean(-1)
    out["qf1"], out["qf2"], out["q_values"] = per_q[0], per_q[1], q.detach().mean()
    out["critic"] = per_q.sum()
    if v1:
        with torch.no_grad():
            a, logp, _ = nets["actor"](b["obs"])
            v_target = nets["qf"](b["obs"], a).min(0).values - alpha * logp
        out["value"] = (nets["vf"](b["obs"])[0] - v_target).pow(2).mean()
        out["critic"] = out["critic"] + out["value"]
    return out


def actor_loss(nets: dict, obs: torch.Tensor, log_alpha: torch.Tensor,
               target_entropy: float) -> dict[str, torch.Tensor]:
    alpha = log_alpha.exp()
    a, logp, _ = nets["actor"](obs)
    q = nets["qf"](obs, a).min(0).values
    return {"actor": (alpha.detach() * logp - q).mean(),
            "alpha": -(alpha * (logp.detach() + target_entropy)).mean(),
            "entropy": -logp.detach().mean()}


def run(ctx) -> None:
    cfg, dev = ctx.algo, torch.device(ctx.device)
    envs = training_envs(ctx)
    n_envs = envs.num_envs
    space = envs.single_action_space
    obs_dim, act_dim = int(np.prod(envs.single_observation_space.shape)), int(space.shape[0])
    nets = build(ctx.network, obs_dim, act_dim, space.low, space.high, cfg, ctx.device)
    v1 = cfg.variant == "v1"
    critics = ("qf", "vf") if v1 else ("qf",)
    # algo.fast_path: the same update in fewer torch calls on a CPU (rlrun/fast/sac_cpu.py)
    fast = sac_cpu.select(cfg, nets, ctx.device)
    q_opt = adam(fast.q_params if fast else [p for c in critics for p in nets[c].parameters()],
                 cfg.q_lr, ctx.device)
    if v1 and cfg.value_lr != cfg.q_lr:
        q_opt.param_groups[0]["params"] = list(nets["qf"].parameters())
        q_opt.add_param_group({"params": list(nets["vf"].parameters()), "lr": cfg.value_lr})
    log_alpha = torch.tensor(np.log(cfg.alpha), dtype=torch.float32, device=dev,
                             requires_grad=cfg.autotune)
    pi_opt = adam(fast.pi_params if fast else nets["actor"].parameters(), cfg.policy_lr,
                  ctx.device)
    if cfg.autotune:  # alpha learns at the critics' rate, as in CleanRL
        pi_opt.add_param_group({"params": [log_alpha], "lr": cfg.q_lr})
    target_entropy = float(-act_dim if cfg.target_entropy is None else cfg.target_entropy)
    rb = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps), (obs_dim,), (act_dim,), dev,
                      seed=ctx.seed_of("buffer"))
    rng = ctx.rng("actions")
    c_loss = maybe_compile(critic_loss, cfg.compile, ctx.device)
    a_loss = maybe_compile(actor_loss, cfg.compile, ctx.device)
    evaluator = Evaluator.of_run(ctx, cfg.eval_episodes, load_policy)
    targets = [(nets[c + "_target"], nets[c]) for c in critics]
    target_params = [p for t, _ in targets for p in t.parameters()]
    source_params = [p for _, s in targets for p in s.parameters()]
    noise = np.zeros((n_envs, act_dim))  # the correlated draw when noise_rho > 0
    rho, rho_c = cfg.noise_rho, float(np.sqrt(1 - cfg.noise_rho ** 2))
    st = {"updates": 0}

    ctx.track(nets=nets, q_opt=q_opt, pi_opt=pi_opt, log_alpha=log_alpha, rng=rng,
              noise=noise, counters=st)
    ctx.track_per_rank(envs=envs, rb=rb)
    obs = ctx.resume().obs

    policy = actor_policy(nets["actor"], dev)
    log, last_return, losses = ctx.logger, None, None
    sps = SPSMeter(ctx.step)
    ctx.start_progress(cfg.total_steps)
    while ctx.step < cfg.total_steps:
        if rho:
            noise[:] = rho * noise + rho_c * rng.standard_normal(noise.shape)
        if ctx.step < cfg.learning_starts:
            actions = (space.low + (space.high - space.low) * ndtr(noise) if rho else
                       rng.uniform(space.low, space.high, (n_envs, act_dim))).astype(np.float32)
        else:
            eps = torch.as_tensor(noise, device=dev, dtype=torch.float32) if rho else None
            with torch.no_grad():
                a = nets["actor"](torch.as_tensor(obs, device=dev, dtype=torch.float32),
                                  eps)[0]
            actions = a.cpu().numpy()
        obs, infos = step_into_replay(envs, rb, obs, actions)
        step = ctx.step + n_envs
        last_return = log_episodes(log, infos, step, last_return)

        if train_due(cfg, step, n_envs):
            for _ in range(cfg.gradient_steps):
                losses = _update(nets, rb, cfg, q_opt, pi_opt, log_alpha,
                                 target_entropy, c_loss, a_loss, st["updates"],
                                 target_params, source_params, fast)
                st["updates"] += 1
        if ctx.every("log", cfg.log_every, step) or step >= cfg.total_steps:
            log.scalar("charts/SPS", sps.read(step), step)
            if losses is not None:  # the only host syncs of the loop
                log.scalars({f"losses/{k}": float(v) for k, v in losses.items()
                             if k in LOGGED and (k != "alpha" or cfg.autotune)}, step)
                log.scalar("charts/alpha", float(log_alpha.detach().exp()), step)
                if "entropy" in losses:
                    log.scalar("charts/entropy", float(losses["entropy"]), step)
        if ctx.every("eval", cfg.eval_every, step) or step >= cfg.total_steps:
            evaluator.run(policy, log, step)
        if ctx.tick(step, last_return):
            break
    ctx.finish(close=(evaluator, envs))


def actor_policy(actor: torch.nn.Module, dev: Any, deterministic: bool = True
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """The actor's mean action, squashed to the box (or a sample): how SAC is evaluated."""
    def policy(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = actor(torch.as_tensor(o, device=dev, dtype=torch.float32))
        return out[2 if deterministic else 0].cpu().numpy()

    return policy


def load_policy(ctx: Any, env: Any, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    """rlrun-eval's hook: the saved actor (all nets are built: `nets` holds them all)."""
    space = env.action_space
    nets = build(ctx.network, int(np.prod(env.observation_space.shape)), int(space.shape[0]),
                 space.low, space.high, ctx.algo, ctx.device)
    ctx.track(nets=nets)  # the loop's name
    ctx.resume()
    return actor_policy(nets["actor"], torch.device(ctx.device), deterministic)


def _update(nets, rb, cfg: SACConfig, q_opt, pi_opt, log_alpha, target_entropy, c_loss, a_loss,
            n_updates, target_params, source_params, fast=None) -> dict[str, torch.Tensor]:
    """One critic step; every `policy_frequency` updates, that many actor (and alpha) steps
    (CleanRL's delayed-but-compensated schedule); Polyak-averaged targets. `fast`
    (sac_cpu.FastSAC): the same two steps with their backward written out."""
    b = rb.sample(cfg.batch_size)
    if fast is not None:
        out = fast.critic_step(b, log_alpha, cfg.gamma, q_opt)
    else:
        out = c_loss(nets, b, log_alpha, cfg.gamma, cfg.variant == "v1")
        q_opt.zero_grad(set_to_none=True)
        out["critic"].backward()
        q_opt.step()
    if n_updates % cfg.policy_frequency == 0:
        nets["qf"].requires_grad_(False)  # the actor's loss needs no critic gradients
        for _ in range(cfg.policy_frequency):
            if fast is not None:
                a_out = fast.actor_step(b["obs"], log_alpha, target_entropy, cfg.autotune,
                                        pi_opt)
                continue
            a_out = a_loss(nets, b["obs"], log_alpha, target_entropy)
            # actor and alpha (when tuned) have disjoint parameters and share one optimiser
            # (two param groups): one backward and one fused step for both
            pi_opt.zero_grad(set_to_none=True)
            (a_out["actor"] + a_out["alpha"] if cfg.autotune else a_out["actor"]).backward()
            pi_opt.step()
        nets["qf"].requires_grad_(True)
        out.update(a_out)
    if n_updates % cfg.target_network_frequency == 0:
        with torch.no_grad():
            torch._foreach_lerp_(target_params, source_params, cfg.tau)
    return {k: v.detach() for k, v in out.items()}
