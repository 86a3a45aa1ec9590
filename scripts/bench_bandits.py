"""Benchmark: rlrun's vectorised bandit loops vs a straightforward per-run Python loop.

    python scripts/bench_bandits.py               # 2000 runs x 1000 steps, ref on 200 runs
    python scripts/bench_bandits.py --ref-runs 2000
    python scripts/bench_bandits.py --overhead-only --rounds 7   # the run against its loop

The reference is the textbook way: one bandit problem at a time, one step at a time
(np.argmax with random tie-breaking, incremental updates). Its time is linear in the number
of runs, so it is measured on --ref-runs runs and scaled to --runs. Both implementations'
average reward over all steps is printed as a sanity check (same algorithm, same numbers up
to sampling noise). Also times the whole `train()` call (TensorBoard logging included).

The overhead check (issue 27): a whole run, `results.json`'s `wall_time_s` of `rlrun
algo=epsilon_greedy` on the fig2_2 testbed (2000 runs x 1000 steps: TensorBoard, the
heartbeat, checkpoint, results.json and scalars.parquet included), against the same agent
and testbed stepped in a bare NumPy loop, alternating the two round by round (a shared
machine's load hits both alike). The goal: the run within 1.5x of the loop.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import numpy as np

from rlrun.algos.bandits import (
    EpsilonGreedyConfig,
    GradientBanditConfig,
    UCBConfig,
    make_agent,
)
from rlrun.envs.bandit import BanditConfig, BanditTestbed


def reference_run(cfg, k: int, steps: int, mean: float, rng: np.random.Generator) -> float:
    """One run, plain Python: returns the sum of rewards."""
    q_star = rng.normal(mean, 1.0, k)
    total = 0.0
    if isinstance(cfg, GradientBanditConfig):
        h, avg = np.zeros(k), 0.0
        for t in range(1, steps + 1):
            pi = np.exp(h - h.max())
            pi /= pi.sum()
            a = rng.choice(k, p=pi)
            r = q_star[a] + rng.standard_normal()
            base = (r if t == 1 else avg) if cfg.baseline else 0.0
            one_hot = np.zeros(k)
            one_hot[a] = 1.0
            h += cfg.step_size * (r - base) * (one_hot - pi)
            avg += (r - avg) / t
            total += r
        return total
    q, n = np.full(k, float(cfg.initial_value)), np.zeros(k)
    for t in range(1, steps + 1):
        if isinstance(cfg, UCBConfig):
            with np.errstate(divide="ignore", invalid="ignore"):
                u = np.where(n == 0, np.inf, q + cfg.c * np.sqrt(math.log(t) / n))
            a = rng.choice(np.flatnonzero(u == u.max()))
        elif rng.random() < cfg.epsilon:
            a = rng.integers(k)
        else:
            a = rng.choice(np.flatnonzero(q == q.max()))
        r = q_star[a] + rng.standard_normal()
        n[a] += 1
        q[a] += (r - q[a]) * (1.0 / n[a] if cfg.step_size is None else cfg.step_size)
        total += r
    return total


def vectorised(cfg, env: BanditConfig, seed: int) -> tuple[float, float]:
    bandit = BanditTestbed(env, np.random.default_rng(seed))
    agent = make_agent(cfg, env.num_runs, env.k, np.random.default_rng(seed + 1))
    total = 0.0
    t0 = time.perf_counter()
    for _ in range(env.steps):
        rows = bandit.observe()
        actions = agent.act(rows)
        rewards, _ = bandit.step(rows, actions)
        agent.update(rows, actions, rewards)
        total += rewards.mean()
    return time.perf_counter() - t0, total / env.steps


def full_train(algo: str, runs: int, steps: int, mean: float) -> tuple[float, float]:
    """(seconds of the whole `train()` call, the run's own `wall_time_s`)."""
    from rlrun.testing import compose
    from rlrun.train import train

    cfg = compose([f"algo={algo}", f"env.num_runs={runs}", f"env.steps={steps}",
                   f"env.mean={mean}", "logger.progress=none"])
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        rec = train(cfg, run_dir=d)
        return time.perf_counter() - t0, float(rec["wall_time_s"])


def overhead(runs: int, steps: int, rounds: int) -> None:
    """The run's wall_time_s against the bare loop, alternating, epsilon-greedy (fig2_2)."""
    env = BanditConfig(num_runs=runs, steps=steps)
    cfg = EpsilonGreedyConfig(epsilon=0.1)
    loop_s, run_s = [], []
    for r in range(rounds):
        loop_s.append(vectorised(cfg, env, r)[0])
        run_s.append(full_train("epsilon_greedy", runs, steps, 0.0)[1])
    ratio = statistics.median(run_s) / statistics.median(loop_s)
    print(f"\nepsilon-greedy, {runs} runs x {steps} steps, {rounds} alternating rounds:")
    print(f"  bare NumPy loop     {statistics.median(loop_s):.3f} s median"
          f" ({min(loop_s):.3f}-{max(loop_s):.3f})")
    print(f"  run's wall_time_s   {statistics.median(run_s):.3f} s median"
          f" ({min(run_s):.3f}-{max(run_s):.3f})")
    print(f"  ratio {ratio:.2f}x (goal: at most 1.5x) -> {'ok' if ratio <= 1.5 else 'OVER'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--ref-runs", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3, help="best of N for the vectorised loop")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of the overhead"
                   " check")
    p.add_argument("--overhead-only", action="store_true", help="only the run-vs-loop check")
    args = p.parse_args()
    full_train("epsilon_greedy", 10, 10, 0.0)  # warm-up: imports, TensorBoard writer
    if args.overhead_only:
        return overhead(args.runs, args.steps, args.rounds)
    env = BanditConfig(num_runs=args.runs, steps=args.steps)
    cases = [("epsilon_greedy", EpsilonGreedyConfig(epsilon=0.1), 0.0),
             ("ucb", UCBConfig(c=2.0), 0.0),
             ("gradient_bandit", GradientBanditConfig(step_size=0.1), 4.0)]
    print(f"{args.runs} runs x {args.steps} steps, k={env.k}; reference measured on "
          f"{args.ref_runs} runs and scaled")
    print(f"{'algorithm':16s} {'vectorised s':>12s} {'per-run s':>10s} {'ratio':>7s} "
          f"{'train() s':>9s} {'avg reward vec / ref':>22s}")
    for name, cfg, mean in cases:
        env = BanditConfig(num_runs=args.runs, steps=args.steps, mean=mean)
        best, avg_vec = min(vectorised(cfg, env, s) for s in range(args.repeats))
        rng = np.random.default_rng(123)
        t0 = time.perf_counter()
        ref_total = sum(reference_run(cfg, env.k, args.steps, mean, rng)
                        for _ in range(args.ref_runs))
        ref_s = (time.perf_counter() - t0) * args.runs / args.ref_runs
        avg_ref = ref_total / (args.ref_runs * args.steps)
        train_s = full_train(name, args.runs, args.steps, mean)[0]
        print(f"{name:16s} {best:12.3f} {ref_s:10.1f} {ref_s / best:6.0f}x {train_s:9.2f} "
              f"{avg_vec:10.3f} / {avg_ref:.3f}")
    overhead(args.runs, args.steps, args.rounds)


if __name__ == "__main__":
    main()
