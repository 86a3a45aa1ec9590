"""Update-step speed of rlrun's DQN, DDPG and TD3 against Stable-Baselines3, in one process.

    python scripts/bench_updates_classic_rl.py td3 ddpg dqn --updates 300 --repeats 3

On a shared machine an end-to-end run (scripts/bench_classic_rl.py) is at the mercy of the
load; here both sides train from replay buffers holding the same 5000 random transitions,
with the tuned hyperparameters, in alternating blocks of `--updates` gradient steps
(rlrun, SB3, rlrun, SB3, ...), so the load cancels. Reported: milliseconds per update (for
TD3 an update is one critic step, plus the actor and target step every policy_frequency).
Each rlrun update is the loop's, through the path `algo.fast_path` selects (auto: the CPU
fast path, rlrun/fast/dqn_cpu.py and td3_cpu.py), and its plain path runs in the same
rotation.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bench_classic_rl import TASKS, sb3_model  # noqa: E402
from conftest import compose_cfg  # noqa: E402

from rlrun.core.config import import_object, register_resolvers, validate  # noqa: E402
from rlrun.rl.buffers import ReplayBuffer  # noqa: E402
from rlrun.rl.training import adam  # noqa: E402


def transitions(env_id: str, n: int, seed: int = 0):
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(n):
        a = env.action_space.sample()
        nxt, r, term, trunc, _ = env.step(a)
        out.append((obs, a, r, nxt, term))
        obs = nxt if not (term or trunc) else env.reset()[0]
    return out


def rlrun_updater(algo: str, cfg, data):
    from rlrun.nets import build_network

    a = validate(cfg.algo, import_object(str(cfg.algo.schema), "schema"), "algo")
    obs_dim = len(data[0][0])
    if algo == "dqn":  # the loop's update, through the path its algo.fast_path selects
        from rlrun.algos.dqn import PlainPath
        from rlrun.fast import dqn_cpu

        q = build_network(cfg.network, in_dim=obs_dim, out_dim=2)
        tq = copy.deepcopy(q).requires_grad_(False)
        path = dqn_cpu.select(a, q, tq, "cpu") or PlainPath(q, tq, a.compile, "cpu")
        opt = adam(path.params, a.learning_rate, "cpu")
        rb = ReplayBuffer(len(data), (obs_dim,), (), "cpu", act_dtype=torch.long)

        def step(n: int) -> None:
            for _ in range(n):
                losses = path.loss(rb.sample(a.batch_size), a.gamma, a.double)
                path.backward(losses)
                path.clip_grad_norm_(a.max_grad_norm)
                opt.step()
    else:
        from rlrun.algos import td3
        from rlrun.fast import td3_cpu

        low, high = np.array([-2.0], np.float32), np.array([2.0], np.float32)
        nets = td3.build(cfg.network, obs_dim, 1, low, high, a.n_critics, "cpu")
        fast = td3_cpu.select(a, nets, "cpu")
        q_opt = adam(fast.q_params if fast else nets["qf"].parameters(), a.learning_rate, "cpu")
        pi_opt = adam(fast.pi_params if fast else nets["actor"].parameters(), a.learning_rate,
                      "cpu")
        rb = ReplayBuffer(len(data), (obs_dim,), (1,), "cpu")
        tp = [p for k in ("actor", "qf") for p in nets[k + "_target"].parameters()]
        sp = [p for k in ("actor", "qf") for p in nets[k].parameters()]
        count = [0]

        def step(n: int) -> None:
            for _ in range(n):
                td3._update(nets, rb, a, q_opt, pi_opt, td3.critic_loss, td3.actor_loss,
                            count[0], tp, sp, fast)
                count[0] += 1
    for o, act, r, nx, t in data:
        rb.add(o[None], np.asarray([act]), np.asarray([r]), nx[None], np.asarray([t]))
    return step


def sb3_updater(algo: str, cfg, data):
    from stable_baselines3.common.logger import configure

    model = sb3_model(algo, cfg, 0)
    model.set_logger(configure(None, [""]))
    model._current_progress_remaining = 1.0
    for o, act, r, nx, t in data:
        model.replay_buffer.add(o[None], nx[None], np.asarray([act]), np.asarray([r]),
                                np.asarray([t]), [{}])
    batch = cfg.algo.batch_size
    return lambda n: model.train(gradient_steps=n, batch_size=batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("algos", nargs="+", choices=["dqn", "td3", "ddpg"])
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    register_resolvers()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for algo in args.algos:
        cfg = compose_cfg([f"algo={algo}", f"env={TASKS[algo]}"])
        data = transitions(cfg.env.id, 5000)
        sides = {"rlrun": rlrun_updater(algo, cfg, data), "SB3": sb3_updater(algo, cfg, data)}
        # and its plain path (algo.fast_path=off), in the same rotation
        plain = compose_cfg([f"algo={algo}", f"env={TASKS[algo]}", "algo.fast_path=off"])
        sides["rlrun plain"] = rlrun_updater(algo, plain, data)
        for f in sides.values():
            f(10)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in sides}
        for _ in range(args.repeats):
            for name, f in sides.items():
                t = time.perf_counter()
                f(args.updates)
                times[name].append((time.perf_counter() - t) / args.updates * 1e3)
        ours, ref = statistics.median(times["rlrun"]), statistics.median(times["SB3"])
        print(f"{algo} ({TASKS[algo]}, batch {cfg.algo.batch_size}, net "
              f"{list(cfg.network.hidden_sizes)}): rlrun {ours:.2f} ms/update, SB3 {ref:.2f}"
              f" ms/update (medians of {args.repeats} x {args.updates}), rlrun {ref / ours:.2f}x"
              f" as fast; per block rlrun {[round(x, 2) for x in times['rlrun']]},"
              f" SB3 {[round(x, 2) for x in times['SB3']]}", flush=True)
        if "rlrun plain" in times:
            plain_ms = statistics.median(times["rlrun plain"])
            print(f"  {algo} with algo.fast_path=off: {plain_ms:.2f} ms/update, rlrun"
                  f" {ref / plain_ms:.2f}x as fast as SB3", flush=True)


if __name__ == "__main__":
    main()
