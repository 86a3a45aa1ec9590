"""The figure scripts need the `plot` extra (matplotlib): without it each says so in one line
and exits with 2, before reading any run, instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURE_SCRIPTS = ["deep_rl_figure.py", "sutton_barto_ch2.py", "sutton_barto_ch6.py",
                  "lm_attention_report.py"]
# Runs a script as `python scripts/X.py ARGS` would, with `import matplotlib` failing as it
# does where the extra is not installed (a None entry in sys.modules makes it ImportError).
BLOCKED = ("import runpy, sys; sys.modules['matplotlib'] = None; sys.argv = sys.argv[1:];"
           " sys.path.insert(0, str(__import__('pathlib').Path(sys.argv[0]).parent));"
           " runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.mark.parametrize("script", FIGURE_SCRIPTS[:3])  # the 4th imports torch first: slower
def test_a_figure_script_without_matplotlib_names_the_plot_extra(script, tmp_path):
    proc = subprocess.run([sys.executable, "-c", BLOCKED, str(ROOT / "scripts" / script),
                           str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"{script}: error: matplotlib is not installed: pip install 'rlrun[plot]'"]
    assert proc.stdout == ""


@pytest.mark.parametrize("script", FIGURE_SCRIPTS)
def test_each_figure_script_says_it_needs_the_plot_extra(script):
    doc = (ROOT / "scripts" / script).read_text().split('"""')[1]
    assert "pip install 'rlrun[plot]'" in doc
