"""What the on-policy loops (PPO, A2C) share: the actor-critic they build, generalised
advantage estimation, and the bootstrap of episodes cut by a time limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rlrun.nets import build_network
from rlrun.nets.actor_critic import ActorCritic, layer_init


def build_agent(net_cfg: Any, obs_dim: int, act_dim: int, continuous: bool,
                log_std_init: float) -> ActorCritic:
    actor = layer_init(build_network(net_cfg, in_dim=obs_dim, out_dim=act_dim), out_gain=0.01)
    critic = layer_init(build_network(net_cfg, in_dim=obs_dim, out_dim=1), out_gain=1.0)
    return ActorCritic(actor, critic, continuous, act_dim, log_std_init)


def gae(rewards: Any, values: Any, dones: Any, next_value: Any, gamma: float,
        lam: float) -> tuple[Any, Any]:
    """Generalised advantage estimates and returns over a (T, N) rollout.

    `dones[t]` says the episode ended at step t (so s_{t+1} starts a new one, and neither
    V(s_{t+1}) nor later advantages flow back into step t). Works on numpy arrays (the
    loop's choice: a T-step recursion over tiny rows is ~5x faster in numpy) and on tensors."""
    adv = rewards * 0
    last = next_value * 0
    for t in reversed(range(rewards.shape[0])):
        nxt = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * nxt * live - values[t]
        last = delta + gamma * lam * live * last
        adv[t] = last
    return adv, adv + values


def bootstrap_truncated(reward: np.ndarray, term: np.ndarray, trunc: np.ndarray, infos: dict,
                        value: Callable[[np.ndarray], np.ndarray], gamma: float,
                        transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """In place: reward += gamma V(final_obs) where a time limit, not the task, ended the
    episode (as SB3 does), so time limits do not look like failures to the critic."""
    if not trunc.any():
        return
    idx = np.flatnonzero(trunc & ~term)
    if idx.size:
        final = np.stack(infos["final_obs"][idx])
        reward[idx] += gamma * value(transform(final) if transform else final)


def agent_policy(agent: ActorCritic, space: Any, deterministic: bool = True,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """An actor-critic's evaluation policy, numpy in and out: the mode of its distribution
    (or a sample), Box actions clipped to the space; `transform` first (the frozen
    observation normaliser). The loops evaluate with it and `load_policy` returns it, so
    `rlrun-eval` replays exactly what the run's evaluations saw."""
    continuous = hasattr(space, "low")
    low, high = (space.low, space.high) if continuous else (None, None)

    def policy(o: np.ndarray) -> np.ndarray:
        o = np.asarray(transform(o) if transform else o, np.float32)
        a = agent.step(o, None if deterministic else agent.draw_noise(len(o)))[0]
        return np.clip(a, low, high) if continuous else a

    return policy
