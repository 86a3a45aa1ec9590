"""Shared fixtures: compose configs the way the CLI does, run `train` in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from rlrun.core.config import config_dir, register_resolvers
from rlrun.core.run import RunContext
from rlrun.train import Interrupted, train

register_resolvers()
# rlrun-report's index cache (and any other cache of rlrun's) goes to a folder of this test
# session, not the user's ~/.cache; subprocesses inherit it.
os.environ.setdefault("RLRUN_CACHE_DIR", tempfile.mkdtemp(prefix="rlrun-test-cache-"))


def compose_cfg(overrides: list[str] | None = None):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", overrides=list(overrides or []))


def run_train(tmp_path: Path, overrides: list[str], name: str = "run") -> dict:
    cfg = compose_cfg(["logger.progress=none", *overrides])
    return train(cfg, run_dir=tmp_path / name)


def interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str],
              stop: int, name: str = "b") -> Path:
    """Run as if Ctrl-C came at the first progress tick at or past step `stop` (the loop
    saves a checkpoint and raises Interrupted); returns the run dir."""
    original = RunContext.tick

    def stop_at(self, step, value, state_fn=None):
        if step >= stop:
            self.stop_requested = True
        return original(self, step, value, state_fn)

    monkeypatch.setattr(RunContext, "tick", stop_at)
    with pytest.raises(Interrupted):
        run_train(tmp_path, overrides, name)
    monkeypatch.setattr(RunContext, "tick", original)
    return tmp_path / name


def interrupt_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         overrides: list[str], stop: int, name: str = "b") -> dict:
    """`interrupt`, then `resume=` that run dir to the end; returns the resumed results."""
    run_dir = interrupt(tmp_path, monkeypatch, overrides, stop, name)
    return train(compose_cfg([f"resume={run_dir}"]))


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
