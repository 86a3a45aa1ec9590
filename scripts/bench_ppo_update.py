"""Benchmark: one PPO minibatch update, fast path (rlrun/fast/ppo_cpu.py) against plain torch.

    python scripts/bench_ppo_update.py        # four network and batch sizes, one thread

What `algo.fast_path=auto` rests on: for each size, both paths run `ppo._learn` (5 epochs of
4 minibatches on one batch) alternately, six times, in this process, and the median CPU time
per minibatch update is reported. CPU time, not wall time, so that a shared machine's load
does not decide the result (one thread: CPU time is what the work takes on an idle core).
The whole-run comparison with SB3 is scripts/bench_deep_rl.py.
"""

from __future__ import annotations

import statistics
import time

import torch
from omegaconf import OmegaConf

from rlrun.algos.ppo import PlainPath, PPOConfig, _learn
from rlrun.fast.ppo_cpu import FastPPO
from rlrun.rl.rollout import build_agent
from rlrun.rl.training import adam

CASES = [  # name, hidden sizes, activation, obs dim, action dim, continuous, minibatch rows
    ("64x64 tanh, CartPole-like, 256 rows", [64, 64], "tanh", 4, 2, False, 256),
    ("64x64 tanh, Pendulum-like, 64 rows", [64, 64], "tanh", 3, 1, True, 64),
    ("256x256 relu, Pendulum-like, 64 rows", [256, 256], "relu", 3, 1, True, 64),
    ("256x256 relu, HalfCheetah-like, 256 rows", [256, 256], "relu", 17, 6, True, 256),
]


def update_fn(fast: bool, hidden: list[int], act: str, obs_dim: int, act_dim: int,
              continuous: bool, rows: int):
    """A closure running 20 minibatch updates of one agent on one batch."""
    torch.manual_seed(0)
    net = OmegaConf.create({"_target_": "rlrun.nets.mlp.MLP", "hidden_sizes": hidden,
                            "activation": act})
    agent = build_agent(net, obs_dim, act_dim, continuous, 0.0)
    path = FastPPO(agent) if fast else PlainPath(agent, False, "cpu")
    opt = adam(path.params, 1e-4, "cpu", eps=1e-5)
    g = torch.Generator().manual_seed(0)
    n = rows * 4
    obs = torch.randn(n, obs_dim, generator=g)
    with torch.no_grad():
        a, logp, v = agent.act(obs)
    b = {"obs": obs, "actions": a, "logp": logp, "values": v,
         "adv": torch.randn(n, generator=g), "returns": v + torch.randn(n, generator=g)}
    cfg = PPOConfig(num_minibatches=4, update_epochs=5)
    return lambda: _learn(path, opt, agent, b, cfg, 0.2, rows)


def main() -> None:
    torch.set_num_threads(1)
    print("| case | fast path, CPU ms per minibatch | plain | plain / fast |")
    print("|---|---|---|---|")
    for name, *case in CASES:
        fns = {fast: update_fn(fast, *case) for fast in (True, False)}
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(6):
            for fast, fn in fns.items():
                t = time.process_time()
                fn()
                times[fast].append((time.process_time() - t) / 20 * 1e3)
        on, off = statistics.median(times[True]), statistics.median(times[False])
        print(f"| {name} | {on:.2f} | {off:.2f} | {off / on:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
