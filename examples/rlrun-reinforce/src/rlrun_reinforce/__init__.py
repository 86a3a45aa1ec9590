"""REINFORCE with a learned baseline and a Corridor env, added to rlrun as a plugin.

rlrun finds this package through its `rlrun.plugins` entry point (pyproject.toml), which
names this module: rlrun reads `CONFIG_DIR` and adds it to Hydra's search path, so
`configs/algo/reinforce.yaml` becomes `algo=reinforce` and `configs/env/corridor.yaml`
becomes `env=corridor`. Keep this module light: rlrun imports it at every start-up (the
loop and the env are imported only when a run uses them). It also registers the
algorithm's schema (schema.py, torch-free) in Hydra's ConfigStore, as
`schema/algo/reinforce`, which configs/algo/reinforce.yaml names at the head of its
defaults list.
"""

from pathlib import Path

from rlrun.core.schema import register
from rlrun_reinforce.schema import ReinforceConfig

_here = Path(__file__).resolve().parent
# Inside the wheel (rlrun_reinforce/configs), else the source tree's top-level configs/.
CONFIG_DIR = next((p for p in (_here / "configs", _here.parent.parent / "configs")
                   if (p / "algo").is_dir()), _here / "configs")

register("algo", "reinforce", ReinforceConfig)
