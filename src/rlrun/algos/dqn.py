"""Deep Q-Networks (Mnih et al. 2015) and Double DQN (van Hasselt et al. 2016), one file.

    rlrun algo=dqn env=CartPole-v1                  # tuned (rl-zoo): 500 within 50k steps
    rlrun algo=dqn algo.double=true                 # Double DQN target
    rlrun algo=dqn env=ALE/Breakout-v5 network=nature_cnn    # pip install 'rlrun[atari]'

Epsilon-greedy acting with epsilon decayed linearly from `start_e` to `end_e` over the first
`exploration_fraction` of the budget (uniformly random actions before `learning_starts`);
every `train_frequency` env steps, `gradient_steps` minibatch updates of the Huber loss to
r + gamma max_a Q'(s', a) (Double: Q'(s', argmax_a Q(s', a))), gradient norm clipped
before the Adam step (`anneal_lr`: its rate decays linearly to 0, SB3's schedule); the
target network is copied (tau=1) or Polyak-averaged every `target_network_frequency` env
steps. Pixels (ALE ids) go to a `FrameReplayBuffer` that stores each frame once; vectors
to the plain `ReplayBuffer`.

Speed on a CPU: `algo.fast_path` (auto: on for a CPU with a relu or tanh MLP) runs the same
update and greedy action with a fraction of the torch calls (rlrun/fast/dqn_cpu.py); the code
below is the plain path it stands in for, which pixels, GPUs and `algo.compile=true` run and
tests/test_fast_paths.py holds it to.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlrun.core.errors import ConfigError
from rlrun.envs.gym import atari_vector_wrappers, is_atari
from rlrun.fast import dqn_cpu
from rlrun.nets import accepts_observations, build_network
from rlrun.rl.buffers import FrameReplayBuffer, ReplayBuffer
from rlrun.rl.evaluation import Evaluator
from rlrun.rl.training import SPSMeter, adam, log_episodes, maybe_compile, real_next_obs, train_due
from rlrun.rl.vec_env import training_envs
from rlrun.schemas.deep_rl import DQNConfig


def epsilon(step: int, cfg: DQNConfig) -> float:
    """Linear from start_e to end_e over exploration_fraction * total_steps, then flat."""
    frac = min(1.0, step / (cfg.exploration_fraction * cfg.total_steps))
    return cfg.start_e + frac * (cfg.end_e - cfg.start_e)


def td_target(q_net: nn.Module, target_net: nn.Module, next_obs: torch.Tensor,
              rewards: torch.Tensor, terminated: torch.Tensor, gamma: float,
              double: bool) -> torch.Tensor:
    """r + gamma (1 - terminated) Q'(s', a*): a* = argmax Q'(s', .) (DQN) or
    argmax Q(s', .) of the online network (Double DQN)."""
    with torch.no_grad():
        next_q = target_net(next_obs)
        if double:
            best = q_net(next_obs).argmax(-1, keepdim=True)
            next_v = next_q.gather(-1, best).squeeze(-1)
        else:
            next_v = next_q.max(-1).values
        return rewards + gamma * (1.0 - terminated) * next_v


def dqn_loss(q_net: nn.Module, target_net: nn.Module, b: dict[str, torch.Tensor],
             gamma: float, double: bool) -> dict[str, torch.Tensor]:
    """Huber (smooth L1) loss of Q(s, a) to the TD target, and the mean Q value."""
    target = td_target(q_net, target_net, b["next_obs"], b["rewards"], b["terminated"],
                       gamma, double)
    q = q_net(b["obs"]).gather(-1, b["actions"].long().reshape(-1, 1)).squeeze(-1)
    return {"td": F.smooth_l1_loss(q, target), "q_values": q.detach().mean()}


class PlainPath:
    """The greedy action, the minibatch loss and its backward in plain torch.
    `dqn_cpu.FastDQN` has the same methods and numbers, with fewer calls."""

    def __init__(self, q_net: nn.Module, target_net: nn.Module, compiled: bool, device: str):
        self.q_net, self.target_net = q_net, target_net
        self.params = list(q_net.parameters())
        self.greedy = q_policy(q_net, n_actions=0)  # eps=0: greedy only
        self._loss = maybe_compile(dqn_loss, compiled, device)

    def loss(self, b: dict[str, torch.Tensor], gamma: float,
             double: bool) -> dict[str, torch.Tensor]:
        return self._loss(self.q_net, self.target_net, b, gamma, double)

    def backward(self, losses: dict[str, torch.Tensor]) -> None:
        for p in self.params:
            p.grad = None
        losses["td"].backward()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        return nn.utils.clip_grad_norm_(self.params, max_norm, foreach=True)


def build_q(ctx: Any, obs_shape: tuple, n_actions: int) -> nn.Module:
    """The Q network on the run's device: an MLP on vectors, a CNN on (stacked) frames."""
    in_dim = obs_shape if len(obs_shape) > 1 else int(np.prod(obs_shape))
    if not accepts_observations(ctx.network, obs_shape):
        raise ConfigError(f"env={ctx.env.id} observes {obs_shape}, which the network does not"
                          " take: use network=nature_cnn for images, network=mlp for vectors")
    return build_network(ctx.network, in_dim=in_dim, out_dim=n_actions).to(ctx.device)


def q_policy(q_net: nn.Module, n_actions: int, eps: float = 0.0,
             seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Greedy in Q; epsilon-greedy with its own RNG (seeded `seed`) when eps > 0."""
    dev = next(q_net.parameters()).device
    rng = np.random.default_rng(seed)

    def greedy(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return q_net(torch.as_tensor(o, device=dev)).argmax(-1).cpu().numpy()

    def eps_greedy(o: np.ndarray) -> np.ndarray:
        a = greedy(o)
        explore = rng.random(len(a)) < eps
        return np.where(explore, rng.integers(0, n_actions, len(a)), a)

    return eps_greedy if eps > 0 else greedy


def load_policy(ctx: Any, env: Any, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    """rlrun-eval's hook: the run's evaluation policy (greedy, or epsilon-greedy with
    algo.eval_epsilon, its RNG seeded as at the run's last evaluation); deterministic=false:
    epsilon-greedy at the exploration rate the run had reached."""
    n_actions = int(env.action_space.n)
    q_net = build_q(ctx, tuple(env.observation_space.shape), n_actions)
    ctx.track(q=q_net)  # the loop's name
    ctx.resume()
    eps = ctx.algo.eval_epsilon if deterministic else epsilon(ctx.step, ctx.algo)
    return q_policy(q_net, n_actions, eps, ctx.seed + ctx.step)


def run(ctx) -> None:
    cfg, dev = ctx.algo, torch.device(ctx.device)
    pixels = is_atari(ctx.env.id)
    envs = training_envs(ctx, atari_vector_wrappers(ctx.env), info_keys=("lives",))
    n_envs = envs.num_envs
    n_actions = int(envs.single_action_space.n)
    obs_shape = tuple(envs.single_observation_space.shape)
    q_net = build_q(ctx, obs_shape, n_actions)
    target_net = copy.deepcopy(q_net).requires_grad_(False)
    # algo.fast_path: the same update in fewer torch calls on a CPU (rlrun/fast/dqn_cpu.py)
    path = dqn_cpu.select(cfg, q_net, target_net, ctx.device) or \
        PlainPath(q_net, target_net, cfg.compile, ctx.device)
    opt = adam(path.params, cfg.learning_rate, ctx.device)
    life_terminal = pixels and ctx.env.atari.episodic_life
    capacity, buffer_seed = min(cfg.buffer_size, cfg.total_steps), ctx.seed_of("buffer")
    if pixels:
        rb: Any = FrameReplayBuffer(capacity, n_envs, obs_shape[0], obs_shape[1:], dev,
                                    seed=buffer_seed)
    else:
        rb = ReplayBuffer(capacity, obs_shape, (), dev, act_dtype=torch.long, seed=buffer_seed)
    rng = ctx.rng("actions")
    evaluator = Evaluator.of_run(ctx, cfg.eval_episodes, load_policy)
    params = list(q_net.parameters())  # (views of one packed tensor on the fast path)

    ctx.track(q=q_net, target=target_net, opt=opt, rng=rng)
    ctx.track_per_rank(envs=envs, rb=rb)
    obs = ctx.resume().obs
    lives = envs.last_info.get("lives", np.zeros(n_envs))
    if pixels and not envs.restored:  # new episodes (ALE emulators restart): new streams
        rb.start(obs[:, -1])

    log, last_return, losses = ctx.logger, None, None
    sps = SPSMeter(ctx.step)
    ctx.start_progress(cfg.total_steps)
    while ctx.step < cfg.total_steps:
        eps = epsilon(ctx.step, cfg)
        explore = rng.random(n_envs) < (1.0 if ctx.step < cfg.learning_starts else eps)
        actions = rng.integers(0, n_actions, n_envs)
        if not explore.all():
            actions = np.where(explore, actions, path.greedy(obs))
        next_obs, rewards, term, trunc, infos = envs.step(actions)
        done = term | trunc
        learn_term = term
        if life_terminal:  # a lost life ends the learner's episode, not the game
            new_lives = np.asarray(infos["lives"])
            learn_term = term | (new_lives < lives)
            lives = new_lives
        real_next = real_next_obs(next_obs, done, infos)
        if pixels:
            rb.add(actions, rewards, learn_term, real_next[:, -1], done, next_obs[:, -1])
        else:
            rb.add(obs, actions, rewards, real_next, learn_term)
        obs, step = next_obs, ctx.step + n_envs
        last_return = log_episodes(log, infos, step, last_return)

        if train_due(cfg, step, n_envs):
            if cfg.anneal_lr:  # SB3's linear schedule: the fraction of the budget left
                opt.param_groups[0]["lr"] = cfg.learning_rate * (1.0 - step / cfg.total_steps)
            for _ in range(cfg.gradient_steps):
                losses = path.loss(rb.sample(cfg.batch_size), cfg.gamma, cfg.double)
                path.backward(losses)  # zero_grad, then the TD loss's gradient
                path.clip_grad_norm_(cfg.max_grad_norm)
                opt.step()
        if ctx.every("target", cfg.target_network_frequency, step) and \
                step > cfg.learning_starts:
            with torch.no_grad():
                torch._foreach_lerp_(list(target_net.parameters()), params, cfg.tau)
        if ctx.every("log", cfg.log_every, step) or step >= cfg.total_steps:
            log.scalars({"charts/SPS": sps.read(step), "charts/epsilon": eps}, step)
            if losses is not None:  # the only host syncs of the loop
                log.scalars({f"losses/{k}": float(v.detach()) for k, v in losses.items()},
                            step)
        if ctx.every("eval", cfg.eval_every, step) or step >= cfg.total_steps:
            # the evaluation's epsilon draws are seeded by the step (rlrun-eval replays them)
            evaluator.run(q_policy(q_net, n_actions, cfg.eval_epsilon, ctx.seed + step), log,
                          step)
        if ctx.tick(step, last_return):
            break
    ctx.finish(close=(evaluator, envs))
