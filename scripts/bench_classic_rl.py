"""Benchmark: rlrun's DQN, DDPG, TD3 and A2C against Stable-Baselines3, same hyperparameters.

    pip install -e '.[bench]'                           # stable-baselines3, the reference
    python scripts/bench_classic_rl.py dqn              # CartPole-v1, tuned: 50k steps
    python scripts/bench_classic_rl.py td3 --seeds 1 --steps 12000   # 2k updates after 10k
    python scripts/bench_classic_rl.py dqn --env ALE/Breakout-v5 --steps 3000 \\
        --set algo.learning_starts=1000 algo.buffer_size=10000     # needs rlrun[atari]

Same protocol as scripts/bench_deep_rl.py: per seed, rlrun (`train()` with the tuned
config) then SB3 (`model.learn()` only), alternating so both see the same machine load.
rlrun's clock is bench_deep_rl's `LoopClock`: its training loop from `start_progress` to the
end (TensorBoard logging and the final checkpoint inside), less its evaluations, which SB3's
`learn()` does not run; the whole `train()` call is printed beside it. Both are evaluated
afterwards with rlrun's Evaluator (10 deterministic episodes on a separately seeded env;
Atari: rlrun's only, 1 game, epsilon 0.05). Steps/s = env steps / wall seconds. `--set`
passes extra rlrun overrides, and the SB3 model is built from the resulting config.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import compose_cfg  # noqa: E402

from rlrun.core.config import register_resolvers  # noqa: E402
from rlrun.core.logger import Logger, LoggerConfig  # noqa: E402
from rlrun.envs.gym import is_atari  # noqa: E402
from rlrun.rl.evaluation import Evaluator  # noqa: E402
from rlrun.schemas.gym import GymEnvConfig  # noqa: E402
from rlrun.train import train  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_deep_rl import LoopClock  # noqa: E402

from rlrun.bench.sb3 import model as sb3_model  # noqa: E402  (the one SB3 mapping)

TASKS = {"dqn": "CartPole-v1", "td3": "Pendulum-v1", "ddpg": "Pendulum-v1",
         "a2c": "CartPole-v1"}


def evaluate(policy, env_id: str, seed: int, episodes: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        logger = Logger(Path(d), LoggerConfig(tensorboard=False))
        ev = Evaluator(GymEnvConfig(id=env_id), seed, episodes, video=False)
        try:
            return ev.run(policy, logger, 0)
        finally:
            ev.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("algo", choices=sorted(TASKS))
    p.add_argument("--env", default=None)
    p.add_argument("--steps", type=int, default=None, help="default: the tuned budget")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", nargs="*", default=[], help="extra rlrun overrides")
    p.add_argument("--fast-path", default=None, metavar="on,off",
                   help="dqn, td3, ddpg: algo.fast_path value(s); with several, each seed runs "
                        "rlrun once per value, then SB3 (default: the config's, auto)")
    args = p.parse_args()
    settings = args.fast_path.split(",") if args.fast_path else [None]
    if args.fast_path and args.algo not in ("dqn", "td3", "ddpg"):
        p.error(f"--fast-path: {args.algo} has no fast path here (dqn, td3 and ddpg have; ppo,"
                " sac: scripts/bench_deep_rl.py)")
    register_resolvers()
    torch.set_num_threads(args.threads)
    env = args.env or TASKS[args.algo]
    overrides = [f"algo={args.algo}", f"env={env}", "logger.progress=none",
                 f"threads={args.threads}", "algo.eval_every=0", *args.set]
    atari = is_atari(env)
    if atari:
        # one evaluation game, epsilon 0.05 (a greedy untrained agent may never press FIRE
        # and play the 27k-step time limit); the loop's own charts/SPS excludes it
        overrides += ["network=nature_cnn", "algo.eval_episodes=1", "algo.eval_epsilon=0.05"]
    if args.steps:
        overrides.append(f"algo.total_steps={args.steps}")
    # one-time imports (torch._dynamo, pulled in by the first optimiser) out of the timings:
    # SB3 builds its optimisers before `learn()`, rlrun inside `train()`
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)
    clock, rows = LoopClock(), []
    for seed in range(args.seeds):
        ours = {}
        for fp in settings:
            cfg = compose_cfg([*overrides, f"seed={seed}",
                               *([f"algo.fast_path={fp}"] if fp else [])])
            steps = cfg.algo.total_steps
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter()
                res = train(cfg, run_dir=Path(d) / "run")
                t_train = time.perf_counter() - t
                t_ours = clock.seconds()[0]
            ours[fp] = (res["steps"] / t_ours, res["metrics"]["eval/return"]["last"])
            print(f"seed {seed}: rlrun{_label(fp)}'s whole train() call (set-up and evaluation"
                  f" included): {res['steps'] / t_train:.0f} steps/s; charts/SPS over the last"
                  f" 10% of the run: {res['metrics']['charts/SPS']['tail_mean']:.0f} steps/s")
        torch.manual_seed(seed)
        model = sb3_model(args.algo, cfg, seed)
        t = time.perf_counter()
        model.learn(total_timesteps=steps)
        t_sb3 = time.perf_counter() - t
        sb3_steps = model.num_timesteps
        if atari:  # SB3's CnnPolicy wants its own (H, W, C) frame stack: not comparable
            sb3_ret = float("nan")
        else:
            sb3_ret = evaluate(lambda o, m=model: m.predict(o, deterministic=True)[0], env,
                               seed, 10)
        row = {"sb3": sb3_steps / t_sb3, "sb3_ret": sb3_ret, "ours": ours}
        rows.append(row)
        for fp, (sps, ret) in ours.items():
            print(f"seed {seed}: rlrun{_label(fp)} {sps:.0f} steps/s (eval {ret:.1f}), SB3"
                  f" {row['sb3']:.0f} steps/s (eval {sb3_ret:.1f}), ratio {sps / row['sb3']:.2f}",
                  flush=True)
    sb3 = statistics.mean(r["sb3"] for r in rows)
    print(f"\n{args.algo} on {env}, {steps} steps, {args.seeds} seeds, {args.threads} threads")
    print("| | steps/s | eval return (mean over seeds) | per seed |")
    print("|---|---|---|---|")
    for fp in settings:
        rets = [r["ours"][fp][1] for r in rows]
        print(f"| rlrun{_label(fp)} | {statistics.mean(r['ours'][fp][0] for r in rows):.0f} |"
              f" {np.mean(rets):.1f} | {', '.join(f'{x:.1f}' for x in rets)} |")
    sb3_rets = [r["sb3_ret"] for r in rows]
    print(f"| SB3 {__import__('stable_baselines3').__version__} | {sb3:.0f} |"
          f" {np.mean(sb3_rets):.1f} | {', '.join(f'{x:.1f}' for x in sb3_rets)} |")
    for fp in settings:
        ours_sps = statistics.mean(r["ours"][fp][0] for r in rows)
        print(f"| ratio{_label(fp)} | {ours_sps / sb3:.2f}x | | |")


def _label(fast_path: str | None) -> str:
    return f" (fast_path={fast_path})" if fast_path else ""


if __name__ == "__main__":
    main()
