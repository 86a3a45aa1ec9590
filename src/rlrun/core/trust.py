"""A run dir from elsewhere names no code: the references a resumed config may hold.

`resume=DIR` loads `DIR/.hydra/config.yaml`, whose `algo.loop`, `algo.schema`,
`env.schema` and `_target_` values are dotted paths that rlrun imports and calls. Hydra
instantiates nested `_target_` nodes too, so a crafted config could otherwise call any
importable function (`builtins.eval`, `os.system` reached through a module attribute...).
A resumed config may therefore only name what the installed configs themselves name:
every `loop`, `schema` and `_target_` value found in rlrun's config files, in the installed
plugins' config dirs (entry points `rlrun.plugins`: installing a package is trusting it), and
in the dirs the user names on this command line (`--config-dir`, `hydra.searchpath`). Fresh
runs are composed from configs the user chose, and are not restricted.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from rlrun.core.errors import CheckpointError

CODE_KEYS = ("loop", "schema", "_target_")


@functools.cache
def trusted_references(roots: tuple[Path, ...] | None = None) -> frozenset[str]:
    """Every `loop`/`schema`/`_target_` value in the config files under `roots` (default:
    every config dir of the search path, `rlrun.core.plugins.config_dirs`)."""
    if roots is None:
        from rlrun.core.plugins import config_dirs

        roots = tuple(config_dirs())
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in CODE_KEYS and isinstance(v, str):
                    found.add(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path in sorted(p for root in roots for p in root.glob("**/*.yaml")):
        try:
            walk(yaml.safe_load(path.read_text()))
        except (OSError, yaml.YAMLError):
            continue
    return frozenset(found)


def check_references(cfg: dict[str, Any], where: str) -> None:
    """CheckpointError if `cfg` (a plain, unresolved container) names code that no config
    of rlrun, of its plugins or of this command line's config dirs names."""
    from rlrun.core.plugins import config_dirs

    trusted = trusted_references(tuple(config_dirs()))

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                key = f"{path}.{k}" if path else str(k)
                if k in CODE_KEYS and v is not None and (not isinstance(v, str)
                                                         or v not in trusted):
                    raise CheckpointError(
                        f"{where}: {key}={v!r} is not code that rlrun's configs name; a"
                        " resumed run dir may not choose what to import (it could run"
                        " anything): start a fresh run with your own config instead")
                walk(v, key)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(cfg, "")
