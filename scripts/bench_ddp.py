"""Benchmark: LM tokens/s and DDPM images/s with 1 process (plain rlrun) and 2 (torchrun, DDP).

    python scripts/bench_ddp.py                 # 2 rounds, about 3 min on 2 cores
    python scripts/bench_ddp.py --rounds 1 --algos lm
    python scripts/bench_ddp.py --slurm         # also 2 ranks as one SLURM job with 2 tasks
                                                # (a cluster must be up: scripts/slurm_local.sh)

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


LAUNCHES = {  # name: the table's column
    "one": "1 process",
    "torchrun": "2 (torchrun)",
    "slurm": "2 (SLURM tasks)",
}


def run_once(algo: str, launch: str, out: Path) -> float:
    overrides, tag, _ = WORKLOADS[algo]
    rlrun = [sys.executable, "-m", "rlrun"]
    where = [f"hydra.run.dir={out}"]
    if launch == "torchrun":
        rlrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node=2", "-m", "rlrun"]
    elif launch == "slurm":  # one sweep job, its 2 tasks the ranks (docs/scaling.md)
        rlrun += ["-m", "hydra/launcher=slurm", "hydra.launcher.tasks_per_node=2"]
        where = [f"hydra.sweep.dir={out}", "hydra.sweep.subdir=run"]
    cmd = [*rlrun, *overrides, *COMMON, *where]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = out / "run" / "results.json" if launch == "slurm" else out / "results.json"
    if done.returncode != 0 or not result.is_file():
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    rec = json.loads(result.read_text())
    if rec.get("status") != "completed":
        raise SystemExit(f"{' '.join(cmd)}: {rec.get('status')}: {rec.get('error')}")
    return float(rec["metrics"][tag]["tail_mean"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--algos", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--slurm", action="store_true",
                    help="also 2 ranks as one SLURM job with 2 tasks (needs a cluster)")
    args = ap.parse_args()
    launches = ["one", "torchrun", *(["slurm"] if args.slurm else [])]
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for algo in args.algos:
                order = launches if r % 2 == 0 else launches[::-1]
                for launch in order:
                    v = run_once(algo, launch, Path(tmp) / f"{algo}_{launch}_{r}")
                    results.setdefault((algo, launch), []).append(v)
                    print(f"round {r}: {algo} {LAUNCHES[launch]}: {v:,.0f}", flush=True)
    head = "".join(f" {LAUNCHES[k]:>16}" for k in launches)
    print(f"\n{'workload':<16}{head}   (median of {args.rounds}; global throughput;"
          " ratio to 1 process)")
    for algo in args.algos:
        one = statistics.median(results[(algo, "one")])
        cells = f" {one:>16,.0f}"
        for launch in launches[1:]:
            v = statistics.median(results[(algo, launch)])
            cells += f" {f'{v:,.0f} ({v / one:.2f}x)':>16}"
        print(f"{f'{algo} ({WORKLOADS[algo][2]})':<16}{cells}")
    print(f"\nCPU cores here: {os.cpu_count()}; CPU scaling on shared cores is not the point.\n"
          "On a GPU machine (one rank per GPU, batch_size per rank):\n"
          "  torchrun --standalone --nproc_per_node=8 -m rlrun algo=lm device=cuda\n"
          "  torchrun --standalone --nproc_per_node=8 -m rlrun experiment=ddpm/digits"
          " device=cuda\n"
          "On N nodes (run on every node; NODE0 is the first node's host name):\n"
          "  torchrun --nnodes=N --nproc_per_node=8 --rdzv_backend=c10d"
          " --rdzv_endpoint=NODE0:29500 --rdzv_id=myrun -m rlrun algo=lm device=cuda\n"
          "On a SLURM cluster (N nodes x 8 GPUs, a rank per task):\n"
          "  rlrun -m hydra/launcher=slurm hydra.launcher.nodes=N"
          " hydra.launcher.tasks_per_node=8 hydra.launcher.gpus_per_node=8 algo=lm device=cuda")


if __name__ == "__main__":
    main()
