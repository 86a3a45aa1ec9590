"""Benchmark: the share of a default deep RL run spent in its evaluations, with an
evaluation's episodes played side by side (rlrun's Evaluator) against one after another.

    python scripts/bench_eval.py                    # rlrun algo=ppo env=CartPole-v1, 2 rounds
    python scripts/bench_eval.py --rounds 1 --algo sac --env Pendulum-v1 --steps 5000

Each round runs the same run twice in this process, alternating, so that both arms see the
same machine load:
- `batched`: rlrun's `Evaluator`, one env copy per episode, one batched policy call per step;
- `sequential`: the reference, the evaluation as rlrun played it before (`sequential_play`
  below: the episodes one after another on one env, one observation per policy call).

The seeds, and so the episodes, are the same in both arms (their `eval/return` curves are
printed side by side), and evaluation does not touch training, so the arms differ only in
how evaluations are played. Clocks: the time inside `Evaluator.run`, and the run's
`wall_time_s` from results.json (start of training to its end, evaluations included).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import compose_cfg  # noqa: E402

from rlrun.rl.evaluation import EvaluationStopped, Evaluator  # noqa: E402
from rlrun.train import train  # noqa: E402


def sequential_play(self, policy, obs_transform=None, stop=None):
    """The reference: the episodes one after another on the first env copy, one observation
    per policy call (rlrun's evaluation before episodes were batched)."""
    returns, lengths, frames = [], [], []
    env = self.env
    for ep in range(self.episodes):
        obs, _ = env.reset(seed=self.seed + ep)
        total, n, done = 0.0, 0, False
        record = self.video and ep == 0
        if record:
            frames.append(env.render())
        while not done:
            if stop is not None and stop():
                raise EvaluationStopped
            o = obs_transform(obs[None]) if obs_transform else obs[None]
            obs, r, term, trunc, _ = env.step(policy(o)[0])
            total, n, done = total + float(r), n + 1, term or trunc
            if record:
                frames.append(env.render())
        returns.append(total)
        lengths.append(n)
    return returns, lengths, frames


def one_run(args: argparse.Namespace, arm: str, root: Path) -> dict:
    batched_play, real_run = Evaluator.play, Evaluator.run
    spent = {"eval_s": 0.0, "evals": 0}

    def timed_run(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return real_run(self, *a, **k)
        finally:
            spent["eval_s"] += time.perf_counter() - t0
            spent["evals"] += 1

    Evaluator.run = timed_run
    Evaluator.play = sequential_play if arm == "sequential" else batched_play
    try:
        overrides = [f"algo={args.algo}", f"env={args.env}", "logger.progress=none",
                     f"seed={args.seed}"]
        if args.steps:
            overrides.append(f"algo.total_steps={args.steps}")
        res = train(compose_cfg(overrides), run_dir=root / f"{arm}_{time.time_ns()}")
    finally:
        Evaluator.play, Evaluator.run = batched_play, real_run
    return {**spent, "wall_s": res["wall_time_s"],
            "eval_return": res["metrics"]["eval/return"]["last"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algo", default="ppo")
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--steps", type=int, default=0, help="algo.total_steps (0: the default)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"rlrun algo={args.algo} env={args.env}"
          + (f" algo.total_steps={args.steps}" if args.steps else "") + f" seed={args.seed}")
    print(f"{'round':>5} {'arm':>10} {'evals':>5} {'eval s':>7} {'run s':>7} {'share':>6}"
          f" {'last eval/return':>16}")
    shares: dict[str, list[float]] = {"sequential": [], "batched": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for arm in ("sequential", "batched") if r % 2 == 0 else ("batched", "sequential"):
                out = one_run(args, arm, Path(tmp))
                share = out["eval_s"] / out["wall_s"]
                shares[arm].append(share)
                print(f"{r:>5} {arm:>10} {out['evals']:>5} {out['eval_s']:>7.2f}"
                      f" {out['wall_s']:>7.2f} {share:>6.1%} {out['eval_return']:>16.2f}")
    for arm, s in shares.items():
        print(f"{arm}: evaluation share of the run, mean over rounds {np.mean(s):.1%}")


if __name__ == "__main__":
    main()
