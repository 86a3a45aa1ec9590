"""Every `$ rlrun ...` example in the README and docs/*.md prints the first line shown under it.

An example is a line `$ rlrun <args>` inside a ``` block (indented too, as in a list item);
the lines after it, up to the next `$ ` line or the end of the block, are its output.
Examples shown without output are not run. Each one runs through the real console script
(`python -m rlrun`, as `rlrun_cli` does) in a temporary directory, and only its first line of
output (stdout and stderr together) is compared, with log timestamps blanked. A run that
trains is stopped once that first line is out, so no example costs more than its start-up.

After a message changes on purpose: `RLRUN_UPDATE_DOCS=1 pytest tests/test_readme_examples.py`
rewrites the shown first lines to what rlrun prints now (then review the diff).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import rlrun

SRC = str(Path(rlrun.__file__).resolve().parents[1])
ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMESTAMP = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]")


@dataclass
class Example:
    path: Path
    line: int  # 1-based line number of the `$ rlrun` line
    command: str
    output: list[str]

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def find_examples(paths: list[Path] = DOCS) -> list[Example]:
    """Every `$ rlrun ...` line in a ``` block of `paths`, with the lines shown under it."""
    found: list[Example] = []
    for path in paths:
        in_block, current, indent = False, None, 0
        for n, line in enumerate(path.read_text().splitlines(), 1):
            text = line.lstrip()
            if text.startswith("```"):  # also indented, in a list item
                in_block, current, indent = not in_block, None, len(line) - len(text)
            elif in_block and text.startswith("$ "):
                current = None
                if shlex.split(text[2:], comments=True)[:1] == ["rlrun"]:
                    current = Example(path, n, text[2:], [])
                    found.append(current)
            elif current is not None:
                current.output.append(line[indent:])
    return found


def normalise(line: str) -> str:
    return TIMESTAMP.sub("[<time>]", line.rstrip())


def first_line(example: Example, cwd: Path) -> str:
    """Run the example; return its first line of output (stopping it there if it trains)."""
    args = shlex.split(example.command, comments=True)[1:]
    # the rlrun this test imported, also when it comes from a relative PYTHONPATH=src
    path = os.pathsep.join([SRC, *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("OMP_NUM_THREADS", None)  # the docs show what threads=auto says without it
    proc = subprocess.Popen([sys.executable, "-m", "rlrun", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
    finally:
        proc.kill()
        proc.communicate()
    return line.rstrip("\n")


def shown(example: Example) -> bool:
    """Examples with output, runnable here (one shown for a machine without a GPU is not)."""
    if not example.output or not example.output[0].strip():
        return False
    return not ("without a GPU" in example.command and torch.cuda.is_available())


def test_examples_are_found():
    examples = [e for e in find_examples() if shown(e)]
    assert "rlrun algo=foo" in [e.command for e in examples] and len(examples) >= 6, \
        [e.where() for e in examples]


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_examples_print_the_first_line_shown(tmp_path):
    examples = [e for e in find_examples() if shown(e)]
    dirs = [tmp_path / str(i) for i in range(len(examples))]
    for d in dirs:
        d.mkdir()
    with ThreadPoolExecutor(max_workers=4) as pool:
        actual = list(pool.map(first_line, examples, dirs))
    stale = [(e, got) for e, got in zip(examples, actual, strict=True)
             if normalise(got) != normalise(e.output[0])]
    if stale and os.environ.get("RLRUN_UPDATE_DOCS") == "1":
        _rewrite(stale)
    assert not stale, "documented output is stale (RLRUN_UPDATE_DOCS=1 rewrites it):\n" + \
        "\n".join(f"{e.where()}: $ {e.command}\n  shown:  {e.output[0]}\n  prints: {got}"
                  for e, got in stale)


def _rewrite(stale: list[tuple[Example, str]]) -> None:
    for path in {e.path for e, _ in stale}:
        lines = path.read_text().splitlines(keepends=True)
        for e, got in stale:
            if e.path == path:
                old = lines[e.line]  # the line after the command (0-based: e.line)
                lines[e.line] = old[:len(old) - len(old.lstrip())] + got + "\n"
        path.write_text("".join(lines))
