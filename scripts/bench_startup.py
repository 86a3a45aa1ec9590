"""Start-up of the CLI: `rlrun --help`, each time a fresh process, against the interpreter.

    python scripts/bench_startup.py               # 7 alternating rounds
    python scripts/bench_startup.py --rounds 15

The goal (issue 27): `rlrun --help` answers in under 1.5 s on an idle machine. Nothing on that
path may import torch (docs/cli.md); `import torch` alone takes about 1.5 s here, so a torch
import slipping onto the path shows at once. Three commands are timed in alternation, each
round in fresh processes: `python -c pass` (the interpreter's own start), `python -c "import
torch"` (what the help must not pay) and the `rlrun --help` console script. Medians and
ranges are printed; on a loaded machine all three grow together, so the ratio to the bare
interpreter says more than the seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 1.5


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    rlrun = shutil.which("rlrun", path=str(Path(sys.executable).parent)) or shutil.which("rlrun")
    if rlrun is None:
        sys.exit("bench_startup: error: no rlrun console script (pip install -e .)")
    cmds = {"python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "rlrun --help": [rlrun, "--help"]}
    for cmd in cmds.values():  # warm the file cache
        timed(cmd)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(args.rounds):
        for name, cmd in cmds.items():
            times[name].append(timed(cmd))
    base = statistics.median(times["python -c pass"])
    load = os.getloadavg()[0]
    print(f"{args.rounds} alternating rounds, fresh processes; 1-minute load average {load:.1f}"
          f" on {os.cpu_count()} CPUs")
    print("| command | median s | range s | vs bare interpreter |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| `{name}` | {med:.3f} | {min(ts):.3f}-{max(ts):.3f} | {med / base:.1f}x |")
    help_s = statistics.median(times["rlrun --help"])
    print(f"rlrun --help: {help_s:.2f} s median (goal: under {GOAL_S} s on an idle machine)"
          f" -> {'ok' if help_s < GOAL_S else 'OVER'}")


if __name__ == "__main__":
    main()
