"""Benchmark: LM tokens/s and DDPM images/s with 1 process (plain rlrun) and 2 (torchrun, DDP).

    python scripts/bench_ddp.py                 # 2 rounds, about 3 min on 2 cores
    python scripts/bench_ddp.py --rounds 1 --algos lm

What this shows on a 2-core CPU machine is the launch path and its overhead, not scaling:
two ranks share two (often loaded) cores, each with one thread (torchrun sets
OMP_NUM_THREADS=1), and gloo all-reduces the gradients through shared memory. On GPUs the
same command, with `device=cuda` and one GPU per rank, scales; the script prints those
commands at the end.

`algo.batch_size` is per rank, so 2 processes process twice the global batch per step (weak
scaling); the figures are global throughput: the loops log `charts/tokens_per_s` and
`charts/images_per_s` summed over ranks. Each measurement is a fresh run; its figure is the
`tail_mean` in results.json (the last 10% of the logged points, past start-up). Within a
round the 1- and 2-process runs alternate, each round starting with the other, so load from
elsewhere hits them alike. The table gives the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKLOADS = {  # name: overrides, the throughput tag, its unit
    "lm": (["algo=lm", "algo.total_steps=80", "algo.log_every=5", "algo.eval_every=0",
            "algo.eval_batches=1", "algo.sample_chars=0", "algo.attention_stats=false"],
           "charts/tokens_per_s", "tokens/s"),
    "ddpm": (["experiment=ddpm/digits", "algo.total_steps=60", "algo.log_every=5",
              "algo.sample_every=0", "algo.eval_samples=0", "algo.sampler=ddim",
              "algo.sample_steps=5", "algo.grid_samples=4", "algo.strip_rows=1",
              "algo.strip_columns=2"],
             "charts/images_per_s", "images/s"),
}
COMMON = ["threads=1", "checkpoint_every_s=0", "logger.progress=none", "logger.tensorboard=false"]


def run_once(algo: str, procs: int, out: Path) -> float:
    overrides, tag, _ = WORKLOADS[algo]
    launch = [sys.executable, "-m", "rlrun"] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={procs}", "-m", "rlrun"]
    cmd = [*launch, *overrides, *COMMON, f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    rec = json.loads((out / "results.json").read_text())
    return float(rec["metrics"][tag]["tail_mean"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--algos", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    args = ap.parse_args()
    results: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for algo in args.algos:
                order = (1, 2) if r % 2 == 0 else (2, 1)
                for procs in order:
                    v = run_once(algo, procs, Path(tmp) / f"{algo}_{procs}_{r}")
                    results.setdefault((algo, procs), []).append(v)
                    print(f"round {r}: {algo} {procs} process(es): {v:,.0f}", flush=True)
    print(f"\n{'workload':<16} {'1 process':>10} {'2 processes':>12} {'ratio':>6}"
          f"   (median of {args.rounds}; global throughput)")
    for algo in args.algos:
        one = statistics.median(results[(algo, 1)])
        two = statistics.median(results[(algo, 2)])
        label = f"{algo} ({WORKLOADS[algo][2]})"
        print(f"{label:<16} {one:>10,.0f} {two:>12,.0f} {two / one:>5.2f}x")
    print(f"\nCPU cores here: {os.cpu_count()}; CPU scaling on shared cores is not the point.\n"
          "On a GPU machine (one rank per GPU, batch_size per rank):\n"
          "  torchrun --standalone --nproc_per_node=8 -m rlrun algo=lm device=cuda\n"
          "  torchrun --standalone --nproc_per_node=8 -m rlrun experiment=ddpm/digits"
          " device=cuda\n"
          "On N nodes (run on every node; NODE0 is the first node's host name):\n"
          "  torchrun --nnodes=N --nproc_per_node=8 --rdzv_backend=c10d"
          " --rdzv_endpoint=NODE0:29500 --rdzv_id=myrun -m rlrun algo=lm device=cuda")


if __name__ == "__main__":
    main()
