"""Benchmark: torch CPU threads for the small-network RL loops, idle and next to a CPU hog.

    python scripts/bench_threads.py     # about 5 min on an otherwise idle 2-core machine
    python scripts/bench_threads.py --rounds 1 --settings threads=auto threads=null \
        "threads=2 OMP_WAIT_POLICY=PASSIVE"
    python scripts/bench_threads.py --algos lm --conditions loaded

Each measurement is a fresh `python -m rlrun` process (OpenMP reads its settings once, when
torch loads): PPO on CartPole-v1 and SAC on Pendulum-v1 with their tuned values and short
budgets, under each setting: `threads=auto` (the default), `threads=1`, `threads=2`. A setting
is a list of overrides; upper-case `KEY=VALUE` words in it are environment variables instead.

The pace is read from the run's TensorBoard events: steps per second between the first point
(`charts/SPS`; the LM: `charts/tokens_per_s`) past warm-up and the last one, so process
start-up, set-up and the final evaluation do not count. A run still going after
--run-timeout seconds is stopped and timed on its points so far (0 if it had none). Within
a round the settings alternate, each round starting one setting later, so load from elsewhere
hits them alike; "loaded" repeats them while a busy-loop process (one core's worth of someone
else's work, left to the scheduler unless --pin-hog) runs beside them. The table gives the
median over rounds and the ratio to the best setting of its group.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALGOS = {  # each workload: its overrides, its name in the table, the scalar whose points time it
    "ppo": (["algo=ppo", "env=CartPole-v1", "algo.eval_episodes=1"], "PPO CartPole-v1",
            "charts/SPS"),
    "sac": (["algo=sac", "env=Pendulum-v1", "algo.learning_starts=1000", "algo.eval_episodes=1"],
            "SAC Pendulum-v1", "charts/SPS"),
    "lm": (["algo=lm", "algo.eval_batches=1", "algo.sample_chars=0", "algo.log_every=10"],
           "LM (optimizer steps/s)", "charts/tokens_per_s"),
}
SAC_LEARNING_STARTS = 1000
DEFAULT_SETTINGS = ["threads=auto", "threads=1", "threads=2"]


def run_once(algo: str, setting: str, args: argparse.Namespace, out: Path) -> float:
    """Train one short run under `setting`; return its env steps per second after warm-up."""
    overrides, label, tag = ALGOS[algo]
    words = setting.split()
    env_vars = dict(w.split("=", 1) for w in words if w.split("=", 1)[0].isupper())
    cli = [w for w in words if not w.split("=", 1)[0].isupper()]
    if algo == "ppo":
        budget, warm = args.ppo_steps, 2048  # the first iterations also pay one-off set-up
    elif algo == "sac":
        budget, warm = SAC_LEARNING_STARTS + args.sac_steps, SAC_LEARNING_STARTS + 100
    else:
        budget, warm = args.lm_steps, 20
    cmd = [sys.executable, "-m", "rlrun", *overrides, *cli, f"algo.total_steps={budget}",
           "algo.eval_every=0", "logger.progress=none",
           "checkpoint_every_s=0", "logger.flush_secs=1", f"hydra.run.dir={out}"]
    env = {**os.environ, **env_vars}
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=args.run_timeout)
    except subprocess.TimeoutExpired:  # a collapsed setting: its pace so far, if any
        try:
            return pace(out, tag, warm)
        except (KeyError, IndexError, ZeroDivisionError):
            return 0.0
    if done.returncode:
        sys.exit(f"{label} {setting} failed:\n{done.stderr[-2000:]}")
    return pace(out, tag, warm)


def pace(run_dir: Path, tag: str, warm: int) -> float:
    """Steps per second between the first point of `tag` at or past step `warm` and the last
    point (TensorBoard records each point's wall time)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    points = [p for p in acc.Scalars(tag) if p.step >= warm]
    first, last = points[0], points[-1]
    return (last.step - first.step) / (last.wall_time - first.wall_time)


def start_hog(pin: bool) -> subprocess.Popen:
    """A busy loop: one core's worth of someone else's work."""
    cpu = min(os.sched_getaffinity(0))
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if pin else None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--ppo-steps", type=int, default=25_000)
    p.add_argument("--sac-steps", type=int, default=400, help="steps after learning_starts")
    p.add_argument("--lm-steps", type=int, default=150, help="LM optimizer steps (--algos lm)")
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS)
    p.add_argument("--algos", nargs="+", default=["ppo", "sac"], choices=list(ALGOS))
    p.add_argument("--conditions", nargs="+", default=["idle", "loaded"],
                   choices=["idle", "loaded"])
    p.add_argument("--run-timeout", type=float, default=60,
                   help="seconds before a run is stopped and timed on its points so far")
    p.add_argument("--pin-hog", action="store_true", help="pin the hog to the first CPU")
    args = p.parse_args()

    results: dict[tuple[str, str, str], list[float]] = {}
    runs = 0
    t0 = time.perf_counter()
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for condition in args.conditions:
            hog = start_hog(args.pin_hog) if condition == "loaded" else None
            try:
                for r in range(args.rounds):
                    for algo in args.algos:
                        k = r % len(args.settings)  # each round starts one setting later
                        for s in args.settings[k:] + args.settings[:k]:
                            runs += 1
                            out = Path(tmp) / f"run{runs}"
                            sps = run_once(algo, s, args, out)
                            results.setdefault((algo, condition, s), []).append(sps)
                            print(f"  {condition:6} round {r} {algo} {s:30} {sps:8.0f} steps/s",
                                  file=sys.stderr, flush=True)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            load.append(os.getloadavg()[0])

    print(f"\n{len(os.sched_getaffinity(0))} CPUs; {args.rounds} round(s); median steps/s; "
          f"1-min load average at start and after each condition: "
          f"{', '.join(f'{x:.2f}' for x in load)}; {time.perf_counter() - t0:.0f} s in all\n")
    print("| workload | machine | setting | steps/s | vs best |")
    print("|---|---|---|---:|---:|")
    for algo in args.algos:
        for condition in args.conditions:
            med = {s: statistics.median(results[algo, condition, s]) for s in args.settings}
            best = max(med.values())
            for s in args.settings:
                print(f"| {ALGOS[algo][1]} | {condition} | `{s}` | {med[s]:.0f} "
                      f"| {med[s] / best:.2f} |")


if __name__ == "__main__":
    main()
