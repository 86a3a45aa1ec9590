"""Synchronous advantage actor-critic (A2C, the synchronous A3C of Mnih et al. 2016).

    rlrun algo=a2c env=CartPole-v1                  # tuned: 8 envs x 5 steps, RMSprop
    rlrun algo=a2c algo.gae_lambda=0.95             # GAE instead of n-step returns
    rlrun algo=a2c algo.shared=true                 # one torso for policy and value
    rlrun algo=a2c env=Pendulum-v1                  # Gaussian policy for Box actions

Each update: `num_steps` steps of `env.num_envs` envs; advantages by GAE(lambda), which
with `gae_lambda: 1` (the default) is the n-step return minus V(s), bootstrapped from V of
the state after the rollout; one gradient step on -A log pi + vf_coef (R - V)^2
- ent_coef H(pi) over the whole rollout, gradient norm clipped, RMSprop as in the paper
(and SB3). Time-limit truncations are bootstrapped (r + gamma V(final_obs)) as in PPO.
`shared: false` gives policy and value separate MLPs (run fused, as one EnsembleMLP);
`shared: true` one MLP with a policy-and-value output layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rlrun.envs.gym import space_kind
from rlrun.nets import build_network
from rlrun.nets.actor_critic import ActorCritic, layer_init
from rlrun.rl.evaluation import Evaluator
from rlrun.rl.rollout import agent_policy, bootstrap_truncated, build_agent, gae
from rlrun.rl.training import SPSMeter, adam, log_episodes, maybe_compile, whole_rollouts
from rlrun.rl.vec_env import training_envs
from rlrun.schemas.deep_rl import A2CConfig


class SharedActorCritic(ActorCritic):
    """One network whose last layer gives the policy output and the value side by side."""

    def __init__(self, net: nn.Module, continuous: bool, act_dim: int,
                 log_std_init: float = 0.0):
        nn.Module.__init__(self)
        self.net, self.continuous, self.act_dim = net, continuous, act_dim
        if continuous:
            self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.net(obs)
        return y[..., :self.act_dim], y[..., self.act_dim]


def make_agent(net_cfg: Any, obs_dim: int, act_dim: int, continuous: bool,
               cfg: A2CConfig) -> ActorCritic:
    if not cfg.shared:
        return build_agent(net_cfg, obs_dim, act_dim, continuous, cfg.log_std_init)
    net = layer_init(build_network(net_cfg, in_dim=obs_dim, out_dim=act_dim + 1), out_gain=1.0)
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():  # the policy rows start small (gain 0.01), the value row at 1
        last.weight[:act_dim] *= 0.01
    return SharedActorCritic(net, continuous, act_dim, cfg.log_std_init)


def a2c_loss(agent: ActorCritic, b: dict[str, torch.Tensor], ent_coef: float,
             vf_coef: float, norm_adv: bool) -> dict[str, torch.Tensor]:
    """-mean(A log pi(a|s)) + vf_coef mean((R - V(s))^2) - ent_coef mean(H) (SB3's A2C)."""
    logp, entropy, value = agent.evaluate(b["obs"], b["actions"])
    adv = b["adv"]
    if norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy = -(adv * logp).mean()
    v_loss = (b["returns"] - value).pow(2).mean()
    ent = entropy.mean()
    return {"loss": policy + vf_coef * v_loss - ent_coef * ent, "policy": policy,
            "value": v_loss, "entropy": ent}


def run(ctx) -> None:
    cfg, dev = ctx.algo, torch.device(ctx.device)
    envs = training_envs(ctx)
    n_envs = envs.num_envs
    space = envs.single_action_space
    continuous = space_kind(space) == "continuous"
    obs_shape = envs.single_observation_space.shape
    act_shape = space.shape if continuous else ()
    act_dim = int(space.shape[0]) if continuous else int(space.n)
    agent = make_agent(ctx.network, int(np.prod(obs_shape)), act_dim, continuous, cfg).to(dev)
    if cfg.optimizer == "rmsprop":
        opt: Any = torch.optim.RMSprop(agent.parameters(), lr=cfg.learning_rate, alpha=0.99,
                                       eps=cfg.rms_eps, foreach=True)
    else:
        opt = adam(agent.parameters(), cfg.learning_rate, ctx.device, eps=cfg.rms_eps)
    loss_fn = maybe_compile(a2c_loss, cfg.compile, ctx.device)
    evaluator = Evaluator.of_run(ctx, cfg.eval_episodes, load_policy)
    T, batch = cfg.num_steps, cfg.num_steps * n_envs
    n_iters = whole_rollouts(ctx, cfg.total_steps, T, n_envs)  # never past the budget
    f32 = dict(dtype=torch.float32, device=dev)
    # the rollout stays on the host (numpy; actions and values as the tensors act() returns)
    # and goes to the device once per update: a few tiny ops per env step fewer
    obs_buf = np.zeros((T, n_envs, *obs_shape), np.float32)
    rewards, dones = np.zeros((T, n_envs), np.float32), np.zeros((T, n_envs), np.float32)
    low, high = (space.low, space.high) if continuous else (None, None)
    params = list(agent.parameters())

    ctx.track(agent=agent, opt=opt)
    ctx.track_per_rank(envs=envs)
    obs = ctx.resume().obs

    def value_of(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return agent.value(torch.as_tensor(o, **f32)).cpu().numpy()

    policy = agent_policy(agent, space)  # the mode, clipped to the box
    log, last_return, sps = ctx.logger, None, SPSMeter(ctx.step)
    end = n_iters * batch
    ctx.start_progress(end)
    while ctx.step < end:
        lr = cfg.learning_rate * (1.0 - ctx.step // batch / n_iters) if cfg.anneal_lr \
            else cfg.learning_rate
        opt.param_groups[0]["lr"] = lr
        step = ctx.step
        actions, values = [], []
        for t in range(T):  # ---- rollout
            obs_buf[t] = obs
            with torch.no_grad():
                action, _, value = agent.act(torch.as_tensor(obs, **f32))
            actions.append(action)
            values.append(value)
            a = action.cpu().numpy()
            obs, reward, term, trunc, infos = envs.step(np.clip(a, low, high)
                                                        if continuous else a)
            rewards[t] = reward
            bootstrap_truncated(rewards[t], term, trunc, infos, value_of, cfg.gamma)
            dones[t] = term | trunc
            step += n_envs
            last_return = log_episodes(log, infos, step, last_return)
        # GAE in numpy: a T-step recursion over rows of n_envs is several times faster there
        adv, returns = gae(rewards, torch.stack(values).cpu().numpy(), dones, value_of(obs),
                           cfg.gamma, cfg.gae_lambda)
        flat = {"obs": torch.as_tensor(obs_buf.reshape(batch, *obs_shape), device=dev),
                "actions": torch.stack(actions).reshape(batch, *act_shape).float(),
                "adv": torch.as_tensor(adv.reshape(-1), device=dev),
                "returns": torch.as_tensor(returns.reshape(-1), device=dev)}
        out = loss_fn(agent, flat, cfg.ent_coef, cfg.vf_coef, cfg.normalize_advantage)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
        opt.step()
        if ctx.every("log", cfg.log_every, step) or step >= end:  # the only host syncs
            log.scalars({f"losses/{k}": float(out[k].detach())
                         for k in ("policy", "value", "entropy")}, step)
            log.scalars({"charts/learning_rate": lr, "charts/SPS": sps.read(step)}, step)
        if ctx.every("eval", cfg.eval_every, step) or step >= end:
            evaluator.run(policy, log, step)
        if ctx.tick(step, last_return):
            break
    ctx.finish(close=(evaluator, envs))


def load_policy(ctx: Any, env: Any, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    """rlrun-eval's hook: the saved agent's mode (or samples from it)."""
    space = env.action_space
    continuous = space_kind(space) == "continuous"
    act_dim = int(space.shape[0]) if continuous else int(space.n)
    agent = make_agent(ctx.network, int(np.prod(env.observation_space.shape)), act_dim,
                       continuous, ctx.algo).to(ctx.device)
    ctx.track(agent=agent)  # the loop's name
    ctx.resume()
    return agent_policy(agent, space, deterministic)
