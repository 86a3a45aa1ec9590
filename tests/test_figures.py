"""scripts/sutton_barto_ch2.py draws the chapter 2 figures from real (tiny) rlrun sweeps."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import rlrun_cli

pytest.importorskip("matplotlib")

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "sutton_barto_ch2.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sutton_barto_ch2", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


def sweep(tmp_path: Path, experiment: str, *overrides: str) -> Path:
    out = tmp_path / "sweep"
    proc = rlrun_cli(["-m", f"experiment=sutton_barto/{experiment}", *overrides,
                      "logger.progress=none", f"hydra.sweep.dir={out}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def table_rows(stdout: str) -> list[list[str]]:
    """Body rows of the Markdown table the script prints (header and rule dropped)."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("|")]
    assert len(lines) >= 2 and set(lines[1]) <= {"|", "-"}, stdout
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def assert_png(path: Path, min_width: int = 400) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_width and height >= min_width * 0.5
    assert len(data) > 20_000  # axes, lines and text, not a blank canvas


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_fig2_2_from_a_tiny_sweep(tmp_path, figures, capsys):
    out = sweep(tmp_path, "fig2_2", "env.num_runs=50", "env.steps=60")
    assert figures.main([str(out)]) == 0  # --figure auto: read from multirun.yaml
    png = out / "fig2_2.png"
    assert_png(png)
    rows = table_rows(capsys.readouterr().out)
    assert [r[0] for r in rows] == ["ε = 0 (greedy)", "ε = 0.01", "ε = 0.1"]
    from rlrun.report.index import read_curve

    for r in rows:  # the table holds each job's own numbers (60 steps: "last 60" is all)
        job = out / r[4]
        _, reward = read_curve(job, "bandit/average_reward")
        _, optimal = read_curve(job, "bandit/optimal_action")
        assert float(r[1]) == pytest.approx(sum(reward) / len(reward), abs=5e-4)
        assert float(r[2]) == pytest.approx(100 * sum(optimal) / len(optimal), abs=0.05)
        assert float(r[3]) == pytest.approx(float(r[1]), abs=1e-3)

    # An unfinished job is skipped with a warning; --out and --figure are honoured.
    results = next(out.glob("0_*")) / "results.json"
    results.write_text(results.read_text().replace('"completed"', '"interrupted"'))
    other = tmp_path / "figs" / "two.png"
    assert figures.main([str(out), "--figure", "fig2_2", "--out", str(other)]) == 0
    captured = capsys.readouterr()
    assert len(table_rows(captured.out)) == 2
    assert "warning" in captured.err and results.parent.name in captured.err
    assert_png(other)


@pytest.mark.slow  # tens of seconds: the slow tier (.ci/run runs it)
def test_fig2_6_parameter_study_from_a_tiny_sweep(tmp_path, figures, capsys):
    out = sweep(tmp_path, "fig2_6", "env.num_runs=20", "env.steps=30")
    assert figures.main([str(out)]) == 0
    assert_png(out / "fig2_6.png")
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == 25
    by_curve: dict[str, list[str]] = {}
    for r in rows:
        by_curve.setdefault(r[1], []).append(r[2])
    assert by_curve == {
        "ε": ["1/128", "1/64", "1/32", "1/16", "1/8", "1/4"],
        "α": ["1/32", "1/16", "1/8", "1/4", "1/2", "1", "2"],
        "c": ["1/16", "1/8", "1/4", "1/2", "1", "2", "4"],
        "Q₀": ["1/4", "1/2", "1", "2", "4"],
    }


def test_no_usable_jobs_is_a_one_line_error(tmp_path, figures, capsys):
    (tmp_path / "0_job" / ".hydra").mkdir(parents=True)
    (tmp_path / "0_job" / ".hydra" / "config.yaml").write_text("algo: {name: ucb}\n")
    assert figures.main([str(tmp_path), "--figure", "fig2_4"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no usable jobs")
    assert figures.main([str(tmp_path)]) != 0  # no multirun.yaml: cannot tell the figure
    assert "--figure" in capsys.readouterr().err
