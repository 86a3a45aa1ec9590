"""Every `rlrun ...` command the README and docs/*.md show composes and validates.

tests/test_readme_examples.py runs the `$ rlrun` examples that show their output. The other
commands (in code blocks and `inline code`) train for minutes, so this test does what rlrun
does before training, in process: compose the config with Hydra and run rlrun's own
`preflight` on it (every check a run makes before its run dir exists; data paths aside,
since docs name the user's files). A command that needs an extra this install lacks (Box2D,
MuJoCo) is skipped, naming the extra. A renamed option, a moved preset or an out-of-range
value in a doc fails here. Sweeps (`-m a=1,2 b=3,4`) are checked at every value of each key;
Hydra's own keys (`hydra.*`, launchers) and commands with placeholders (`<run>`, `...`) or
`resume=` are left out.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
from pathlib import Path

import pytest
from omegaconf import DictConfig

from rlrun.core.errors import RlrunError
from rlrun.preflight import preflight

from .conftest import compose_cfg

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
INLINE = re.compile(r"`(rlrun(?: [^`]*)?)`")


def shown_commands(path: Path) -> list[tuple[str, str]]:
    """(`page:line`, command) for each `rlrun` command of a page: lines of code blocks (with
    `\\` continuations and `&&` chains) and inline code spans. `$ rlrun` examples are not
    included (test_readme_examples runs them)."""
    found, in_block, pending = [], False, ""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if text.startswith("```"):
            in_block, pending = not in_block, ""
            continue
        where = f"{path.relative_to(ROOT)}:{n}"
        if not in_block:
            found += [(where, m.group(1)) for m in INLINE.finditer(line)]
            continue
        text, pending = (pending + " " + text).strip(), ""
        if text.endswith("\\"):
            pending = text[:-1]
            continue
        found += [(where, seg.strip()) for seg in text.split("&&")
                  if seg.strip() == "rlrun" or seg.strip().startswith("rlrun ")]
    return found


def _split_sweep(value: str) -> list[str]:
    """`a,b,c` -> [a, b, c]; commas inside brackets (a list value) do not split."""
    parts, depth, cur = [], 0, ""
    for ch in value:
        depth += ch in "[{(" and 1 or (-1 if ch in "]})" else 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def override_sets(command: str) -> list[list[str]] | None:
    """The override lists a command composes (one per sweep point), or None when it is not
    one this test can check."""
    try:  # as the shell would pass them ($HOME expanded; `~` after `key=` is not)
        args = [os.path.expandvars(a) for a in shlex.split(command, comments=True)[1:]]
    except ValueError:
        return None
    if args[:2] == ["--cfg", "job"]:
        args = args[2:]
    args = [a for a in args if a not in ("-m", "--multirun") and not a.startswith("hydra")]
    if any(a.startswith("-") or "<" in a or "..." in a or "[overrides]" in a
           or a.startswith("resume=") for a in args):
        return None
    choices = []
    for a in args:
        key, eq, value = a.partition("=")
        choices.append([f"{key}={v}" for v in _split_sweep(value)] if eq else [a])
    # every value of every swept key once (the others at their first value), not the product
    n = max((len(c) for c in choices), default=1)
    return [[c[min(i, len(c) - 1)] for c in choices] for i in range(n)]


@functools.cache
def _check(overrides: tuple[str, ...]) -> None:
    check(list(overrides))  # a command shown on several pages is checked once


def check(overrides: list[str]) -> None:
    """What rlrun checks before training: its preflight, on the composed config."""
    cfg: DictConfig = compose_cfg(overrides)
    try:
        preflight(cfg, data=False, device=False)  # the docs show GPU commands too
    except RlrunError as e:
        extra = re.search(r"pip install '(rlrun\[\w+\])'", str(e))
        if extra and importlib.util.find_spec("Box2D" if "box2d" in extra.group(1)
                                              else "mujoco") is None:
            pytest.skip(f"needs {extra.group(1)}: {e}")
        raise


PLUGIN = importlib.util.find_spec("rlrun_reinforce") is not None
CASES = [(where, cmd, sets) for page in PAGES for where, cmd in shown_commands(page)
         if (sets := override_sets(cmd)) is not None]


def test_commands_are_found():
    commands = [cmd for _, cmd, _ in CASES]
    assert len(CASES) > 50 and "rlrun algo=ppo env=CartPole-v1" in commands, commands


# Commands the docs show as mistakes, with (a piece of) the one line rlrun answers them with.
SHOWN_AS_ERRORS = {"rlrun algo=dqn env=Pendulum-v1": "try algo=td3"}


@pytest.mark.parametrize("where, command, sets", CASES, ids=[c[0] for c in CASES])
def test_shown_command_composes_and_validates(where, command, sets):
    if command in SHOWN_AS_ERRORS:
        with pytest.raises(RlrunError, match=SHOWN_AS_ERRORS[command]):
            _check(tuple(sets[0]))
        return
    if "reinforce" in command and not PLUGIN:
        pytest.skip("the example plugin is not installed (pip install -e examples/rlrun-reinforce)")
    if "my_pg" in command:  # a plugin scripts/new_plugin.py makes: test_new_plugin.py runs these
        pytest.skip("a copy made by scripts/new_plugin.py; tests/test_new_plugin.py checks it")
    for overrides in sets:
        _check(tuple(overrides))


def test_a_stale_command_fails():
    """What a doc with a renamed key or a bad value would get."""
    with pytest.raises(Exception, match="epsilonn"):
        check(["algo.epsilonn=0.1"])
    with pytest.raises(Exception, match="epsilon"):
        check(["algo.epsilon=1.5"])
    with pytest.raises(RlrunError, match="needs a Gymnasium task"):
        check(["algo=sac", "env=bandit_testbed"])
    assert override_sets("rlrun -m a=1,2 b=[3,4] c=5,6,7 hydra.x=1") == [
        ["a=1", "b=[3,4]", "c=5"], ["a=2", "b=[3,4]", "c=6"], ["a=2", "b=[3,4]", "c=7"]]
