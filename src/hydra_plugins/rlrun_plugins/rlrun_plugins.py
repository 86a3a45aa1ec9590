"""Adds installed rlrun plugins' config directories to Hydra's search path.

Hydra imports every module under the `hydra_plugins` namespace package and calls each
`SearchPathPlugin` whenever it builds a search path: for the `rlrun` CLI and for
`hydra.compose` in tests and notebooks alike. Only a search path whose primary config dir is
rlrun's own is changed, so other Hydra apps in the same environment are left alone. The
plugins' dirs come after rlrun's: a plugin adds options, it never shadows ours.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class RlrunPluginsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from rlrun.core.config import config_dir
        from rlrun.core.plugins import plugin_config_dirs

        ours = config_dir()
        mains = [e for e in search_path.get_path() if e.provider == "main" and e.path]
        if not any(_local(str(e.path)) == ours for e in mains):
            return
        for name, path in plugin_config_dirs():
            search_path.append(provider=f"rlrun-plugin:{name}", path=f"file://{path}")


def _local(path: str) -> Path | None:
    if path.startswith("file://"):
        path = path[len("file://"):]
    elif "://" in path:
        return None
    return Path(path).resolve()
