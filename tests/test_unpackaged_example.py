"""examples/unpackaged: an algorithm of one's own in a plain module beside a config dir, run
with `--config-dir` or `hydra.searchpath` (docs/extending.md, "Unpackaged config dirs").

Every `PYTHONPATH=. rlrun ...` command the README and docs/*.md show is run here, in
examples/unpackaged as the docs say to (`cd examples/unpackaged`), through `rlrun.cli.main`
in this process (with `.` on sys.path, as PYTHONPATH=. puts it), on a small budget. The
example's UCB is checked against rlrun's own `algo=ucb`: the same numbers on the same seed.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from rlrun import testing

from .conftest import read_results

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "unpackaged"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SMALL = ["env.num_runs=50", "env.steps=40", "logger.progress=none"]


def documented_commands() -> list[tuple[str, str]]:
    """(`page:line`, arguments) of each `PYTHONPATH=. rlrun ...` line in a code block; each
    must follow a `cd examples/unpackaged` in its block (or on its line)."""
    found = []
    for page in PAGES:
        in_block, here = False, False
        for n, line in enumerate(page.read_text().splitlines(), 1):
            text = line.strip()
            if text.startswith("```"):
                in_block, here = not in_block, False
                continue
            if not in_block:
                continue
            here = here or text.startswith("cd examples/unpackaged")
            m = re.search(r"PYTHONPATH=\. rlrun (.*)$", text)
            if m:
                where = f"{page.relative_to(ROOT)}:{n}"
                assert here, f"{where}: `PYTHONPATH=. rlrun` without `cd examples/unpackaged`"
                found.append((where, m.group(1)))
    return found


COMMANDS = list({args.split("#")[0].strip(): (where, args)  # each command once
                 for where, args in reversed(documented_commands())}.values())[::-1]


@pytest.fixture
def in_example(monkeypatch):
    """The working dir and sys.path of `cd examples/unpackaged && PYTHONPATH=. rlrun ...`;
    `rlrun.cli.main` in this process, Hydra's job logging taken off afterwards."""
    from rlrun.cli import main

    monkeypatch.chdir(EXAMPLE)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv("PWD", str(EXAMPLE))
    monkeypatch.setattr(sys, "argv", ["rlrun"])
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield main
    for h in root.handlers[:]:
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    sys.modules.pop("my_algos", None)


def test_the_docs_show_the_commands():
    shown = [args for _, args in COMMANDS]
    assert "--config-dir conf algo=my_ucb" in [a.split("#")[0].strip() for a in shown], shown
    assert any("hydra.searchpath" in a for a in shown) and any("resume=" in a for a in shown)


@pytest.mark.parametrize("where, args", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_a_documented_command_runs(where, args, in_example, tmp_path, capsys):
    main = in_example
    argv = [os.path.expandvars(a) for a in shlex.split(args, comments=True)]
    if "--help" in argv:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
        algo = next(ln for ln in capsys.readouterr().out.splitlines()
                    if ln.startswith("  algo:"))
        assert " my_ucb," in algo, algo
        return
    resume = next((a for a in argv if a.startswith("resume=")), None)
    if resume is not None:  # resume=outputs/my_ucb/bandit_testbed/<run>: a run made first
        first = tmp_path / "first"
        main(["--config-dir", "conf", "algo=my_ucb", *SMALL, f"hydra.run.dir={first}"])
        argv = [f"resume={first}" if a == resume else a for a in argv]
        main([*argv, "env.steps=60", "logger.progress=none"])  # a larger budget: it goes on
        assert read_results(first)["steps"] == 60
        return
    run = tmp_path / "run"
    main([*argv, *SMALL, f"hydra.run.dir={run}"])
    res = read_results(run)
    assert res["algo"] == "my_ucb" and res["status"] == "completed" and res["steps"] == 40
    assert not (EXAMPLE / "outputs").exists()  # everything went to the run dir


def test_my_ucb_gives_the_numbers_of_rlruns_ucb(tmp_path, monkeypatch):
    """The same seed, the same testbed and tie-breaking streams: every logged number equal
    to `algo=ucb`'s (the reference), with sample averages and with a constant step size."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for extra in ([], ["algo.step_size=0.1", "algo.c=1", "seed=3"]):
        small = ["env.num_runs=300", "env.steps=300", "threads=1", *extra]
        mine = testing.run(tmp_path, ["algo=my_ucb", *small], f"mine{len(extra)}",
                           config_dirs=[EXAMPLE / "conf"])
        ours = testing.run(tmp_path, ["algo=ucb", *small], f"ours{len(extra)}")
        assert mine["metrics"] == ours["metrics"]
        assert mine["metrics"]["bandit/optimal_action_all_steps"]["last"] > 0.5  # it learns
    sys.modules.pop("my_algos", None)


def test_my_ucb_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    conf, args = [EXAMPLE / "conf"], ["algo=my_ucb", "env.num_runs=100", "env.steps=200",
                                      "checkpoint_every_s=0", "threads=1"]
    whole = testing.run(tmp_path, args, "whole", config_dirs=conf)
    stopped = testing.interrupt(tmp_path, args, stop=90, config_dirs=conf)
    resumed = testing.resume(stopped, config_dirs=conf)
    assert resumed["metrics"] == whole["metrics"]
    testing.assert_same_state(stopped, tmp_path / "whole")
    sys.modules.pop("my_algos", None)
