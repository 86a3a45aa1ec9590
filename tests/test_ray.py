"""`hydra/launcher=ray` (the `ray` extra) runs a local sweep. Needs `pip install 'rlrun[ray]'`;
run with `pytest -m ray` (.ci/run installs the extra and does)."""

from __future__ import annotations

import pytest

from tests.conftest import read_results, rlrun_cli

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install 'rlrun[ray]'")
pytestmark = pytest.mark.ray


def test_a_sweep_runs_on_a_local_ray_cluster(tmp_path):
    sweep = tmp_path / "sweep"
    out = rlrun_cli(["-m", "hydra/launcher=ray", "algo=ucb", "seed=0,1", "threads=1",
                     "env.num_runs=100", "env.steps=200", "logger.progress=none",
                     f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if (p / "results.json").is_file())
    assert [read_results(j)["status"] for j in jobs] == ["completed"] * 2
    assert sorted(read_results(j)["seed"] for j in jobs) == [0, 1]
