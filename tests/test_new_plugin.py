"""scripts/new_plugin.py NAME: a renamed copy of examples/rlrun-reinforce that passes its own
tests next to the example (docs/extending.md, "The commands").

The copy is searched for every name of the example (with this file's own list, not the
script's), and its tests run against it where it was written, install-free: its `src` on
PYTHONPATH and its entry point in a dist-info folder, which is all that `pip install -e`
gives importlib.metadata. The example stays installed beside it (as CI has it), so a name
the copy shared with the example would shadow or be shadowed. The `slow` test builds the
copy's wheel, installs it into a folder and runs all its tests against that.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "rlrun-reinforce"
NAME = "my_pg"
# Every way the example is named, found by reading it (16 references in issue 22's count):
OLD = [r"rlrun_reinforce", r"rlrun-reinforce", r"ReinforceConfig", r"examples/",
       r"(?<![a-z_])reinforce(?![a-z_])", r"(?<![A-Za-z])Corridor-v0", r"env=corridor\b",
       r"name: corridor\b", r"network=linear\b", r"\bcorridor\.yaml", r"\blinear\.yaml",
       r"schema/algo/reinforce"]
# The copy's tests that run by default, the ones that train nothing (all of them in `slow`):
# its schema registered and composed through its entry point, its env id, its loop's module
FAST = "schema or rewards or returns_to_go"


def _script():
    spec = importlib.util.spec_from_file_location("new_plugin",
                                                  ROOT / "scripts" / "new_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("plugins") / "rlrun-my-pg"
    assert _script().main([NAME, "--dest", str(dest)]) == 0
    return dest


def _fake_install(dest: Path, site: Path) -> dict[str, str]:
    """What `pip install -e DEST` gives Python, without pip: the package importable and its
    entry point listed (importlib.metadata reads dist-info folders on sys.path)."""
    info = site / "rlrun_my_pg-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rlrun-my-pg\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[rlrun.plugins]\n{NAME} = rlrun_my_pg\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(dest / "src"), str(site)])}


def _pytest(dest: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", str(dest / "tests"), *args], cwd=dest, env=env,
                          capture_output=True, text=True, timeout=600)


def test_every_name_of_the_example_is_renamed(copy):
    example = {p.relative_to(EXAMPLE) for p in EXAMPLE.rglob("*") if p.is_file()
               and "__pycache__" not in p.parts and ".egg-info" not in str(p)}
    files = sorted(p.relative_to(copy) for p in copy.rglob("*") if p.is_file())
    assert len(files) == len(example), files
    assert {str(f) for f in files} >= {
        "pyproject.toml", "src/rlrun_my_pg/__init__.py", "src/rlrun_my_pg/my_pg.py",
        "src/rlrun_my_pg/schema.py", "configs/algo/my_pg.yaml",
        "configs/env/my_pg_corridor.yaml", "configs/network/my_pg_linear.yaml",
        "configs/tuned/my_pg/CartPole-v1.yaml", "configs/tuned/my_pg/my_pg_corridor.yaml",
        "tests/test_my_pg.py"}
    left = [f"{f}:{i}: {line.strip()}" for f in files
            for i, line in enumerate((copy / f).read_text().splitlines(), 1)
            if any(re.search(pattern, line) for pattern in OLD)]
    left += [str(f) for f in files
             if re.search(r"reinforce|(?:^|/)(?:corridor|linear)\.yaml", str(f))]
    assert not left, "\n".join(left)
    text = (copy / "pyproject.toml").read_text()
    assert 'name = "rlrun-my-pg"' in text and 'my_pg = "rlrun_my_pg"' in text
    assert 'packages = ["src/rlrun_my_pg"]' in text and '"rlrun_my_pg/configs"' in text
    assert 'register("algo", "my_pg", MyPgConfig)' in \
        (copy / "src" / "rlrun_my_pg" / "__init__.py").read_text()
    assert "id: rlrun_my_pg.envs:MyPgCorridor-v0" in \
        (copy / "configs" / "env" / "my_pg_corridor.yaml").read_text()
    assert "  - /schema/algo/my_pg@_here_" in (copy / "configs/algo/my_pg.yaml").read_text()


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_the_copys_tests_pass_where_it_was_written(copy, tmp_path):
    out = _pytest(copy, _fake_install(copy, tmp_path / "site"), "-k", FAST)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert re.search(r"\b3 passed\b", out.stdout), out.stdout[-500:]  # nothing skipped


@pytest.fixture
def registered(copy, tmp_path, monkeypatch):
    """The copy as an installed plugin of this process (as `pip install -e` makes it), then
    gone again."""
    from rlrun.core import plugins

    _fake_install(copy, tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(copy / "src"))
    monkeypatch.setattr(sys, "argv", ["rlrun"])
    plugins.plugin_config_dirs.cache_clear()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield copy
    monkeypatch.undo()
    plugins.plugin_config_dirs.cache_clear()
    for name in [m for m in sys.modules if m.startswith("rlrun_my_pg")]:
        sys.modules.pop(name)
    for h in root.handlers[:]:  # Hydra's job logging, when the CLI ran
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def test_the_copy_composes_and_passes_preflight_beside_the_example(registered):
    """Its algo, env (with its tuned values) and network configs, as `rlrun` finds them
    through the copy's entry point, with the example's still installed."""
    from rlrun import testing
    from rlrun.preflight import preflight

    cfg = testing.compose(["algo=my_pg", "env=my_pg_corridor", "network=my_pg_linear"])
    plan = preflight(cfg)  # pairing, the network's fit, the env id's module
    assert plan.schema.__module__ == "rlrun_my_pg.schema" and plan.spec.goal == "max"
    assert cfg.algo.loop == "rlrun_my_pg.my_pg.run"
    assert cfg.env.id == "rlrun_my_pg.envs:MyPgCorridor-v0"
    assert cfg.network._target_ == "rlrun_my_pg.nets.Linear"
    assert cfg.algo.total_steps == 20000  # configs/tuned/my_pg/my_pg_corridor.yaml
    if importlib.util.find_spec("rlrun_reinforce") is not None:  # the example, unchanged
        assert testing.compose(["algo=reinforce", "env=corridor"]).env.id == \
            "rlrun_reinforce.envs:Corridor-v0"


def documented_commands() -> list[tuple[str, list[str]]]:
    """(`page:line`, arguments) of each `rlrun ...` command naming my_pg in a code block of
    the README or docs/*.md (the walk-through in docs/extending.md)."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        in_block = False
        for n, line in enumerate(page.read_text().splitlines(), 1):
            text = line.strip()
            if text.startswith("```"):
                in_block = not in_block
            elif in_block and text.startswith("rlrun ") and "my_pg" in text:
                found.append((f"{page.relative_to(ROOT)}:{n}",
                              shlex.split(text, comments=True)[1:]))
    return found


def test_the_docs_walk_through_runs_against_the_copy(registered, capsys):
    """`rlrun --help` lists the copy's options and `--help algo=my_pg` its settings; every
    other command composes and passes preflight, as tests/test_docs_commands.py checks
    rlrun's own (which leaves these to this test: the copy is not installed there)."""
    from rlrun import testing
    from rlrun.cli import main
    from rlrun.preflight import preflight

    commands = documented_commands()
    assert len(commands) >= 5, commands
    for where, args in commands:
        if "--help" in args:
            with pytest.raises(SystemExit) as e:
                main(args)
            out = capsys.readouterr().out
            assert e.value.code == 0, where
            if any(a.startswith("algo=") for a in args):
                assert "algo=my_pg (rlrun_my_pg.schema.MyPgConfig):" in out, where
                assert "algo.learning_rate: float = 0.005" in out, where
            else:
                groups = {ln.split(":")[0].strip(): ln for ln in out.splitlines()
                          if ln.startswith("  ") and ":" in ln}
                assert " my_pg," in groups["algo"] and " my_pg_corridor," in groups["env"]
            continue
        preflight(testing.compose(args))


@pytest.mark.slow
def test_the_copy_builds_installs_and_passes_all_its_tests(copy, tmp_path):
    """Its wheel (hatchling, as pip builds it) ships the package and its configs; installed
    into a folder, every test of the copy passes against the installed package."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(copy)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("rlrun_my_pg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rlrun_my_pg/configs/algo/my_pg.yaml" in names
    assert "rlrun_my_pg/configs/tuned/my_pg/my_pg_corridor.yaml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "my_pg = rlrun_my_pg" in zipfile.ZipFile(wheel).read(entry_points).decode()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, timeout=300)
    out = _pytest(copy, {**os.environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert re.search(r"\b8 passed\b", out.stdout), out.stdout[-500:]


# ---- bad input: one line, exit code 2, the offending value named ------------------------------
BAD = [
    (["My-PG"], "NAME 'My-PG' must be a lowercase Python identifier"),
    (["class"], "NAME 'class' must be a lowercase Python identifier"),
    (["envs"], "NAME 'envs' is a module of the package already"),
    (["ppo"], "NAME 'ppo': algo=ppo is already an option"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[b[0][0] for b in BAD])
def test_bad_names_are_one_line(argv, message, capsys, tmp_path):
    assert _script().main([*argv, "--dest", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("new_plugin.py: error: ") and message in err
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(importlib.util.find_spec("rlrun_reinforce") is None,
                    reason="the example plugin is not installed")
def test_the_examples_own_name_is_taken(capsys, tmp_path):
    assert _script().main(["reinforce", "--dest", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NAME 'reinforce': algo=reinforce is already an option" in err


def test_an_existing_destination_is_left_alone(capsys, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("mine")
    assert _script().main(["my_other_pg", "--dest", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--dest {tmp_path / 'mine'} already exists" in err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["keep.txt"]
