"""Config directories beyond rlrun's own: installed plugins and the user's unpackaged ones.

An installed package extends rlrun through the entry point group `rlrun.plugins`:

    [project.entry-points."rlrun.plugins"]
    reinforce = "rlrun_reinforce"          # a module with CONFIG_DIR, or a callable

Each entry point names a module (or any object) with a `CONFIG_DIR` attribute, or a
callable returning the directory, or the directory itself. That directory holds `algo/`,
`env/`, `network/`, `tuned/`... laid out like rlrun's `configs/`. The Hydra search path
plugin in `hydra_plugins.rlrun_plugins` appends every such directory after rlrun's own
(so a plugin adds options and never shadows ours), for the CLI and for `compose()` alike.

Unpackaged directories come through Hydra itself (`hydra.searchpath=[file://DIR]` or
`--config-dir DIR`). `config_dirs()` lists every directory of the active search path, in
search order, which is what `--help`, the pairing checks and the resume trust list read.

Discovery reads package metadata only (importlib.metadata): no plugin code beyond the named
object's module is imported, and nothing imports torch.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.metadata
import importlib.util
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rlrun.core.errors import RlrunError

GROUP = "rlrun.plugins"


def config_dir() -> Path:
    """The configs folder: inside the installed package, or the repo's top-level configs/."""
    here = Path(__file__).resolve().parent.parent  # src/rlrun or site-packages/rlrun
    for candidate in (here / "configs", here.parent.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError("rlrun configs not found: reinstall rlrun (pip install .)")


class PluginError(RlrunError):
    """An installed plugin cannot be loaded or names no config directory."""


@functools.cache
def plugin_config_dirs() -> tuple[tuple[str, Path], ...]:
    """(entry point name, config dir) of every installed rlrun plugin, sorted by name."""
    out = []
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
        where = f"plugin {ep.name!r} ({ep.value}, entry point group {GROUP})"
        try:
            obj = ep.load()
        except Exception as e:  # any failure of foreign code, said in one line
            raise PluginError(f"{where} cannot be loaded: {type(e).__name__}: {e}; fix or"
                              f" uninstall {ep.dist.name if ep.dist else 'it'}") from None
        target: Any = getattr(obj, "CONFIG_DIR", obj)
        if callable(target) and not isinstance(target, str | Path):
            target = target()
        path = Path(str(target)).resolve()
        if not path.is_dir():
            raise PluginError(f"{where} names {path} as its config dir, which is not a"
                              " directory")
        out.append((ep.name, path))
    return tuple(out)


def _source_dir(path: str, scheme: str) -> Path | None:
    """The local directory of one Hydra config source (file:// or pkg://), if any."""
    if scheme == "file":
        return Path(path).resolve()
    if scheme == "pkg":  # pkg://my_pkg.conf (Hydra also reads my_pkg/conf): a package dir
        try:
            spec = importlib.util.find_spec(path.replace("/", ".").rstrip("."))
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return None


def config_dirs(sources: Iterable[Any] | None = None) -> list[Path]:
    """Every config directory rlrun reads options from, in Hydra's search order.

    `sources` are Hydra's `hydra.runtime.config_sources` entries (path, schema, provider);
    by default those of the running Hydra app, else (tests, notebooks, outside Hydra)
    rlrun's own configs and the installed plugins'. Inside `named_config_dirs(dirs)` (how
    `rlrun.testing` trains in-process) those two plus `dirs`, never a stale app's sources."""
    named = _NAMED_DIRS.get()
    if sources is None and named is None:
        sources = _active_sources()
    if sources is None:
        dirs = [config_dir(), *(p for _, p in plugin_config_dirs()), *(named or ())]
    else:
        dirs = []
        for s in sources:
            if s.get("provider") in ("hydra", "schema"):  # Hydra's own configs, dataclasses
                continue
            d = _source_dir(str(s.get("path")), str(s.get("schema")))
            if d is not None and d.is_dir():
                dirs.append(d)
    return list(dict.fromkeys(dirs))


# the config dirs of a command composed outside a Hydra app (`rlrun.testing`'s helpers)
_NAMED_DIRS: contextvars.ContextVar[tuple[Path, ...] | None] = contextvars.ContextVar(
    "rlrun_named_config_dirs", default=None)


@contextlib.contextmanager
def named_config_dirs(dirs: Iterable[str | Path]) -> Iterator[None]:
    """Within this block `config_dirs()` is rlrun's, the plugins' and `dirs`, whatever Hydra
    state an earlier app left behind: what `rlrun --config-dir DIR ...` would search, for
    code that composes and trains in-process (tests) and must trust the same dirs."""
    token = _NAMED_DIRS.set(tuple(Path(d).resolve() for d in dirs))
    try:
        yield
    finally:
        _NAMED_DIRS.reset(token)


def _active_sources() -> list[Any] | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return None
        return list(HydraConfig.get().runtime.config_sources)
    except (ImportError, ValueError, AttributeError):
        return None
