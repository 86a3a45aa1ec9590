"""Benchmark: rlrun's SAC, TD3, DDPG, A2C, PPO against Stable-Baselines3, same settings.

    pip install stable-baselines3           # the optional reference
    python scripts/bench_deep_rl.py sac     # Pendulum-v1, 20k steps, 3 seeds
    python scripts/bench_deep_rl.py ppo     # CartPole-v1, 100k steps, 3 seeds
    python scripts/bench_deep_rl.py sac --steps 5000 --seeds 1   # quicker look
    python scripts/bench_deep_rl.py td3 --steps 12000 --seeds 1  # also ddpg, a2c (SB3 built
                                                    # by rlrun.bench.sb3, as everywhere)
    python scripts/bench_deep_rl.py ppo --plain     # the algorithm's defaults (CleanRL's), not
                                                    # the tuned (rl-zoo) values for the task
    python scripts/bench_deep_rl.py ppo --env LunarLander-v3 --seeds 2 --first-seed 3 --threads 1
                                                    # seeds 3 and 4 (one process a core)
    python scripts/bench_deep_rl.py ppo --fast-path on,off --seeds 2 --threads 1
                                                    # PPO's CPU fast path on and off, each seed
                                                    # running on, off, then SB3

Each seed runs rlrun (`train()` with the tuned config) and then SB3 (`model.learn()`),
alternating, so that both see the same machine load. Both clocks cover the training loop
only: SB3's `learn()` call; rlrun's `train()` from the start of its loop (after env, network
and logger set-up, which `learn()` does not include either) to its end, minus the time of its
deterministic evaluations (SB3 evaluates nothing inside `learn()`). rlrun's TensorBoard
logging and its final checkpoint stay inside its clock. Both are scored afterwards with the
same deterministic protocol (rlrun's Evaluator: 10 episodes on a separately seeded env).
torch's lazily imported optimiser machinery is imported before the first timed run, so
neither side pays a one-off import. Steps/s = env steps / seconds; the ratio is rlrun's over
SB3's. Threads are pinned (--threads, default 2) for both. Besides wall-clock steps/s the
script reports CPU-time steps/s (env steps per second of this process's CPU time): on a
shared, loaded machine wall time measures the neighbours; with --threads 1 CPU time is what
the same run takes on an idle core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import compose_cfg  # noqa: E402

from rlrun.bench.sb3 import model as sb3_model  # noqa: E402  (the one SB3 mapping)
from rlrun.core import run  # noqa: E402
from rlrun.core.config import register_resolvers  # noqa: E402
from rlrun.core.logger import Logger, LoggerConfig  # noqa: E402
from rlrun.rl import evaluation as rl  # noqa: E402
from rlrun.rl.evaluation import Evaluator  # noqa: E402
from rlrun.schemas.gym import GymEnvConfig  # noqa: E402
from rlrun.train import train  # noqa: E402

TASKS = {"sac": "Pendulum-v1", "ppo": "CartPole-v1", "td3": "Pendulum-v1",
         "ddpg": "Pendulum-v1", "a2c": "CartPole-v1"}


def evaluate(policy, env_id: str, seed: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        logger = Logger(Path(d), LoggerConfig(tensorboard=False))
        ev = Evaluator(GymEnvConfig(id=env_id), seed, 10, video=False)
        try:
            return ev.run(policy, logger, 0)
        finally:
            ev.close()


class LoopClock:
    """Times rlrun's training loop: from `start_progress` to the end, minus evaluations."""

    def __init__(self) -> None:
        self.start, self.eval_s, self.cpu_start, self.eval_cpu = 0.0, 0.0, 0.0, 0.0
        start_progress, ev_run = run.RunContext.start_progress, rl.Evaluator.run

        def timed_start(ctx, *a, **k):
            self.start, self.eval_s = time.perf_counter(), 0.0
            self.cpu_start, self.eval_cpu = time.process_time(), 0.0
            return start_progress(ctx, *a, **k)

        def timed_eval(ev, *a, **k):
            t, c = time.perf_counter(), time.process_time()
            try:
                return ev_run(ev, *a, **k)
            finally:
                self.eval_s += time.perf_counter() - t
                self.eval_cpu += time.process_time() - c

        run.RunContext.start_progress, rl.Evaluator.run = timed_start, timed_eval

    def seconds(self) -> tuple[float, float]:
        """(wall, CPU) seconds of the last loop."""
        return (time.perf_counter() - self.start - self.eval_s,
                time.process_time() - self.cpu_start - self.eval_cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("algo", choices=sorted(TASKS))
    p.add_argument("--env", default=None)
    p.add_argument("--steps", type=int, default=None, help="default: the tuned budget")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds FIRST..FIRST+SEEDS-1: split seeds over processes, one a core")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--plain", action="store_true",
                   help="the algorithm's default hyperparameters, without configs/tuned/")
    p.add_argument("--fast-path", default=None, metavar="on,off",
                   help="ppo, sac, td3, ddpg: algo.fast_path value(s); with several, each seed runs"
                        " rlrun once per value, then SB3 (default: the config's, auto)")
    args = p.parse_args()
    settings = args.fast_path.split(",") if args.fast_path else [None]
    if args.fast_path and args.algo not in ("ppo", "sac", "td3", "ddpg"):
        p.error(f"--fast-path: {args.algo} has no fast path here (ppo, sac, td3 and ddpg have;"
                " dqn: scripts/bench_classic_rl.py)")
    register_resolvers()
    torch.set_num_threads(args.threads)
    env = args.env or TASKS[args.algo]
    overrides = [f"algo={args.algo}", f"env={env}", "logger.progress=none",
                 f"threads={args.threads}", "algo.eval_every=0"]
    if args.plain:
        overrides.append("~tuned@_global_")
    if args.steps:
        overrides.append(f"algo.total_steps={args.steps}")
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # imports torch._dynamo once
    clock, rows = LoopClock(), []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        ours = {}
        for fp in settings:
            cfg = compose_cfg([*overrides, f"seed={seed}",
                               *([f"algo.fast_path={fp}"] if fp else [])])
            steps = cfg.algo.total_steps
            with tempfile.TemporaryDirectory() as d:
                res = train(cfg, run_dir=Path(d) / "run")
                wall, cpu = clock.seconds()
            ours[fp] = (res["steps"] / wall, res["steps"] / cpu,
                        res["metrics"]["eval/return"]["last"])
        torch.manual_seed(seed)
        model = sb3_model(args.algo, cfg, seed)
        t, c = time.perf_counter(), time.process_time()
        model.learn(total_timesteps=steps)
        wall_sb3, cpu_sb3 = time.perf_counter() - t, time.process_time() - c
        sb3_steps = model.num_timesteps
        sb3_ret = evaluate(lambda o, m=model: m.predict(o, deterministic=True)[0], env, seed)
        row = {"sb3": sb3_steps / wall_sb3, "sb3_cpu": sb3_steps / cpu_sb3, "sb3_ret": sb3_ret}
        for fp, (sps, sps_cpu, ret) in ours.items():
            row.update({("ours", fp): sps, ("ours_cpu", fp): sps_cpu, ("ours_ret", fp): ret})
            print(f"seed {seed}: rlrun{_label(fp)} {sps:.0f} steps/s ({sps_cpu:.0f} per CPU s, "
                  f"eval {ret:.1f}), ratio {sps / row['sb3']:.2f} "
                  f"(CPU time {sps_cpu / row['sb3_cpu']:.2f})", flush=True)
        print(f"seed {seed}: SB3 {row['sb3']:.0f} steps/s ({row['sb3_cpu']:.0f} per CPU s, "
              f"eval {sb3_ret:.1f})", flush=True)
        rows.append(row)

    def mean(key) -> float:
        return statistics.mean(r[key] for r in rows)

    def rets(key) -> str:
        return f"{mean(key):.1f} | {', '.join(f'{r[key]:.1f}' for r in rows)}"

    print(f"\n{args.algo} on {env}, {steps} steps, {args.seeds} seeds, {args.threads} threads")
    print("| | steps/s (wall) | steps per CPU second | eval return (mean) | per seed |")
    print("|---|---|---|---|---|")
    for fp in settings:
        print(f"| rlrun{_label(fp)} | {mean(('ours', fp)):.0f} | {mean(('ours_cpu', fp)):.0f} | "
              f"{rets(('ours_ret', fp))} |")
    print(f"| SB3 {__import__('stable_baselines3').__version__} | {mean('sb3'):.0f} | "
          f"{mean('sb3_cpu'):.0f} | {rets('sb3_ret')} |")
    for fp in settings:
        print(f"| ratio{_label(fp)} | {mean(('ours', fp)) / mean('sb3'):.2f}x | "
              f"{mean(('ours_cpu', fp)) / mean('sb3_cpu'):.2f}x | | |")


def _label(fast_path: str | None) -> str:
    return f" (fast_path={fast_path})" if fast_path else ""

if __name__ == "__main__":
    main()
