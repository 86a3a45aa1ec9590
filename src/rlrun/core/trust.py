"""A run dir from elsewhere names no code: the references a resumed config may hold.

`resume=DIR` loads `DIR/.hydra/config.yaml`, whose `algo.loop`, `algo.schema`,
`env.schema` and `_target_` values are dotted paths that rlrun imports and calls. Hydra
instantiates nested `_target_` nodes too, so a crafted config could otherwise call any
importable function (`builtins.eval`, `os.system` reached through a module attribute...).
A resumed config may therefore only name what the installed configs themselves name:
the schemas registered in Hydra's ConfigStore by rlrun and installed plugins, and every
`loop`, `schema` and `_target_` value found in rlrun's config files, in the installed
plugins' config dirs (entry points `rlrun.plugins`: installing a package is trusting it), and
in the dirs the user names on this command line (`--config-dir`, `hydra.searchpath`). Fresh
runs are composed from configs the user chose, and are not restricted.

The same rule holds for the other ways a saved config could reach code or the disk:
- `env.id=module:EnvId` (Gymnasium's form) imports `module` when the env is made. A saved id
  may name a module of rlrun, of an installed plugin's package, one that a trusted config
  dir's `id:` names, or one the user names again on this command line (`env.id=...`, the
  saved value repeated: `rlrun resume=DIR env.id=my_envs:Foo-v0`).
- Resolvers (`${rlrun_sqlite:...}`, `${oc.env:...}`) run when a config is resolved, before
  any check sees their result, and some touch the disk. A saved config may hold plain
  node references (`${.id}`, `${algo.gamma}`) and no resolver call: it is refused before
  anything is resolved.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from rlrun.core.errors import CheckpointError

CODE_KEYS = ("loop", "schema", "_target_")
# `${key}`, `${.key}`, `${..a.b[0]}`: a reference to another node, which runs nothing
_NODE_REF = re.compile(r"\$\{\.*[A-Za-z_][\w.]*(\[\d+\])*\}")


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

    for node in _config_files(roots):
        walk(node)
    return frozenset(found)


def _config_files(roots: tuple[Path, ...]) -> list[Any]:
    out = []
    for path in sorted(p for root in roots for p in root.glob("**/*.yaml")):
        try:
            out.append(yaml.safe_load(path.read_text()))
        except (OSError, yaml.YAMLError):
            continue
    return out


@functools.cache
def trusted_modules(roots: tuple[Path, ...] | None = None) -> frozenset[str]:
    """Modules an `env.id=module:EnvId` of a saved config may import: rlrun's own, the
    packages of installed plugins (entry points `rlrun.plugins`), and the modules named by
    `id:` values in the config dirs under `roots` (default: the search path's)."""
    from rlrun.core.plugins import GROUP, config_dirs

    if roots is None:
        roots = tuple(config_dirs())
    found = {"rlrun"}
    import importlib.metadata

    for ep in importlib.metadata.entry_points(group=GROUP):
        found.add(ep.value.split(":")[0].split(".")[0])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "id" and isinstance(v, str) and ":" in v:
                    found.add(v.partition(":")[0])
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for node in _config_files(roots):
        walk(node)
    return frozenset(found)


def module_trusted(module: str, trusted: Iterable[str]) -> bool:
    """`pkg.sub` is trusted when `pkg.sub` or a package above it (`pkg`) is."""
    parts = module.split(".")
    names = set(trusted)
    return any(".".join(parts[:i]) in names for i in range(1, len(parts) + 1))


def check_env_id(cfg: dict[str, Any], where: str, confirmed: Iterable[str] = ()) -> None:
    """CheckpointError if a saved `env.id` would import a module that is not trusted (see
    the module docstring); `confirmed` are env ids the user named on this command line."""
    from rlrun.core.plugins import config_dirs

    env = cfg.get("env") if isinstance(cfg, dict) else None
    env_id = env.get("id") if isinstance(env, dict) else None
    if not isinstance(env_id, str) or ":" not in env_id:
        return
    module = env_id.partition(":")[0]
    if env_id in set(confirmed) or module_trusted(module,
                                                  trusted_modules(tuple(config_dirs()))):
        return
    raise CheckpointError(
        f"{where}: env.id={env_id!r} would import module {module!r}, which is neither rlrun's,"
        " an installed plugin's nor one a config dir names: a run dir from elsewhere may not"
        " choose what to import. If you trust it, name it again on the command line:"
        f" env.id={env_id}")


def check_no_resolvers(cfg: Any, where: str) -> None:
    """CheckpointError if a saved config (a plain, unresolved container) calls a resolver:
    resolvers run code (some write to the disk) when the config is resolved, which is before
    any check could see what they return."""
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(k, str) and "${" in k:
                    raise CheckpointError(f"{where}: the config key {k!r} holds an"
                                          " interpolation; a saved config may not")
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif isinstance(node, str) and "${" in _NODE_REF.sub("", node):
            raise CheckpointError(
                f"{where}: {path}={node[:80]!r} calls a resolver; a saved config may only"
                " refer to its own keys (${{a.b}}), never run one: start a fresh run with"
                " your own config instead")

    walk(cfg, "")


def check_references(cfg: dict[str, Any], where: str) -> None:
    """CheckpointError if `cfg` (a plain, unresolved container) names code that no config
    of rlrun, of its plugins or of this command line's config dirs names."""
    from rlrun.core.plugins import config_dirs
    from rlrun.core.schema import registered

    # what config files name, and the schemas registered by rlrun and installed plugins
    trusted = trusted_references(tuple(config_dirs())) | set(registered())

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
