"""Checks of a composed config that need more than one option, or the algorithm's schema,
made before a run starts so that a bad input costs one line and no training.

(Single options are checked by their dataclass schemas and `rlrun.core.config.validate`.)
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlrun.core.config import config_dir, did_you_mean, import_object
from rlrun.core.errors import ConfigError

# The config groups at the top level; train.yaml's own keys are read from the file.
GROUPS = ("algo", "env", "network", "device", "logger", "experiment", "hparams_search")


def check_root_keys(cfg: DictConfig) -> None:
    """`+sed=1` (Hydra's advice for a typo, followed) would add a key nothing reads."""
    root = OmegaConf.load(config_dir() / "train.yaml")
    known = [k for k in root if k not in ("defaults", "hydra")] + list(GROUPS)
    for key in cfg:
        if key not in known:
            raise ConfigError(f"{key} is not an rlrun option{did_you_mean(str(key), known)}")


def _network_takes(target: str, inputs: tuple[str, ...]) -> bool:
    """Whether the network class at `target` accepts the shape arguments `inputs`."""
    import inspect

    params = inspect.signature(import_object(target, "network._target_")).parameters
    return (any(p.kind is p.VAR_KEYWORD for p in params.values())
            or all(name in params for name in inputs))


def check_network_fits(cfg: DictConfig, schema: type) -> None:
    """`algo=sac network=unet`: say which networks fit, before the loop tries to build one."""
    inputs = getattr(schema, "network_inputs", None)
    target = cfg.network.get("_target_")
    if not inputs or not target or _network_takes(str(target), inputs):
        return
    # configs sharing a class (network=transformer, network=encoder): the one most like this
    names: dict[str, tuple[str, int]] = {}
    fits: list[str] = []
    for path in sorted((config_dir() / "network").glob("*.yaml")):
        node = OmegaConf.load(path)
        node_target = str(node.get("_target_"))
        same = sum(1 for k, v in node.items() if cfg.network.get(k) == v)
        if same > names.get(node_target, ("", -1))[1]:
            names[node_target] = (path.stem, same)
        try:
            if _network_takes(node_target, inputs):
                fits.append(path.stem)
        except ConfigError:
            continue
    name = names.get(str(target), (str(target), 0))[0]
    hint = f"use network={' or network='.join(fits)}" if fits else "no packaged network fits"
    raise ConfigError(f"network={name} does not fit algo={cfg.algo.name}, which builds its"
                      f" networks from {', '.join(inputs)}: {hint}")


def check_objective_metric(cfg: DictConfig, schema: type) -> None:
    """objective.metric must be a tag this algorithm can log: checked up front against the
    patterns its schema declares; the exact tag (e.g. one loss of several) when the run ends,
    see `_objective_missing`."""
    import fnmatch

    metric = (cfg.get("objective") or {}).get("metric")
    patterns = getattr(schema, "logged_tags", None)
    if metric is None or patterns is None:
        return
    if not any(fnmatch.fnmatchcase(str(metric), p) for p in patterns):
        default = getattr(schema, "objective", None)
        raise ConfigError(f"objective.metric={metric!r}: algo={cfg.algo.name} logs no such tag;"
                          f" it logs {', '.join(patterns)} (its own objective: {default});"
                          " or set objective.metric=null")


def objective_missing(metric: str, metrics: dict[str, Any], algo: str) -> ConfigError:
    close = did_you_mean(metric, sorted(metrics)) if metrics else ""
    if not close.startswith(";"):
        close = " (results.json lists what it logged)"
    return ConfigError(f"objective.metric={metric!r} was never logged by algo={algo}, so the"
                       f" run has no objective{close}")
