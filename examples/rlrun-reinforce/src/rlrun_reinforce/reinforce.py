"""REINFORCE with a learned baseline (Williams 1992), the simplest policy gradient.

    rlrun algo=reinforce env=CartPole-v1            # tuned: configs/tuned/reinforce/
    rlrun algo=reinforce env=corridor               # this package's own env
    rlrun algo=reinforce algo.baseline=false        # plain REINFORCE, no baseline

Each update plays one whole episode in each of `env.num_envs` envs (reset from seeds drawn
by the run's own generator), then takes one gradient step on

    -mean_t (G_t - b(s_t)) log pi(a_t|s_t)  -  ent_coef H(pi(.|s_t))

where G_t = sum_k gamma^k r_{t+k} is the Monte Carlo return to the end of the episode and
b(s) a value network fitted to G_t by squared error (its own Adam parameter group, so the
two losses can be summed). Episodes cut by a time limit end there too: REINFORCE has
nothing to bootstrap from. Envs that finish early wait (masked) for the longest episode.

Written against rlrun's loop contract (rlrun.core.run): `ctx.rng(name)` a named random
stream of the run's seed, `ctx.track(...)` names what a checkpoint holds, `ctx.resume()`
loads it back (with `ctx.step`, the one step counter), `ctx.every(...)` the evaluation
cadence, `ctx.tick(...)` once per update, and `ctx.finish(...)` at the end. Updates start
from fresh resets, so a checkpoint between two updates holds no env state at all and a
resume is exact. `load_policy` is the hook
through which `rlrun-eval RUN_DIR` replays a finished run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from rlrun.envs.gym import make_vector_env
from rlrun.nets import build_network
from rlrun.rl.evaluation import Evaluator
from rlrun_reinforce.schema import ReinforceConfig


def returns_to_go(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + gamma G_{t+1} along dim 0 (rewards after an episode's end are zero)."""
    out = torch.zeros_like(rewards)
    g = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def act(policy: nn.Module, dev: torch.device, deterministic: bool = True
        ) -> Callable[[np.ndarray], np.ndarray]:
    """The most likely action (or a sample) for a batch of observations, numpy in and out."""
    def fn(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = policy(torch.as_tensor(obs, dtype=torch.float32, device=dev))
        if deterministic:
            return logits.argmax(-1).cpu().numpy()
        return torch.distributions.Categorical(logits=logits).sample().cpu().numpy()

    return fn


def load_policy(ctx, env, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    """`rlrun-eval RUN_DIR`'s hook (docs/eval.md): build the policy network as `run` does,
    track it under the loop's name, load it from the checkpoint, return how it acts."""
    obs_dim = int(np.prod(env.observation_space.shape))
    policy = build_network(ctx.network, in_dim=obs_dim, out_dim=int(env.action_space.n))
    ctx.track(policy=policy.to(ctx.device))  # only what acting needs; the name run() uses
    ctx.resume()
    return act(policy, torch.device(ctx.device), deterministic)


def run(ctx) -> None:
    cfg, dev = ctx.algo, torch.device(ctx.device)
    n_envs = ctx.env.num_envs or ReinforceConfig.spec.default_num_envs
    envs = make_vector_env(ctx.env, n_envs, ctx.seed_of("envs"))
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    n_actions = int(envs.single_action_space.n)
    policy = build_network(ctx.network, in_dim=obs_dim, out_dim=n_actions).to(dev)
    value = build_network(ctx.network, in_dim=obs_dim, out_dim=1).to(dev)
    opt = torch.optim.Adam([
        {"params": policy.parameters(), "lr": cfg.learning_rate},
        {"params": value.parameters(), "lr": cfg.baseline_learning_rate},
    ])
    evaluator = Evaluator(ctx.env, ctx.seed, cfg.eval_episodes, ctx.logger_cfg.video)
    rng = ctx.rng("resets")  # the seeds of each update's resets: a named stream of the seed

    ctx.track(policy=policy, value=value, opt=opt, rng=rng)
    ctx.resume()  # on resume=: all of the above, and ctx.step, loaded back

    greedy = act(policy, dev)  # what evaluations play

    log = ctx.logger
    ctx.start_progress(cfg.total_steps)
    while ctx.step < cfg.total_steps:
        # ---- play one whole episode per env with the current stochastic policy
        obs, _ = envs.reset(seed=rng.integers(2**31, size=n_envs).tolist())
        alive = np.ones(n_envs, dtype=bool)
        batch_obs, batch_act, batch_rew, batch_mask = [], [], [], []
        while alive.any():
            o = torch.as_tensor(obs.reshape(n_envs, -1), dtype=torch.float32, device=dev)
            with torch.no_grad():
                action = torch.distributions.Categorical(logits=policy(o)).sample()
            obs, reward, term, trunc, _ = envs.step(action.cpu().numpy())
            batch_obs.append(o)
            batch_act.append(action)
            batch_rew.append(np.where(alive, reward, 0.0))
            batch_mask.append(alive.copy())
            alive &= ~(term | trunc)
        obs_t = torch.stack(batch_obs)  # (T, n_envs, obs_dim)
        act_t = torch.stack(batch_act)
        rew_t = torch.as_tensor(np.stack(batch_rew), dtype=torch.float32, device=dev)
        mask = torch.as_tensor(np.stack(batch_mask), dtype=torch.float32, device=dev)
        n_steps = int(mask.sum().item())

        # ---- one gradient step on the policy gradient and the baseline's regression
        g = returns_to_go(rew_t, cfg.gamma)
        dist = torch.distributions.Categorical(logits=policy(obs_t))
        logp, entropy = dist.log_prob(act_t), dist.entropy()
        v = value(obs_t).squeeze(-1)
        adv = g - v.detach() if cfg.baseline else g
        if cfg.normalize_advantage:
            mean = (adv * mask).sum() / n_steps
            std = (((adv - mean) ** 2 * mask).sum() / max(n_steps - 1, 1)).sqrt()
            adv = (adv - mean) / (std + 1e-8)
        policy_loss = -(adv * logp * mask).sum() / n_steps
        entropy_mean = (entropy * mask).sum() / n_steps
        value_loss = ((g - v) ** 2 * mask).sum() / n_steps if cfg.baseline else 0.0 * v.sum()
        opt.zero_grad(set_to_none=True)
        (policy_loss - cfg.ent_coef * entropy_mean + value_loss).backward()
        if cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            nn.utils.clip_grad_norm_(value.parameters(), cfg.max_grad_norm)
        opt.step()

        # ---- log, evaluate, tick
        step = ctx.step + n_steps
        episode_returns = rew_t.sum(0).cpu().numpy()
        for ret, length in zip(episode_returns, mask.sum(0).cpu().numpy(), strict=True):
            log.scalar("charts/episodic_return", float(ret), step)
            log.scalar("charts/episodic_length", float(length), step)
        log.scalars({"losses/policy": float(policy_loss.detach()),
                     "losses/value": float(value_loss.detach()),
                     "losses/entropy": float(entropy_mean.detach())}, step)
        if ctx.every("eval", cfg.eval_every, step) or step >= cfg.total_steps:
            evaluator.run(greedy, log, step)
        if ctx.tick(step, float(episode_returns.mean())):  # sets ctx.step
            break
    ctx.finish(close=(evaluator, envs))
