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
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from rlrun.core.errors import ConfigError
from rlrun.envs.gym import make_vector_env, space_kind
from rlrun.nets import build_network
from rlrun.nets.actor_critic import ActorCritic, layer_init
from rlrun.rl.evaluation import Evaluator
from rlrun.rl.rollout import agent_policy, bootstrap_truncated, build_agent, gae
from rlrun.rl.schema import GymAlgorithm
from rlrun.rl.training import SPSMeter, adam, log_episodes, maybe_compile
from rlrun.rl.vec_env import VecEnvState


@dataclass
class A2CConfig(GymAlgorithm):
    action_spaces: ClassVar[tuple[str, ...]] = ("discrete", "continuous")
    default_num_envs: ClassVar[int] = 8  # when env.num_envs is null

    total_steps: int = 500_000  # env steps, all envs together
    num_steps: int = 5  # steps per env per update (the n of n-step returns)
    learning_rate: float = 7e-4
    anneal_lr: bool = False  # linearly to 0 over the run
    optimizer: str = "rmsprop"  # rmsprop (alpha 0.99, as the paper and SB3) or adam
    rms_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 1.0  # 1: n-step returns; < 1: GAE
    normalize_advantage: bool = False
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    shared: bool = False  # one torso for policy and value (else two networks)
    log_std_init: float = 0.0  # Box actions: the policy's initial log standard deviation
    eval_every: int = 20_000  # env steps between deterministic evaluations (0: end only)
    eval_episodes: int = 10
    log_every: int = 1_000  # env steps between loss logs (each one a host sync)
    compile: bool = False  # torch.compile the loss (CUDA graphs on GPU)

    def __post_init__(self) -> None:
        for key in ("total_steps", "num_steps", "eval_episodes", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be >= 1")
        for key in ("learning_rate", "max_grad_norm", "rms_eps"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be > 0")
        if self.optimizer not in ("rmsprop", "adam"):
            raise ConfigError(f"optimizer={self.optimizer!r}: use rmsprop or adam")
        if not (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            raise ConfigError("gamma and gae_lambda must be in [0, 1]")
        if self.eval_every < 0 or self.ent_coef < 0 or self.vf_coef < 0:
            raise ConfigError("eval_every, ent_coef and vf_coef must be >= 0")


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
    n_envs = ctx.env.num_envs or A2CConfig.default_num_envs
    envs = make_vector_env(ctx.env, n_envs, ctx.seed)
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
    n_iters = max(1, cfg.total_steps // batch)  # never past the budget
    f32 = dict(dtype=torch.float32, device=dev)
    buf = {"obs": torch.zeros((T, n_envs, *obs_shape), **f32),
           "actions": torch.zeros((T, n_envs, *act_shape), **f32),
           "rewards": torch.zeros((T, n_envs), **f32),
           "dones": torch.zeros((T, n_envs), **f32), "values": torch.zeros((T, n_envs), **f32)}
    low, high = (space.low, space.high) if continuous else (None, None)
    params = list(agent.parameters())

    obs, _ = envs.reset(seed=ctx.seed)
    st = {"iteration": 0, "step": 0, "next_eval": cfg.eval_every or cfg.total_steps,
          "next_log": 0}

    vec = VecEnvState(envs, lambda: obs)
    ctx.track(agent=agent, opt=opt, envs=vec, counters=st)
    if ctx.resume():
        obs = vec.observation(obs)

    def value_of(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return agent.value(torch.as_tensor(o, **f32)).cpu().numpy()

    policy = agent_policy(agent, space)  # the mode, clipped to the box

    log, last_return, sps = ctx.logger, None, SPSMeter(st["step"])
    ctx.start_progress(n_iters * batch, st["step"])
    while st["iteration"] < n_iters:
        lr = cfg.learning_rate * (1.0 - st["iteration"] / n_iters) if cfg.anneal_lr \
            else cfg.learning_rate
        opt.param_groups[0]["lr"] = lr
        for t in range(T):  # ---- rollout
            obs_t = torch.as_tensor(obs, **f32)
            with torch.no_grad():
                action, _, buf["values"][t] = agent.act(obs_t)
            buf["obs"][t], buf["actions"][t] = obs_t, action
            a = action.cpu().numpy()
            obs, reward, term, trunc, infos = envs.step(np.clip(a, low, high)
                                                        if continuous else a)
            reward = reward.astype(np.float32)
            bootstrap_truncated(reward, term, trunc, infos, value_of, cfg.gamma)
            buf["rewards"][t] = torch.as_tensor(reward, device=dev)
            buf["dones"][t] = torch.as_tensor(term | trunc, **f32)
            st["step"] += n_envs
            ret = log_episodes(log, infos, st["step"])
            last_return = ret if ret is not None else last_return
        with torch.no_grad():
            next_value = agent.value(torch.as_tensor(obs, **f32))
        adv, returns = gae(buf["rewards"], buf["values"], buf["dones"], next_value,
                           cfg.gamma, cfg.gae_lambda)
        flat = {k: v.reshape(batch, *v.shape[2:]) for k, v in buf.items()}
        flat.update(adv=adv.reshape(-1), returns=returns.reshape(-1))
        out = loss_fn(agent, flat, cfg.ent_coef, cfg.vf_coef, cfg.normalize_advantage)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
        opt.step()
        st["iteration"] += 1
        step = st["step"]
        if step >= st["next_log"]:  # the only host syncs of the loop
            st["next_log"] = step + cfg.log_every
            log.scalars({f"losses/{k}": float(out[k].detach())
                         for k in ("policy", "value", "entropy")}, step)
            log.scalars({"charts/learning_rate": lr, "charts/SPS": sps.read(step)}, step)
        if step >= st["next_eval"] or st["iteration"] == n_iters:
            evaluator.run(policy, log, step)
            st["next_eval"] += cfg.eval_every or cfg.total_steps
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
