"""Shared pieces: checkpoints, device resolution, logger summary, seeding, networks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlrun.core import checkpoint as ckpt
from rlrun.core.device import resolve_device
from rlrun.core.errors import CheckpointError, ConfigError, DeviceError, NonFiniteError
from rlrun.core.logger import Logger, LoggerConfig, lower_is_better
from rlrun.core.progress import Progress
from rlrun.core.seeding import rng_state, seed_everything, set_rng_state


def test_checkpoint_roundtrip_keeps_arrays_tensors_and_rng_states(tmp_path):
    gen = np.random.default_rng(3)
    state = {"q": np.arange(6.0).reshape(2, 3), "n": np.array([1, 2], dtype=np.int64),
             "w": torch.ones(2), "rng": gen.bit_generator.state, "nested": [1, (2.5, "x")],
             "flag": np.bool_(True), "global_rng": rng_state()}
    path = tmp_path / "c" / "last.pt"
    ckpt.save_checkpoint(path, state)
    back = ckpt.load_checkpoint(path)
    np.testing.assert_array_equal(back["q"], state["q"])
    assert back["n"].dtype == np.int64 and isinstance(back["q"], np.ndarray)
    assert torch.equal(back["w"], state["w"]) and back["nested"] == [1, (2.5, "x")]
    gen2 = np.random.default_rng()
    gen2.bit_generator.state = back["rng"]
    assert gen2.random() == gen.random()
    set_rng_state(back["global_rng"])


def test_checkpoint_keeps_zero_dimensional_arrays_zero_dimensional(tmp_path):
    # np.ascontiguousarray turns a 0-d array into shape (1,): PPO's observation normaliser
    # saves its count as one, and float() of a (1,) array is an error in NumPy 2
    ckpt.save_checkpoint(tmp_path / "c.pt", {"count": np.asarray(3.0), "v": np.zeros((2, 0))})
    back = ckpt.load_checkpoint(tmp_path / "c.pt")
    assert back["count"].shape == () and float(back["count"]) == 3.0
    assert back["v"].shape == (2, 0)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(path, {"v": 1})

    def boom(*a, **k):
        raise KeyboardInterrupt  # Ctrl-C between write and rename

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(path, {"v": 2})
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04garbage"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="unreadable"):
        ckpt.load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")


def test_weights_only_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": Path("x")}, path)  # a non-tensor class: not allowed when weights_only
    with pytest.raises(CheckpointError):
        ckpt.load_checkpoint(path)


def test_device_resolution(monkeypatch):
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto", uses_torch=False) == "cpu"
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError, match="device=cuda requested but"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda", index=1) == "cuda:1"
    with pytest.raises(DeviceError, match="index=5"):
        resolve_device("cuda", index=5)
    with pytest.raises(DeviceError, match="NumPy"):
        resolve_device("cuda", uses_torch=False)


def test_logger_summary_and_directions(tmp_path):
    log = Logger(tmp_path, LoggerConfig(tensorboard=False))
    for i in range(20):
        log.scalar("charts/episodic_return", float(i), i)
        log.scalar("losses/q", 100.0 - i, i)
    s = log.summary()
    assert s["charts/episodic_return"] == {"last": 19.0, "tail_mean": 18.5, "best": 19.0,
                                           "count": 20, "step": 19}
    assert s["losses/q"]["best"] == 81.0  # lower is better for losses
    assert lower_is_better("eval/val_ppl", ("eval/val_ppl",))  # declared by the algorithm
    assert not lower_is_better("eval/val_ppl") and not lower_is_better("bandit/optimal_action")
    with pytest.raises(NonFiniteError, match="losses/q became nan"):
        log.scalar("losses/q", float("nan"), 21)
    restored = Logger(tmp_path, LoggerConfig(tensorboard=False))
    restored.load_state_dict(log.state_dict())
    assert restored.summary() == log.summary()


def test_logger_event_file_holds_every_point_as_add_scalar_writes_it(tmp_path):
    """Scalars reach TensorBoard in batches (a step's tags as one event): the event file
    still holds every point with its step and float32 value, in order, as
    SummaryWriter.add_scalar writes them point by point, and the wall time it was logged at
    (a step's first tag's, for all its tags)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from rlrun.core import logger as logger_mod

    log = Logger(tmp_path / "batched", LoggerConfig())
    n = logger_mod.TB_BATCH_POINTS + 7  # more than one batch, the last one left to close()
    for i in range(n):
        log.scalar("bandit/average_reward", 0.1 * i, i)
        if i % 3 == 0:
            log.scalar("bandit/optimal_action", 1.0 / (i + 1), i)
        if i == 10:
            log.text("note", "between two steps", i)
    log.close()
    ref = SummaryWriter(str(tmp_path / "ref"))
    for tag, steps in log.steps.items():
        for step, value, t in zip(steps, log.series[tag], log.times[tag], strict=True):
            ref.add_scalar(tag, value, step, walltime=t)
    ref.close()
    got, want = (EventAccumulator(str(tmp_path / d), size_guidance={"scalars": 0}).Reload()
                 for d in ("batched", "ref"))
    assert got.Tags()["scalars"] == want.Tags()["scalars"]
    for tag in want.Tags()["scalars"]:
        a, b = got.Scalars(tag), want.Scalars(tag)
        assert [(e.step, e.value) for e in a] == [(e.step, e.value) for e in b]
        assert max(abs(x.wall_time - y.wall_time) for x, y in zip(a, b, strict=True)) < 0.01
    assert len(got.Scalars("bandit/average_reward")) == n
    assert "note/text_summary" in got.Tags()["tensors"]


def test_logger_config_is_checked():
    with pytest.raises(ConfigError, match="progress='fancy' must be one of auto, bar"):
        LoggerConfig(progress="fancy")


def test_progress_lines_when_not_a_tty(caplog):
    caplog.set_level(logging.INFO, logger="rlrun")
    p = Progress(total=10, start=0, headline="bandit/average_reward", mode="lines",
                 every_s=1e-9)
    for t in range(1, 11):
        p.update(t, 1.5)
    p.close()
    lines = [r.getMessage() for r in caplog.records]
    assert any("step 10/10" in ln and "bandit/average_reward=1.5" in ln for ln in lines)
    caplog.clear()
    p = Progress(total=5, start=0, headline="charts/episodic_return", mode="lines",
                 every_s=1e-9, unit="episode")
    p.update(5, -13.0)
    p.close()
    assert "episode 5/5 (100%)" in caplog.records[-1].getMessage()
    assert "episodes/s" in caplog.records[-1].getMessage()




@pytest.mark.parametrize("start", [0, 25_000])
def test_a_loop_that_overshoots_its_budget_keeps_the_bars_percentage(capsys, start):
    """PPO ends on a whole rollout (20480 steps for a budget of 20000), and a resumed run can
    start past it: the bar stretches to the last step instead of dropping to a bare count
    (tqdm's look once its count passes its total)."""
    p = Progress(total=20_000, start=start, headline="charts/episodic_return", mode="bar",
                 every_s=1.0)
    for step in (4096, 16384, 20480, 24576, 30000):
        if step > start:
            p.update(step, 1.0)
    p.close()
    last = capsys.readouterr().err.replace("\n", "\r").split("\r")
    last = [seg for seg in last if seg.strip()][-1]
    assert "100%" in last and "30000/30000" in last, last
def test_seeding_and_deterministic_flag():
    seed_everything(7, deterministic=True)
    try:
        a = (np.random.rand(), torch.rand(1).item())
        assert torch.are_deterministic_algorithms_enabled()
        seed_everything(7)
        assert (np.random.rand(), torch.rand(1).item()) == a
    finally:
        torch.use_deterministic_algorithms(False)


def test_mlp_from_config():
    from rlrun.core.config import validate
    from rlrun.nets import build_network
    from rlrun.schemas.networks import MLPConfig

    from .conftest import compose_cfg

    cfg = compose_cfg(["network=mlp"]).network
    net = build_network(cfg, in_dim=4, out_dim=2, hidden_sizes=[8, 8])
    assert net(torch.zeros(5, 4)).shape == (5, 2)
    assert sum(p.numel() for p in net.parameters()) == 4 * 8 + 8 + 8 * 8 + 8 + 8 * 2 + 2
    cfg.activation = "swish2"
    with pytest.raises(ConfigError, match="activation"):
        validate(cfg, MLPConfig, "network")


def test_core_is_the_ground_floor():
    """core/ imports no torch when imported, and nothing of rlrun above it, even lazily."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import rlrun.core

    core = Path(rlrun.core.__file__).parent
    names = sorted(p.stem for p in core.glob("*.py") if p.stem != "__init__")
    code = ("import sys\n" + "".join(f"import rlrun.core.{n}\n" for n in names)
            + "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
    for path in core.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rlrun"):
                assert node.module.startswith("rlrun.core"), f"{path.name}: {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("rlrun.") or \
                        alias.name.startswith("rlrun.core"), f"{path.name}: {alias.name}"


def test_deterministic_mode_switches_torchs_kernels_without_importing_inductor():
    """deterministic=true sets torch's deterministic-algorithms switch, but does not pay the
    ~2 s import of torch._inductor that torch.use_deterministic_algorithms makes (a fresh
    interpreter: pytest may have imported inductor already)."""
    code = ("import sys, torch\n"
            "from rlrun.core.seeding import seed_everything\n"
            "seed_everything(0, True)\n"
            "print(torch.are_deterministic_algorithms_enabled(),"
            " torch.is_deterministic_algorithms_warn_only_enabled(),"
            " 'torch._inductor' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["True", "False", "False"], out.stderr


def test_no_import_circles():
    """No module of rlrun reaches itself through its module-level imports, and the two
    circles issue 23 named (core/config <-> core/plugins, report/groups <-> report/index)
    are gone with lazy imports counted too. (Lazy calls from a schema's `check()` into the
    data reader that uses the schema are by design: schemas stay torch-free at import.)"""
    import ast
    from pathlib import Path

    import rlrun

    src = Path(rlrun.__file__).parent
    modules = {".".join(p.relative_to(src.parent).with_suffix("").parts).removesuffix(
        ".__init__"): p for p in src.rglob("*.py")}

    def graph(lazy: bool) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for name, path in modules.items():
            tree = ast.parse(path.read_text())
            skip = {id(n) for node in ast.walk(tree)
                    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                    or not lazy and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                    for n in ast.walk(node) if n is not node}
            deps = set()
            for node in ast.walk(tree):
                if id(node) in skip:
                    continue
                targets = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                for t in targets:
                    while t and t not in modules:
                        t = t.rpartition(".")[0]
                    if t and t != name and not name.startswith(t + "."):
                        deps.add(t)
            out[name] = deps
        return out

    def cycle_from(g: dict[str, set[str]], start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in g.get(node, ()):
                if nxt == start:
                    return [*path, start]
                if nxt not in seen and not start.startswith(nxt + "."):
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    eager = graph(lazy=False)
    assert len(eager) > 80
    for module in eager:
        assert cycle_from(eager, module) is None, " -> ".join(cycle_from(eager, module) or [])
    every = graph(lazy=True)
    for module in ("rlrun.core.config", "rlrun.core.plugins", "rlrun.report.groups",
                   "rlrun.report.index"):
        assert cycle_from(every, module) is None, " -> ".join(cycle_from(every, module) or [])
