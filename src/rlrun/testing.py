"""What tests need to exercise a loop through the public contract, ours and plugins' alike.

    from rlrun.testing import compose, run, interrupt, resume, assert_same_state

    def test_my_algo_resumes_exactly(tmp_path):
        overrides = ["algo=my_algo", "algo.total_steps=2000"]
        whole = run(tmp_path, overrides, name="whole")          # uninterrupted
        stopped = interrupt(tmp_path, overrides, stop=700)      # as Ctrl-C at step >= 700
        resumed = resume(stopped)                               # rlrun resume=DIR
        assert resumed["status"] == "completed"
        assert_same_state(tmp_path / "whole", stopped)          # every tracked tensor equal

No internals are patched: a stop comes through `train(..., stop_at=...)`, which the run
context turns into the same stop request that SIGINT makes (a checkpoint at the next tick,
then `Interrupted`). Configs compose as the `rlrun` command composes them, with installed
plugins' config dirs and any extra `config_dirs` (an unpackaged plugin's `conf/`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rlrun.core.errors import Interrupted
from rlrun.core.plugins import named_config_dirs

QUIET = ("logger.progress=none",)


def compose(overrides: Sequence[str] = (), config_dirs: Sequence[str | Path] = ()) -> DictConfig:
    """The config `rlrun OVERRIDES` would run (plus `--config-dir` dirs), without running."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rlrun.core.config import config_dir, register_resolvers
    from rlrun.schemas import register_all

    register_resolvers()
    register_all()
    extra = [f"hydra.searchpath=[{','.join(f'file://{Path(d).resolve()}' for d in config_dirs)}]"
             ] if config_dirs else []
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return hydra_compose("train", overrides=[*extra, *overrides])


def run(tmp_path: str | Path, overrides: Sequence[str], name: str = "run",
        config_dirs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Train `overrides` into `tmp_path/name` to the end; the results dict."""
    from rlrun.train import train

    cfg = compose([*QUIET, *overrides], config_dirs)
    with named_config_dirs(config_dirs):
        return train(cfg, run_dir=Path(tmp_path) / name)


def interrupt(tmp_path: str | Path, overrides: Sequence[str], stop: int, name: str = "b",
              config_dirs: Sequence[str | Path] = ()) -> Path:
    """Train as if Ctrl-C came at the first tick at or past step `stop`: the run saves a
    checkpoint and stops (`Interrupted`). Returns its run dir. AssertionError if the run
    ended before reaching `stop`."""
    from rlrun.train import train

    cfg = compose([*QUIET, *overrides], config_dirs)
    run_dir = Path(tmp_path) / name
    try:
        with named_config_dirs(config_dirs):
            train(cfg, run_dir=run_dir, stop_at=lambda step: step >= stop)
    except Interrupted:
        return run_dir
    raise AssertionError(f"the run ended before step {stop}: nothing was interrupted")


def resume(run_dir: str | Path, overrides: Sequence[str] = (),
           config_dirs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """`rlrun resume=RUN_DIR [overrides]` to the end; the results dict."""
    from rlrun.train import train

    cfg = compose([f"resume={Path(run_dir).resolve()}"], config_dirs)
    with named_config_dirs(config_dirs):  # trusted as `--config-dir` dirs are (core/trust.py)
        return train(cfg, overrides=list(overrides))


def interrupt_and_resume(tmp_path: str | Path, overrides: Sequence[str], stop: int,
                         name: str = "b", config_dirs: Sequence[str | Path] = ()
                         ) -> dict[str, Any]:
    """`interrupt`, then `resume` that run dir to the end; the resumed run's results."""
    return resume(interrupt(tmp_path, overrides, stop, name, config_dirs),
                  config_dirs=config_dirs)


def load_state(run_dir: str | Path) -> dict[str, Any]:
    """The loop state of a run's last checkpoint (`ctx.track`'s items, by name)."""
    from rlrun.core.checkpoint import load_checkpoint

    return load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["loop"]


def assert_same_state(a: str | Path, b: str | Path, keys: Sequence[str] | None = None) -> None:
    """AssertionError naming the first tracked item (tensor, array, number) that differs
    between the last checkpoints of two runs; `keys` limits the items compared."""
    sa, sb = load_state(a), load_state(b)
    for key in keys if keys is not None else sorted(set(sa) | set(sb)):
        assert key in sa and key in sb, f"{key}: tracked by one run only"
        _same(sa[key], sb[key], key)


def _same(x: Any, y: Any, where: str) -> None:
    import numpy as np

    if hasattr(x, "detach") and hasattr(y, "detach"):
        import torch

        assert x.shape == y.shape and torch.equal(x, y), f"{where} differs"
    elif isinstance(x, dict) and isinstance(y, dict):
        assert set(x) == set(y), f"{where}: keys differ"
        for k in x:
            _same(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, list | tuple) and isinstance(y, list | tuple):
        assert len(x) == len(y), f"{where}: lengths differ"
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            _same(u, v, f"{where}[{i}]")
    elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        assert np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True), f"{where} differs"
    else:
        assert x == y or x != x and y != y, f"{where}: {x!r} != {y!r}"
