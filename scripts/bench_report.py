"""Indexing many runs: rlrun-report's DuckDB index against the report it replaced.

Makes N synthetic run dirs (results.json, .hydra/config.yaml and overrides.yaml,
scalars.parquet with a few tags x 100 points, and with --events TensorBoard event files of
the same scalars), then times, alternating in one process:

- old: the previous `rlrun-report` (src/rlrun/report.py at commit BASELINE, taken from git)
  with and without its PNG (which parses event files);
- new: a full index (no cache), an incremental re-index with nothing changed, one after 10
  runs changed, and the whole report (tables, summary.md, PNGs) on a warm index.

    python scripts/bench_report.py --runs 1000 --events
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BASELINE = "2ab8521"  # the last commit with the single-module report
TAGS = ("charts/episodic_return", "eval/return", "losses/value", "losses/policy",
        "charts/SPS")


def make_runs(root: Path, n: int, points: int = 100, events: bool = False,
              envs: tuple[str, ...] = ("Pendulum-v1",), algos: tuple[str, ...] = ("ppo",),
              lrs: tuple[float, ...] = (1e-3, 3e-4), seeds: int = 3, rng_seed: int = 0,
              shift: dict[str, float] | None = None) -> list[Path]:
    """`n` completed run dirs under root/sweep_<k>/<job>: every (algo, env, lr) setting with
    `seeds` seeds, returns that rise towards a level that depends on the setting (plus
    `shift[algo]`), so the statistics have something to find."""
    from rlrun.core.scalars import write_scalars

    rng = np.random.default_rng(rng_seed)
    settings = [(a, e, lr) for a in algos for e in envs for lr in lrs]
    dirs = []
    for i in range(n):
        algo, env, lr = settings[(i // seeds) % len(settings)]
        seed = i % seeds
        job = root / f"sweep_{i // 500}" / f"{i % 500}_algo={algo},env={env},lr={lr},seed={seed}"
        (job / ".hydra").mkdir(parents=True, exist_ok=True)
        steps = np.arange(1, points + 1) * 100
        level = {"Pendulum-v1": -150.0, "MountainCarContinuous-v0": 90.0,
                 "CartPole-v1": 500.0}.get(env, 1.0)
        start = {"Pendulum-v1": -1200.0, "MountainCarContinuous-v0": -30.0,
                 "CartPole-v1": 20.0}.get(env, 0.0)
        skill = 0.6 + (0.3 if lr == 1e-3 else 0.0) + (shift or {}).get(algo, 0.0)
        t0 = 1.7e9 + i
        series = {}
        for tag in TAGS:
            curve = start + (level - start) * skill * (1 - np.exp(-steps / (points * 25)))
            vals = curve + rng.normal(0, abs(level - start) * 0.05, points)
            series[tag] = (steps.tolist(), vals.tolist(), (t0 + steps / 1000).tolist())
        write_scalars(job, series)
        if events:
            _write_events(job, series)
        metrics = {}
        for tag, (_, vals, _) in series.items():
            tail = vals[-10:]
            metrics[tag] = {"last": vals[-1], "tail_mean": sum(tail) / len(tail),
                            "best": max(vals), "count": points, "step": int(steps[-1])}
        results = {"algo": algo, "env": env, "seed": seed, "status": "completed",
                   "steps": int(steps[-1]), "wall_time_s": points / 10, "device": "cpu",
                   "headline": "charts/episodic_return",
                   "objective": metrics["eval/return"]["last"],
                   "objective_metric": "eval/return (last)", "metrics": metrics}
        (job / "results.json").write_text(json.dumps(results))
        (job / ".hydra" / "config.yaml").write_text(
            f"algo:\n  name: {algo}\n  learning_rate: {lr}\n  gamma: 0.99\n"
            f"  total_steps: {int(steps[-1])}\nenv:\n  name: {env}\n  num_envs: 8\n"
            f"network:\n  hidden: [64, 64]\nseed: {seed}\nthreads: 1\n")
        (job / ".hydra" / "overrides.yaml").write_text(
            f"- algo={algo}\n- env={env}\n- algo.learning_rate={lr}\n- seed={seed}\n")
        dirs.append(job)
    return dirs


def _write_events(job: Path, series: dict) -> None:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(log_dir=str(job))
    for tag, (steps, vals, _) in series.items():
        for s, v in zip(steps, vals, strict=True):
            w.add_scalar(tag, v, s)
    w.close()


def _old_report():
    src = subprocess.run(["git", "show", f"{BASELINE}:src/rlrun/report.py"], check=True,
                         capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    path = Path(tempfile.mkdtemp()) / "old_report.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_report", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_report"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _quiet(fn, *a, **kw):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a, **kw)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--events", action="store_true",
                   help="also write event files (needed to time the old report's PNG)")
    p.add_argument("--dir", type=Path, default=None,
                   help="where the runs go (kept); an earlier --dir with --runs runs is reused")
    args = p.parse_args()
    from rlrun.report.cli import report
    from rlrun.report.index import cache_path, open_index

    root = args.dir or Path(tempfile.mkdtemp(prefix="bench_report_"))
    dirs = sorted(p.parent for p in root.glob("*/*/results.json"))
    if len(dirs) == args.runs:  # --dir of an earlier call: reuse its runs
        print(f"reusing {len(dirs)} runs under {root}")
    else:
        t = time.perf_counter()
        dirs = make_runs(root, args.runs, events=args.events,
                         envs=("Pendulum-v1", "MountainCarContinuous-v0"), algos=("ppo", "sac"))
        print(f"made {args.runs} runs in {time.perf_counter() - t:.1f} s under {root}")
    old = _old_report()
    out = Path(tempfile.mkdtemp())
    times: dict[str, list[float]] = {}

    def timed(name: str, fn) -> None:
        t0 = time.perf_counter()
        fn()
        times.setdefault(name, []).append(time.perf_counter() - t0)

    for r in range(args.repeats):
        timed("old report, tables only (--no-plot)",
              lambda: _quiet(old.report, root, None, "last", out, plot=False))
        if args.events:
            timed("old report with its PNG (parses event files)",
                  lambda: _quiet(old.report, root, None, "last", out, plot=True))
        cache_path(root).unlink(missing_ok=True)
        timed("new: full index (empty cache)", lambda: open_index([root]).close())
        timed("new: incremental re-index, nothing changed",
              lambda: open_index([root]).close())
        for d in dirs[r * 10:(r + 1) * 10]:
            os.utime(d / "results.json")
        timed("new: incremental re-index, 10 runs changed",
              lambda: open_index([root]).close())
        timed("new: whole report on a warm index (tables, summary.md, PNGs)",
              lambda: _quiet(report, [root], out=out))
    print(f"{args.runs} runs, {args.repeats} repeats, median (min-max) seconds:")
    for name, ts in times.items():
        print(f"  {name:62s} {statistics.median(ts):7.3f} ({min(ts):.3f}-{max(ts):.3f})")
    if args.dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    sys.exit(main())
