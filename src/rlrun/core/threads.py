"""`threads=`: how many CPU threads torch's operators use in this run.

Why not torch's own default (one thread per core): its OpenMP threads spin while they wait for
each other, and every operator needs all of them. When another process is busy on one of the
cores, each operator waits for a time slice of that core. On a 2-core machine with one busy
loop beside the run, two threads made PPO on CartPole 3.6x and SAC on Pendulum 13x slower
than one, and the small LM 12x slower under other jobs' load; idle, two threads made SAC 1.16x
faster and PPO slower (0.88x). Numbers: docs/performance.md (`scripts/bench_threads.py`).

So `threads=auto` (the default) uses
- one thread for loops whose operators are small (every RL family: networks of 64-256 units
  on batches of a few hundred rows), where a thread team costs more than it gains;
- for loops whose spec declares `parallel_ops=True` (the LM, DDPM: large matrix products),
  one thread per CPU that is idle when the run starts (sampled from /proc/stat over 0.1 s),
  at least one;
- `OMP_NUM_THREADS` instead, when the environment sets it (a cluster job script, say).
`threads=N` uses N threads; `threads=null` leaves torch's default (one per core) alone.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

log = logging.getLogger("rlrun")

AUTO = "auto"


def max_threads() -> int:
    """The most threads `threads=N` may ask for: 4 per CPU of this machine (more only adds
    contention; 100,000 made the OS refuse to start threads, then crashed the process)."""
    return 4 * (os.cpu_count() or 1)


def valid(value: Any) -> bool:
    """Whether `value` is a `threads=` setting: auto, null or an integer in [1, max_threads]."""
    if value is None or value == AUTO:
        return True
    return isinstance(value, int) and not isinstance(value, bool) and \
        1 <= value <= max_threads()


def set_threads(value: Any, spec: Any) -> int | None:
    """Apply `threads=` to torch (for algorithms that use it); return the thread count set,
    or None where torch's default was left alone."""
    if value is None or not spec.uses_torch:
        return None
    n, why = (int(value), "") if value != AUTO else auto_threads(spec)
    import torch

    torch.set_num_threads(n)
    if why:
        log.info("threads=auto: %d torch thread%s (%s)", n, "s" * (n > 1), why)
    return n


def auto_threads(spec: Any) -> tuple[int, str]:
    """`threads=auto`: the thread count for this algorithm here and now, and why."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) >= 1:
        return int(env), "OMP_NUM_THREADS"
    if not spec.parallel_ops:
        return 1, "small operators; threads=N to change"
    idle = idle_cpus()
    return idle, f"{idle} of {len(_cpus())} CPUs idle at start"


def idle_cpus(interval: float = 0.1) -> int:
    """How many of this process's CPUs are idle: the sum of their idle fractions over
    `interval` seconds (from /proc/stat; from the load average where there is none), rounded,
    at least 1."""
    cpus = _cpus()
    try:
        before = _cpu_times(cpus)
        time.sleep(interval)
        after = _cpu_times(cpus)
    except OSError:
        return max(1, len(cpus) - math.ceil(os.getloadavg()[0] - 0.5))
    idle = 0.0
    for cpu, (busy1, total1) in after.items():
        busy0, total0 = before.get(cpu, (busy1, total1))
        if total1 > total0:
            idle += 1 - (busy1 - busy0) / (total1 - total0)
    return max(1, min(len(cpus), round(idle)))


def _cpus() -> set[int]:
    """The CPUs this process may run on (a cluster job or `taskset` may allow fewer)."""
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))


def _cpu_times(cpus: set[int]) -> dict[int, tuple[int, int]]:
    """(busy, total) clock ticks of each CPU in `cpus`, from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq ...
                out[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out
