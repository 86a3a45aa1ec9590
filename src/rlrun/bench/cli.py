"""`rlrun-bench [--only PAIR...] [--seeds N] [--out DIR] [--vs sb3] [--smoke] [OVERRIDES]`.

Bad input is one line on stderr and exit code 2; a suite with a FAIL exits 1, else 0.
Light at start-up: torch, Hydra and the report load only once the pairs run.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from rlrun.core.errors import ConfigError, RlrunError

PROG = "rlrun-bench"
DEFAULT_SEEDS = 5
# launchers that run jobs elsewhere (other processes, other machines): --vs sb3 alternates
# rlrun and SB3 in this process, which those would not
_OTHER_LAUNCHER = "hydra/launcher="


class _Refused(Exception):
    """rlrun refused a pair's sweep (a bad override) and said why in its own one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's usage + error: one line instead
        _fail(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=(
        "Run rlrun's CPU benchmark suite (deep RL pairs at their rl-zoo budgets over several "
        "seeds, and the book's bandit and tabular figures as exact checks), judge each pair "
        "against its reference and write bench.md, bench.json and curves.png "
        "(docs/benchmark.md). Exit code 1 when a pair FAILs."))
    p.add_argument("--only", nargs="+", metavar="PAIR",
                   help="run these pairs only, e.g. ppo/CartPole-v1 sutton_barto/fig2_2")
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                   help=f"seeds per deep RL pair (default {DEFAULT_SEEDS}; a CI needs 3)")
    p.add_argument("--out", type=Path, default=Path("bench"), metavar="DIR",
                   help="where the runs, bench.md, bench.json and curves.png go (default bench)")
    p.add_argument("--vs", choices=("sb3",), default=None,
                   help="also time Stable-Baselines3 on each seed, alternating with rlrun "
                        "(pip install 'rlrun[bench]'), and add the steps/s ratio")
    p.add_argument("--smoke", action="store_true",
                   help="every pair for a few hundred steps: checks that the table is made; "
                        "verdicts are SMOKE, not compared")
    p.add_argument("--list", action="store_true", help="print the pairs and exit")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                   help="Hydra overrides for every run, e.g. hydra/launcher=joblib")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.only:  # `--only ppo/CartPole-v1 hydra/launcher=joblib`: overrides have a `=`
        args.overrides = [a for a in args.only if "=" in a] + args.overrides
        args.only = [a for a in args.only if "=" not in a] or None
    if args.seeds < 1:
        raise ConfigError(f"--seeds {args.seeds}: must be at least 1 (a 95% CI needs 3)")
    for a in args.overrides:  # the bench sets these for each pair: an override would
        key = a.lstrip("+~").split("=")[0]  # change what the verdict counts or reads
        if key in ("seed", "hydra.sweep.dir", "hydra.sweep.subdir"):
            raise ConfigError(f"{a}: rlrun-bench sets {key} itself; use"
                              f" {'--seeds N' if key == 'seed' else '--out DIR'}")
    if args.vs == "sb3":
        if importlib.util.find_spec("stable_baselines3") is None:
            raise ConfigError("--vs sb3 needs stable-baselines3, which is not installed:"
                              " pip install 'rlrun[bench]'")
        launcher = next((a for a in args.overrides if a.startswith(_OTHER_LAUNCHER)), None)
        if launcher:
            raise ConfigError(f"--vs sb3 alternates rlrun and SB3 in this process: drop"
                              f" {launcher} (or drop --vs sb3)")
    else:
        args.overrides = [*parallel_default(args.overrides, args.seeds), *args.overrides]
    return args


def parallel_default(overrides: list[str], seeds: int) -> list[str]:
    """The default launcher: the seeds of a pair in parallel on this machine's cores (joblib,
    one torch thread each), which brings the 5-seed suite within an hour on 2 cores (one
    job at a time it takes about 1.7x longer). Any launcher or `threads=` given wins; without
    the joblib launcher installed (the `sweep` extra) the seeds run one after another."""
    if any(a.lstrip("+").startswith(_OTHER_LAUNCHER) for a in overrides) or \
            importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None:
        return []
    jobs = max(1, min(os.cpu_count() or 1, seeds))
    threads = [] if any(a.lstrip("+").startswith("threads=") for a in overrides) \
        else ["threads=1"]
    return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}", *threads]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rlrun-bench` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse(argv)
        from rlrun.bench import suite

        if args.list:
            print("\n".join(suite.NAMES))
            sys.exit(0)
        pairs, notes = suite.select(args.only)
        for pair in pairs:  # a run dir holds one run: rlrun would refuse each job in it
            root = args.out / "runs" / pair.name.replace("/", "_")
            if root.is_dir() and any(root.iterdir()):
                raise ConfigError(f"--out {args.out}: {root} holds the runs of an earlier"
                                  " rlrun-bench; give another --out or remove it")
        code = run(args, pairs, notes, argv)
    except RlrunError as e:
        _fail(str(e))
    except _Refused:
        sys.exit(2)
    except OSError as e:
        from rlrun.core.errors import describe_os_error

        _fail(describe_os_error(e))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)


def run(args: argparse.Namespace, pairs: list[Any], notes: list[str], argv: list[str]) -> int:
    """Run the pairs, write the outputs, print the table; the exit code (1 on a FAIL)."""
    from datetime import datetime

    from rlrun.bench import output, references, runner

    refs, exact = references.load()
    for n in notes:
        print(f"{PROG}: {n}", file=sys.stderr)
    out = args.out
    started, t0 = datetime.now().isoformat(timespec="seconds"), time.perf_counter()
    rows, curves = [], {}
    vs = args.vs == "sb3"
    for pair in pairs:
        if vs and pair.kind == "exact":
            notes.append(f"{pair.name}: no SB3 counterpart (a book figure)")
        res = runner.run_pair(pair, out, args.seeds, args.overrides, args.smoke,
                              vs and pair.kind == "rl",
                              log=lambda s: print(f"{PROG}: {s}", file=sys.stderr, flush=True))
        if res.exit_code == 2 and not res.runs:  # rlrun refused the overrides: its line said why
            raise _Refused(pair.name)
        row = (exact_row(res, exact[pair.name], args.smoke) if pair.kind == "exact"
               else rl_row(res, refs[pair.name], args.smoke, args.seeds))
        rows.append(row)
        if pair.kind == "rl":  # a figure's jobs are different algorithms, not seeds
            curves[pair.name] = [r.curve for r in res.runs if r.curve]
        print(f"{PROG}: {pair.name}: {row.verdict} ({row.why}), {row.wall_s:.0f} s",
              file=sys.stderr, flush=True)
    meta = {"command": shlex.join([PROG, *argv]), "seeds": args.seeds, "smoke": args.smoke,
            "vs": args.vs, "overrides": args.overrides, "started": started,
            "wall_s": time.perf_counter() - t0, "machine": output.machine()}
    text = output.write(out, rows, meta, notes, curves, vs)
    print(text)
    print(f"\nwrote {out / 'bench.md'}, {out / 'bench.json'}"
          f"{', ' + str(out / 'curves.png') if (out / 'curves.png').is_file() else ''}")
    return 1 if any(r.verdict == "FAIL" for r in rows) else 0


def rl_row(res: Any, ref: Any, smoke: bool, seeds: int) -> Any:
    from rlrun.bench.output import Row
    from rlrun.bench.verdict import judge

    done = [r for r in res.runs if r.status == "completed" and r.final_return is not None]
    failed = max(seeds, len(res.runs)) - len(done)  # a job that left no run dir failed too
    j = judge([r.final_return for r in done], ref.band, failed=failed, smoke=smoke)
    s = j.summary
    sps = [r.steps / r.wall_time_s for r in done if r.wall_time_s > 0]
    train = [r.steps / (r.wall_time_s - r.eval_s) for r in done
             if r.wall_time_s > r.eval_s and r.sb3_steps_per_s]
    sb3 = [r.sb3_steps_per_s for r in done if r.sb3_steps_per_s]
    return Row(res.pair.name, "rl", j.verdict, j.why, s.n if s else 0, s.iqm if s else None,
               s.iqm_ci if s else None, s.values if s else [],
               f"{ref.value:g} over {ref.episodes} episodes, band >= {ref.band[0]:g}",
               _short(ref.source),
               res.wall_s, _mean(sps), _mean(sb3), _mean(train),
               runs=[{"run_dir": r.run_dir, "seed": r.seed, "status": r.status,
                      "steps": r.steps, "wall_time_s": r.wall_time_s,
                      "final_return": r.final_return, "eval_s": r.eval_s,
                      "sb3_steps_per_s": r.sb3_steps_per_s} for r in res.runs])


def exact_row(res: Any, ref: Any, smoke: bool) -> Any:
    from rlrun.bench.output import Row
    from rlrun.bench.verdict import judge_exact

    found = []
    for c in ref.checks:
        job = next((r for r in res.runs if all(_same(r.config.get(k), v)
                                                for k, v in c.job.items())), None)
        value = None
        if job is not None and job.status == "completed":
            value = (job.metrics.get(c.tag) or {}).get(c.stat)
        what = " ".join(f"{k}={v}" for k, v in c.job.items()) + f" {c.tag} ({c.stat})"
        found.append({"what": what, "value": value, "range": list(c.range), "book": c.book})
    j = judge_exact(found, smoke, failed=res.exit_code != 0 or not res.runs
                    or any(r.status != "completed" for r in res.runs))
    # steps/s: none (a bandit's steps, a tabular loop's episodes: not env steps of one run)
    return Row(res.pair.name, "exact", j.verdict, j.why, len(res.runs), None, None, [],
               f"{len(found)} numbers of the book", "Sutton & Barto 2018", res.wall_s,
               None, checks=found,
               runs=[{"run_dir": r.run_dir, "status": r.status, "steps": r.steps,
                      "wall_time_s": r.wall_time_s} for r in res.runs])


def _short(source: str) -> str:
    """`DLR-RM/rl-baselines3-zoo benchmark.md @ 0088472...` as `rl-zoo 0088472` in the table
    (bench.json and docs/benchmark.md keep the whole source)."""
    zoo = "DLR-RM/rl-baselines3-zoo benchmark.md @ "
    if not source.startswith(zoo):
        return source
    note = source.partition(" (")[2].partition(":")[0]  # "(LunarLander-v2: ...)": its row
    return f"rl-zoo {source[len(zoo):][:7]}" + (f", its {note} row" if note else "")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b))
    return str(a) == str(b)


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _fail(message: str) -> NoReturn:
    from rlrun.core.escape import one_line

    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
