"""A non-editable install (a built wheel) finds its configs from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_wheel_ships_configs_and_runs_from_anywhere(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("rlrun-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rlrun/configs/train.yaml" in names
    assert "rlrun/configs/experiment/sutton_barto/fig2_2.yaml" in names
    assert "rlrun/configs/hydra/help/rlrun.yaml" in names
    assert "hydra_plugins/rlrun_plugins/rlrun_plugins.py" in names  # plugins' config dirs

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import rlrun.core.config as c, rlrun;"
                            "print(rlrun.__file__); print(c.config_dir())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    module_file, configs = where.stdout.split()
    assert module_file.startswith(str(target)) and configs.startswith(str(target))
    out = subprocess.run([sys.executable, "-m", "rlrun", "algo=ucb", "env.num_runs=20",
                          "env.steps=20", "logger.progress=none"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run,) = (elsewhere / "outputs" / "ucb" / "bandit_testbed").iterdir()
    assert (run / "results.json").is_file()
    # the installed console scripts, rlrun-eval among them (docs/eval.md)
    help_out = subprocess.run([str(target / "bin" / "rlrun-eval"), "--help"], cwd=elsewhere,
                              env=env, capture_output=True, text=True, timeout=300)
    assert help_out.returncode == 0 and "usage: rlrun-eval RUN_DIR" in help_out.stdout
    drift = subprocess.run([str(target / "bin" / "rlrun-drift"), "--help"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=300)
    assert drift.returncode == 0 and "usage: rlrun-drift RUN_DIR" in drift.stdout
    bandit = subprocess.run([str(target / "bin" / "rlrun-eval"), str(run)], cwd=elsewhere,
                            env=env, capture_output=True, text=True, timeout=300)
    assert bandit.returncode == 2 and "algo=ucb has no policy to replay" in bandit.stderr
    prep = subprocess.run([str(target / "bin" / "rlrun-prepare"), "--help"], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=300)
    assert prep.returncode == 0 and "usage: rlrun-prepare [INPUT ...]" in prep.stdout
    # rlrun-bench and its references.yaml, which the wheel must carry (docs/benchmark.md)
    bench = subprocess.run([str(target / "bin" / "rlrun-bench"), "--list"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0 and "ppo/CartPole-v1" in bench.stdout.split()
    refs = subprocess.run([sys.executable, "-c", "from rlrun.bench import references as r;"
                           "print(r.PATH); print(len(r.load()[0]))"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300)
    path, count = refs.stdout.split()
    assert path.startswith(str(target)) and int(count) == 8, refs.stderr


def test_the_extras_install_one_pygame():
    """pygame and pygame-ce both install the package `pygame`: one over the other breaks on
    uninstall. Gymnasium's extras (box2d: LunarLander) require pygame-ce, so the video extra
    names the same distribution, and nothing of ours names the other."""
    import importlib.metadata
    import re
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    ours = {re.match(r"[\w.-]+", req).group(0).lower() for reqs in extras.values()
            for req in reqs if req.lower().startswith("pygame")}
    gym_box2d = {re.match(r"[\w.-]+", req).group(0).lower()
                 for req in importlib.metadata.requires("gymnasium") or []
                 if req.lower().startswith("pygame") and 'extra == "box2d"' in req}
    assert gym_box2d == {"pygame-ce"}, gym_box2d  # what Gymnasium 1.4 requires
    assert ours == gym_box2d, f"the extras name {ours}, gymnasium[box2d] {gym_box2d}"
    installed = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    assert not {"pygame", "pygame-ce"} <= installed, "both pygame and pygame-ce are installed"
