"""Benchmark: a 4-job sweep with Hydra's joblib launcher vs the basic (sequential) launcher.

    python scripts/bench_sweep.py                 # 4 jobs of the 10-armed testbed
    python scripts/bench_sweep.py --steps 4000 --jobs 2

Both sweeps run the same `rlrun -m` command in fresh processes, with every job pinned to one
thread (`threads=1`, OMP/MKL/OpenBLAS at 1) so that parallel jobs do not fight over cores.
Prints both wall times and their ratio; the target on a 2-core machine is <= 0.65.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def sweep(launcher: list[str], args: argparse.Namespace, out: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rlrun", "-m", *launcher, "algo=ucb",
           f"env.num_runs={args.runs}", f"env.steps={args.steps}", "seed=0,1,2,3",
           "threads=1", "logger.progress=none", f"hydra.sweep.dir={out}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="joblib n_jobs")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        basic = sweep(["hydra/launcher=basic"], args, f"{d}/basic")
        joblib = sweep(["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"], args,
                       f"{d}/joblib")
    print(f"4 jobs: ucb, {args.runs} runs x {args.steps} steps each; {os.cpu_count()} CPUs")
    print(f"basic launcher   {basic:6.1f} s")
    print(f"joblib (n_jobs={args.jobs}) {joblib:6.1f} s   ratio {joblib / basic:.2f}")


if __name__ == "__main__":
    main()
