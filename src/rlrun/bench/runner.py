"""Running the pairs through rlrun's own sweep command, in this process.

Each deep RL pair is one `rlrun -m algo=A env=E algo.total_steps=B seed=0,...,N-1` sweep
into OUT/runs/<algo>_<env>/ (the user's Hydra overrides, a launcher among them, pass
through); each book figure is `rlrun -m experiment=sutton_barto/figX_Y`. The numbers are
read back from the run dirs as rlrun-report reads them (results.json, scalars.parquet).

Under --vs sb3 each seed is a sweep of its own followed by SB3 on the same seed, in one
process order (rlrun, SB3, rlrun, SB3, ...) so that both see the same machine load. SB3 is
timed over `learn()`; rlrun over its run's `wall_time_s` minus the time its deterministic
evaluations took (SB3 evaluates nothing inside `learn()`), as scripts/bench_deep_rl.py does.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrun.bench.suite import Pair

QUIET = ("logger.progress=none",)


@dataclass
class Run:
    """One seed's numbers."""

    run_dir: str
    seed: int | None
    status: str
    steps: int
    wall_time_s: float
    final_return: float | None
    curve: tuple[list[float], list[float]] | None
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    eval_s: float = 0.0  # seconds its evaluations took (measured under --vs sb3 only)
    sb3_steps_per_s: float | None = None


@dataclass
class PairResult:
    pair: Pair
    runs: list[Run]
    wall_s: float  # the pair's whole time: every seed, start-up included
    exit_code: int


def rlrun_sweep(argv: list[str]) -> int:
    """`rlrun ARGV` in this process; its exit code (0 when it returns)."""
    from rlrun import cli

    saved = list(sys.argv)
    try:
        cli.main(argv)
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved


@contextlib.contextmanager
def eval_clock() -> Iterator[list[float]]:
    """Seconds spent in rlrun's deterministic evaluations while inside (one list element
    per evaluation), by timing `Evaluator.run` as scripts/bench_deep_rl.py does."""
    from rlrun.rl import evaluation

    spent: list[float] = []
    original = evaluation.Evaluator.run

    def timed(self: Any, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            spent.append(time.perf_counter() - t)

    evaluation.Evaluator.run = timed
    try:
        yield spent
    finally:
        evaluation.Evaluator.run = original


def read_runs(root: Path) -> list[Run]:
    """Every run dir under `root`, in job order."""
    from rlrun.core import results
    from rlrun.report.groups import natural_key
    from rlrun.report.index import find_run_dirs, flatten, read_curve

    out = []
    for d in sorted(find_run_dirs(root), key=natural_key):
        rec = results.read(d) or {}
        metrics = rec.get("metrics") or {}
        final = (metrics.get("eval/return") or {}).get("last")
        out.append(Run(str(d), rec.get("seed"), str(rec.get("status", "missing")),
                       int(rec.get("steps") or 0), float(rec.get("wall_time_s") or 0.0),
                       None if final is None else float(final), read_curve(d, "eval/return"),
                       metrics, flatten(_config(d))))
    return out


def _config(run_dir: Path) -> Any:
    import yaml

    path = run_dir / ".hydra" / "config.yaml"
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def run_pair(pair: Pair, out: Path, seeds: int, overrides: Sequence[str], smoke: bool,
             vs_sb3: bool, log: Any = print) -> PairResult:
    """Run one pair (every seed, or the figure's sweep) into OUT/runs/<name>/."""
    # absolute: a launcher's workers need not share this process's cwd (joblib's loky
    # reuses its workers across sweeps in one process, with the cwd they started in)
    root = out.absolute() / "runs" / pair.name.replace("/", "_")
    extra = [*QUIET, *(pair.smoke if smoke else ()), *overrides]
    t = time.perf_counter()
    if pair.kind == "exact":
        code = rlrun_sweep(["-m", *pair.overrides, f"hydra.sweep.dir={root}", *extra])
        return PairResult(pair, read_runs(root), time.perf_counter() - t, code)
    if not vs_sb3:
        code = rlrun_sweep(["-m", *pair.overrides, f"seed={','.join(map(str, range(seeds)))}",
                            f"hydra.sweep.dir={root}", *extra])
        return PairResult(pair, read_runs(root), time.perf_counter() - t, code)
    warm_up()
    runs, code = [], 0
    for seed in range(seeds):
        with eval_clock() as spent:
            code = max(code, rlrun_sweep(["-m", *pair.overrides, f"seed={seed}",
                                          f"hydra.sweep.dir={root}/seed_{seed}", *extra]))
        found = read_runs(root / f"seed_{seed}")
        for r in found:
            r.eval_s = sum(spent)
        sps = sb3_steps_per_s(pair, seed, [*pair.overrides, *extra])
        for r in found:
            r.sb3_steps_per_s = sps
        log(f"{pair.name} seed {seed}: rlrun {_train_sps(found):.0f} steps/s,"
            f" SB3 {sps:.0f} steps/s")
        runs += found
    return PairResult(pair, runs, time.perf_counter() - t, code)


def warm_up() -> None:
    """One-off imports out of the first timed run, as scripts/bench_classic_rl.py does:
    torch's lazily imported optimiser machinery (torch._dynamo, pulled in by the first
    optimiser) would otherwise land in whichever side runs first."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)


def _train_sps(runs: list[Run]) -> float:
    done = [r for r in runs if r.wall_time_s > r.eval_s]
    return sum(r.steps / (r.wall_time_s - r.eval_s) for r in done) / max(len(done), 1)


def sb3_steps_per_s(pair: Pair, seed: int, overrides: Sequence[str]) -> float:
    """SB3's `learn()` on the config rlrun ran (same hyperparameters and budget)."""
    from rlrun import testing
    from rlrun.bench import sb3

    cfg = testing.compose([*overrides, f"seed={seed}"])
    model = sb3.model(pair.algo, cfg, seed)
    t = time.perf_counter()
    model.learn(total_timesteps=int(cfg.algo.total_steps))
    return model.num_timesteps / (time.perf_counter() - t)
