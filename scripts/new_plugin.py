"""Start an rlrun plugin of your own: a renamed copy of examples/rlrun-reinforce that passes
its tests.

    python scripts/new_plugin.py my_pg                 # -> ./rlrun-my-pg/
    python scripts/new_plugin.py my_pg --dest ~/src/rlrun-my-pg
    pip install -e ./rlrun-my-pg && pytest ./rlrun-my-pg/tests
    rlrun algo=my_pg env=my_pg_corridor

NAME (a lowercase Python identifier) names everything the example names, so the copy and the
example (or two copies) can be installed side by side without one shadowing the other:

| in the example                          | in the copy (NAME=my_pg)                  |
|-----------------------------------------|-------------------------------------------|
| distribution `rlrun-reinforce`          | `rlrun-my-pg`                             |
| package `rlrun_reinforce`               | `rlrun_my_pg`                             |
| entry point `reinforce` (rlrun.plugins) | `my_pg`                                   |
| `algo=reinforce`, `reinforce.py`        | `algo=my_pg`, `my_pg.py`                  |
| schema `ReinforceConfig`, registered    | `MyPgConfig`, registered as               |
|   as `schema/algo/reinforce`            |   `schema/algo/my_pg`                     |
| `env=corridor`, id `Corridor-v0`        | `env=my_pg_corridor`, id `MyPgCorridor-v0`|
| `network=linear`                        | `network=my_pg_linear`                    |
| `tuned/reinforce/corridor.yaml`, ...    | `tuned/my_pg/my_pg_corridor.yaml`, ...    |
| `tests/test_reinforce.py`               | `tests/test_my_pg.py`                     |

Class names inside modules (`Corridor`, `Linear`) and the prose about REINFORCE stay: they
are local to the package and true of the code until you change it. The copy's commands say
`pip install -e .` and `pytest tests` (run from its folder). A name that rlrun or an installed
plugin already uses for an option or a package is refused, as is an existing destination:
one line, exit code 2. After writing, the copy is searched for every name of the example
(docs/extending.md, "The commands").
"""

from __future__ import annotations

import argparse
import keyword
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "rlrun-reinforce"
PACKAGE_MODULES = ("envs", "nets", "schema")  # the package's other modules
SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache", "build", "dist",
                              "outputs", "multirun")
# What still names the example in a copy: tests/test_new_plugin.py holds copies to the same.
LEFTOVERS = re.compile(r"rlrun_reinforce|rlrun-reinforce|ReinforceConfig"
                       r"|(?<![A-Za-z0-9])reinforce(?![A-Za-z0-9])|(?<![A-Za-z])Corridor-v0"
                       r"|env=corridor\b|name: corridor\b|network=linear\b"
                       r"|\b(?:corridor|linear)\.yaml")


class UsageError(Exception):
    """Bad input: one line, exit code 2."""


def names(name: str) -> dict[str, str]:
    """Everything the copy is called, from NAME."""
    camel = "".join(part.capitalize() for part in name.split("_") if part)
    return {"algo": name, "package": f"rlrun_{name}", "dist": f"rlrun-{name.replace('_', '-')}",
            "schema": f"{camel}Config", "env": f"{name}_corridor",
            "env_id": f"{camel}Corridor-v0", "network": f"{name}_linear"}


def rename(text: str, n: dict[str, str]) -> str:
    """The example's names in `text` (a file or a relative path) replaced by the copy's."""
    text = text.replace("examples/rlrun-reinforce/tests", "tests")
    text = text.replace("examples/rlrun-reinforce", ".")
    text = text.replace("ReinforceConfig", n["schema"])
    text = re.sub(r"(?<![A-Za-z])Corridor-v0", n["env_id"], text)
    text = re.sub(r"(?<=env=)corridor\b|(?<=name: )corridor\b|\bcorridor(?=\.yaml)", n["env"],
                  text)
    text = re.sub(r"(?<=network=)linear\b|\blinear(?=\.yaml)", n["network"], text)
    text = text.replace("rlrun-reinforce", n["dist"])
    return re.sub(r"(?<![A-Za-z0-9])reinforce(?![A-Za-z0-9])", n["algo"], text)


def leftovers(dest: Path) -> list[str]:
    """`path:line: text` of every line (and path) in `dest` that still names the example."""
    found = []
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        rel = path.relative_to(dest)
        if LEFTOVERS.search(str(rel)):
            found.append(f"{rel}: (its name)")
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if LEFTOVERS.search(line):
                found.append(f"{rel}:{i}: {line.strip()}")
    return found


def check_name(name: str) -> dict[str, str]:
    """The copy's names, or a UsageError saying why NAME cannot be one."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name) or keyword.iskeyword(name):
        raise UsageError(f"NAME {name!r} must be a lowercase Python identifier of at most 40"
                         " characters (letters, digits, _; not a keyword), e.g. my_pg")
    if name in PACKAGE_MODULES:
        raise UsageError(f"NAME {name!r} is a module of the package already"
                         f" ({', '.join(PACKAGE_MODULES)}): pick another")
    n = names(name)
    import importlib.util

    from rlrun.core.config import group_options
    from rlrun.core.plugins import config_dirs

    dirs = config_dirs()  # rlrun's and the installed plugins'
    for group, option in (("algo", n["algo"]), ("env", n["env"]), ("network", n["network"])):
        if option in group_options(group, dirs):
            raise UsageError(f"NAME {name!r}: {group}={option} is already an option (of rlrun"
                             " or an installed plugin): pick another name")
    if importlib.util.find_spec(n["package"]) is not None:
        raise UsageError(f"NAME {name!r}: a module {n['package']} is already importable:"
                         " pick another name")
    return n


def new_plugin(name: str, dest: Path) -> Path:
    """Write the renamed copy of the example to `dest`; return it."""
    n = check_name(name)
    if dest.exists():
        raise UsageError(f"--dest {dest} already exists: remove it or pick another")
    if not (EXAMPLE / "pyproject.toml").is_file():
        raise UsageError(f"the example plugin is not at {EXAMPLE}: run this script from a"
                         " clone of rlrun")
    staging = dest.with_name(dest.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(EXAMPLE, staging, ignore=SKIP)
    for path in sorted(staging.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file():
            path.write_text(rename(path.read_text(), n))
        new_name = rename(path.name, n)
        if new_name != path.name:
            path.rename(path.with_name(new_name))
    left = leftovers(staging)
    if left:  # a name this script does not know: say where rather than ship a broken copy
        shutil.rmtree(staging)
        raise RuntimeError(f"the copy still names the example (new_plugin.py's bug): {left[0]}")
    staging.rename(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="new_plugin.py", description="Copy examples/rlrun-reinforce into a new rlrun"
        " plugin with every name of the example renamed after NAME.")
    ap.add_argument("name", metavar="NAME", help="the algorithm's name (algo=NAME), e.g. my_pg")
    ap.add_argument("--dest", type=Path, default=None,
                    help="where to write it (default: ./rlrun-NAME, underscores as hyphens)")
    args = ap.parse_args(argv)
    dest = args.dest or Path(f"rlrun-{args.name.replace('_', '-')}")
    try:
        out = new_plugin(args.name, dest.expanduser())
    except UsageError as e:
        print(f"new_plugin.py: error: {e}", file=sys.stderr)
        return 2
    n = names(args.name)
    print(f"wrote {out}: algo={n['algo']}, env={n['env']} ({n['env_id']}),"
          f" network={n['network']}, package {n['package']}")
    print(f"next: pip install -e {out} && pytest {out}/tests && rlrun algo={n['algo']}"
          f" env={n['env']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
