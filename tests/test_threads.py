"""`threads=`: auto (the default), N and null; what auto picks and why (core/threads.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlrun.algos.bandits import BanditAlgoConfig
from rlrun.algos.lm import LMConfig
from rlrun.algos.sac import SACConfig
from rlrun.core import threads
from rlrun.core.errors import ConfigError

from .conftest import compose_cfg, run_train


@pytest.fixture
def keep_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_default_is_auto():
    assert compose_cfg([]).threads == "auto"


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "two", "true", "Auto"])
def test_bad_threads_is_one_line_config_error(tmp_path, value):
    with pytest.raises(ConfigError, match=r"^threads=.* must be auto, null or an integer >= 1$"):
        run_train(tmp_path, [f"threads={value}"])


def test_auto_is_one_thread_for_small_operators(keep_torch_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    assert threads.set_threads("auto", SACConfig) == 1
    assert torch.get_num_threads() == 1


def test_explicit_n_and_null(keep_torch_threads):
    assert threads.set_threads(2, SACConfig) == 2 and torch.get_num_threads() == 2
    torch.set_num_threads(3)
    assert threads.set_threads(None, SACConfig) is None and torch.get_num_threads() == 3
    assert threads.set_threads(2, BanditAlgoConfig) is None  # NumPy only: torch is not touched
    assert torch.get_num_threads() == 3


def test_auto_follows_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.auto_threads(SACConfig) == (3, "OMP_NUM_THREADS")


def test_auto_counts_idle_cpus_for_large_operators(monkeypatch):
    """Two CPUs, one busy all the time: one idle CPU, so one thread for the LM."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_cpus", lambda: {0, 1})
    samples = iter([{0: (0, 0), 1: (0, 0)}, {0: (10, 10), 1: (0, 10)}])
    monkeypatch.setattr(threads, "_cpu_times", lambda cpus: next(samples))
    assert threads.auto_threads(LMConfig.spec) == (1, "1 of 2 CPUs idle at start")
    samples = iter([{0: (0, 0), 1: (0, 0)}, {0: (1, 10), 1: (2, 10)}])  # both mostly idle
    assert threads.idle_cpus(0) == 2
    samples = iter([{0: (0, 0), 1: (0, 0)}, {0: (10, 10), 1: (10, 10)}])  # both busy
    assert threads.idle_cpus(0) == 1


def test_cpu_times_reads_proc_stat():
    times = threads._cpu_times(threads._cpus())
    assert times and all(0 <= busy <= total for busy, total in times.values())


@pytest.mark.slow
def test_bench_threads_script_prints_its_table():
    """scripts/bench_threads.py, cut down to one short PPO run next to its CPU hog."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_threads.py"
    done = subprocess.run([sys.executable, str(script), "--rounds", "1", "--algos", "ppo",
                           "--conditions", "loaded", "--settings", "threads=1",
                           "--ppo-steps", "4096"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    row = [ln for ln in done.stdout.splitlines() if ln.startswith("| PPO CartPole-v1 |")]
    assert len(row) == 1 and "| loaded | `threads=1` |" in row[0] and row[0].endswith("| 1.00 |")
    assert float(row[0].split("|")[4]) > 0
