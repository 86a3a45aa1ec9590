"""Shared fixtures: compose configs the way the CLI does, run `train` in a temp dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from rlrun import testing
from rlrun.core.config import register_resolvers
from rlrun.schemas import register_all
from rlrun.train import Interrupted, train  # noqa: F401 (re-exported to the test modules)

register_resolvers()
register_all()
# rlrun-report's index cache (and any other cache of rlrun's) goes to a folder of this test
# session, not the user's ~/.cache; subprocesses inherit it.
os.environ.setdefault("RLRUN_CACHE_DIR", tempfile.mkdtemp(prefix="rlrun-test-cache-"))


def compose_cfg(overrides: list[str] | None = None):
    return testing.compose(list(overrides or []))


def run_train(tmp_path: Path, overrides: list[str], name: str = "run") -> dict:
    return testing.run(tmp_path, overrides, name)


def interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch | None, overrides: list[str],
              stop: int, name: str = "b") -> Path:
    """Run as if Ctrl-C came at the first progress tick at or past step `stop` (the loop
    saves a checkpoint and raises Interrupted); returns the run dir. (`monkeypatch` is
    unused: kept so that older call sites read the same; rlrun.testing patches nothing.)"""
    return testing.interrupt(tmp_path, overrides, stop, name)


def interrupt_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch | None,
                         overrides: list[str], stop: int, name: str = "b") -> dict:
    """`interrupt`, then `resume=` that run dir to the end; returns the resumed results."""
    return testing.interrupt_and_resume(tmp_path, overrides, stop, name)


def rlrun_cli(args: list[str], cwd: Path, timeout: float = 120,
              **kw) -> subprocess.CompletedProcess:
    """Run the real console script in a subprocess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "rlrun", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, **kw)


def read_results(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "results.json").read_text())


@pytest.fixture
def small():
    """Overrides for a quick bandit run."""
    return ["env.num_runs=200", "env.steps=300"]


@pytest.fixture(autouse=True)
def _logging_handlers_stay_per_test():
    """In-process CLI runs let Hydra configure logging, with handlers on the streams pytest
    captured for that test; a later test in the same worker would then log into a closed
    stream ("--- Logging error ---"). Handlers a test added are removed after it."""
    import logging

    names = ("", "rlrun", "hydra")
    before = {n: list(logging.getLogger(n).handlers) for n in names}
    yield
    for n in names:
        logger = logging.getLogger(n)
        for handler in list(logger.handlers):
            if handler not in before[n]:
                logger.removeHandler(handler)


def sigint_as_in_a_terminal() -> None:
    """`preexec_fn` for a child a test sends Ctrl-C: SIGINT at its default, as a terminal
    starts a command. A shell starts background jobs with SIGINT ignored and children inherit
    that, so pytest run as `... &` (as a CI script may) would start rlrun deaf to it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
