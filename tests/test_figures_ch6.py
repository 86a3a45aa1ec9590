"""scripts/sutton_barto_ch6.py draws the chapter 6 figures from real (tiny) rlrun sweeps.

The sweeps go through the real CLI so that the script is tested against what `rlrun -m`
actually writes (sweep dir names, .hydra/config.yaml, event files), not a mock of it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .test_figures import assert_png, sweep, table_rows

pytest.importorskip("matplotlib")

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "sutton_barto_ch6.py"


@pytest.fixture(scope="module")
def figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sutton_barto_ch6", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_ex6_2_from_a_tiny_sweep(tmp_path, figures, capsys):
    # The points set algo.episodes=100 themselves; `++` because the sweep's first
    # composition (before the points are applied) has no algo.episodes to override.
    out = sweep(tmp_path, "ex6_2", "env.num_runs=5", "++algo.episodes=10")
    assert figures.main([str(out)]) == 0
    assert_png(out / "ex6_2.png")
    stdout = capsys.readouterr().out
    header = next(ln for ln in stdout.splitlines() if ln.startswith("|"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["curve", "RMS @ 0", "RMS @ 10",
                                                                  "job"]
    rows = table_rows(stdout)
    assert [r[0] for r in rows] == ["TD α=0.05", "TD α=0.1", "TD α=0.15", "MC α=0.01",
                                    "MC α=0.02", "MC α=0.03", "MC α=0.04"]
    for r in rows:  # every curve starts from V = 0.5: RMS sqrt(5/90) = 0.2357
        assert r[1] == "0.2357" and 0.0 < float(r[2]) < 0.3


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_fig6_4_from_a_tiny_sweep(tmp_path, figures, capsys):
    out = sweep(tmp_path, "fig6_4", "env.num_runs=5", "algo.episodes=20")
    png = tmp_path / "figs" / "cliff.png"
    assert figures.main([str(out), "--out", str(png)]) == 0
    assert_png(png)
    rows = table_rows(capsys.readouterr().out)
    assert [r[0] for r in rows] == ["Sarsa", "Q-learning", "Expected Sarsa"]
    for r in rows:  # return over the last 20 episodes, greedy return and length
        assert float(r[1]) < -13.0 and float(r[2]) <= -13.0 and float(r[3]) >= 13.0

    # An unfinished job is skipped with a warning; --figure is honoured.
    results = next(out.glob("1_*")) / "results.json"
    results.write_text(results.read_text().replace('"completed"', '"interrupted"'))
    assert figures.main([str(out), "--figure", "fig6_4", "--window", "1"]) == 0
    captured = capsys.readouterr()
    assert [r[0] for r in table_rows(captured.out)] == ["Sarsa", "Expected Sarsa"]
    assert "warning" in captured.err and results.parent.name in captured.err
    assert_png(out / "fig6_4.png")


def test_fig6_5_from_a_tiny_sweep(tmp_path, figures, capsys):
    out = sweep(tmp_path, "fig6_5", "env.num_runs=50", "algo.episodes=20")
    assert figures.main([str(out)]) == 0
    assert_png(out / "fig6_5.png")
    rows = table_rows(capsys.readouterr().out)
    assert [r[0] for r in rows] == ["Q-learning", "Double Q-learning"]
    for r in rows:
        assert 0.0 <= float(r[1]) <= 100.0 and r[4] == "-"  # no episode 100 in 20 episodes


def test_moving_average_is_trailing(figures):
    import numpy as np

    got = figures.moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2)
    assert got.tolist() == [1.0, 2.0, 4.0, 6.0]


def test_no_usable_jobs_is_a_one_line_error(tmp_path, figures, capsys):
    (tmp_path / "0_job" / ".hydra").mkdir(parents=True)
    (tmp_path / "0_job" / ".hydra" / "config.yaml").write_text("algo: {name: sarsa}\n")
    assert figures.main([str(tmp_path), "--figure", "fig6_4"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no usable jobs")
    assert figures.main([str(tmp_path)]) != 0  # no multirun.yaml: cannot tell the figure
    assert "--figure" in capsys.readouterr().err
