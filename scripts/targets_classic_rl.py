"""The issue's learning targets for DQN, DDPG, TD3 and A2C, with the tuned presets, 3 seeds.

    python scripts/targets_classic_rl.py dqn td3 ddpg a2c      # threads=1, one run at a time

For each run: the evaluation curve (10 deterministic episodes every `--eval-every` steps),
the first step whose evaluation reached the target, wall time and mean env steps/s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import compose_cfg  # noqa: E402

from rlrun.core.config import register_resolvers  # noqa: E402
from rlrun.train import train  # noqa: E402

# algo -> (env, target eval return, evaluation period in env steps)
TARGETS = {"dqn": ("CartPole-v1", 500.0, 5000), "td3": ("Pendulum-v1", -200.0, 2000),
           "ddpg": ("Pendulum-v1", -200.0, 2000), "a2c": ("CartPole-v1", 475.0, 20000)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("algos", nargs="+", choices=sorted(TARGETS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    register_resolvers()
    for algo in args.algos:
        env, target, every = TARGETS[algo]
        for seed in range(args.seeds):
            cfg = compose_cfg([f"algo={algo}", f"env={env}", f"seed={seed}",
                               f"threads={args.threads}", "logger.progress=none",
                               "checkpoint_every_s=0", f"algo.eval_every={every}"])
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter()
                res = train(cfg, run_dir=Path(d) / "run")
                wall = time.perf_counter() - t
                curve = _curve(Path(d) / "run")
            hit = next((s for s, v in curve if v >= target), None)
            print(f"{algo} {env} seed {seed}: final eval {curve[-1][1]:.1f}, first >= "
                  f"{target:g} at step {hit}, {res['steps']} steps in {wall:.0f} s "
                  f"({res['steps'] / wall:.0f} steps/s incl. evaluation); curve "
                  + " ".join(f"{s}:{v:.0f}" for s, v in curve), flush=True)


def _curve(run_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars("eval/return")]


if __name__ == "__main__":
    main()
