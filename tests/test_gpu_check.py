"""scripts/gpu_check.sh: every family on the GPU beside the CPU; its --dry-run rehearses the
same commands on the CPU (tiny budgets, torchrun with 2 gloo processes), which CI runs here,
where no GPU has ever been lent."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
FAMILIES = ["bandits", "td_control", "td_prediction", "n_step_td", "dp", "mc", "ppo", "a2c",
            "dqn", "sac", "td3", "ddpg", "sac_compile", "lm", "lm_moe", "lm_torchrun",
            "text_classifier", "ddpm", "ddpm_torchrun"]
NUMPY = {"bandits", "td_control", "td_prediction", "n_step_td", "dp", "mc"}


def gpu_check(*args: str, python: str = sys.executable, timeout: float = 60,
              **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "GPU_CHECK_DIR")}
    environ.update(PYTHON=python, **env)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=environ, timeout=timeout, cwd=ROOT)


def table(stdout: str) -> dict[str, list[str]]:
    """The rows of the printed table, by check name."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in FAMILIES:
            rows[cells[0]] = cells
    return rows


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine lists GPUs")
def test_without_a_gpu_it_says_so_in_one_line_and_exits_2():
    out = gpu_check()
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "no GPU here" in out.stderr
    assert "--dry-run" in out.stderr


def test_bad_arguments_are_one_line_and_exit_2():
    for args, named in ((["--bogus"], "--bogus"), (["--only"], "--only")):
        out = gpu_check(*args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert out.stderr.startswith("gpu_check: error:") and named in out.stderr
    out = gpu_check(DRY_RUN="yes")
    assert out.returncode == 2 and "DRY_RUN=yes" in out.stderr


def test_a_failing_command_is_named_and_the_script_exits_1(tmp_path):
    """An interpreter that fails the bandit run (as a broken CUDA path would): the run is
    named at the end, with its output, and the exit code is 1."""
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
case " $* " in *" -m rlrun "*algo=epsilon_greedy*) echo "boom: CUDA error" >&2; exit 3;; esac
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    out = gpu_check("--dry-run", "--only", "bandits", python=str(fake))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "bandits (numpy) failed, exit 3" in out.stdout and "boom: CUDA error" in out.stdout
    assert "FAILED (exit 3)" in table(out.stdout)["bandits"]
    assert out.stderr.strip().startswith("gpu_check: 1 command(s) failed: bandits (numpy)")


@pytest.mark.slow  # 19 rlrun processes, torch.compile among them: about 4 minutes on 2 cores
def test_dry_run_runs_every_family_and_prints_its_line(tmp_path):
    shown = (ROOT / "docs" / "performance.md").read_text()
    command = "scripts/gpu_check.sh --dry-run"
    assert command in shown  # the command the docs show is the one run here
    out = gpu_check(*command.split()[1:], timeout=900, GPU_CHECK_DIR=str(tmp_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "gpu_check: every command ran" in out.stdout
    rows = table(out.stdout)
    assert list(rows) == FAMILIES
    for name, cells in rows.items():
        assert cells[1] == ("numpy (CPU)" if name in NUMPY else "cpu"), cells
        assert re.fullmatch(r"[\d,]+", cells[2]) and cells[2] != "0", cells  # steps/s
    for name, unit in (("lm", "tok/s"), ("lm_moe", "tok/s"), ("text_classifier", "tok/s"),
                       ("ddpm", "img/s"),
                       ("ppo", "SPS"), ("sac_compile", "SPS")):
        assert rows[name][3].endswith(unit), rows[name]
    for name in ("lm_torchrun", "ddpm_torchrun"):  # a real process group: 2 gloo ranks
        rec = json.loads((tmp_path / f"{name}-cpu" / "results.json").read_text())
        assert rec["world_size"] == 2 and rec["status"] == "completed"
    rec = json.loads((tmp_path / "sac_compile-cpu" / "results.json").read_text())
    assert rec["status"] == "completed" and rec["device"] == "cpu"
    assert "compile: true" in (tmp_path / "sac_compile-cpu" / ".hydra" / "config.yaml").read_text()


def test_commands_past_the_time_budget_are_listed_as_not_run():
    """A lent GPU machine gives about 10 minutes: what the budget leaves out fails the check,
    named, rather than running on past the lease."""
    out = gpu_check("--dry-run", "--only", "bandits,ppo", GPU_CHECK_BUDGET="0")
    assert out.returncode == 1, out.stdout + out.stderr
    rows = table(out.stdout)
    assert rows["bandits"][2] == rows["ppo"][2] == "not run (time)"
    assert "failed: bandits (numpy) not run; ppo (cpu) not run (logs in" in out.stderr
