"""Finding the configs, checking a config node against its dataclass schema, importing loops.

Schemas (`rlrun.core.schema`) live in torch-free modules and are registered in Hydra's
ConfigStore (`rlrun.schemas.register_all`), so the composed config is typed and complete at
compose time; `validate` builds the dataclass and checks its bounds when a run starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlrun.core.errors import ConfigError

# Keys of a group node that are about wiring, not hyperparameters.
META_KEYS = ("name", "loop", "schema", "kind")


def config_dir() -> Path:
    """The configs folder: inside the installed package, or the repo's top-level configs/."""
    here = Path(__file__).resolve().parent.parent  # src/rlrun or site-packages/rlrun
    for candidate in (here / "configs", here.parent.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError("rlrun configs not found: reinstall rlrun (pip install .)")


def _slug(label: Any, overrides: Any, exclude: Any = (), max_len: int = 80) -> str:
    """A sweep job's dir name: its label and the values of the keys the sweep varies
    (rlrun.core.sweep.job_name); `overrides` is the job's `hydra.overrides.task`."""
    from rlrun.core.sweep import job_name

    if isinstance(overrides, str):  # an override_dirname string, as older configs passed
        overrides = [o for o in overrides.split(",") if o]
    return job_name(label, list(overrides or ()), list(exclude or ()), max_len)


def _run_dir(resume: Any, fresh: str) -> str:
    return str(resume) if resume not in (None, "", "None", "null") else fresh


# Under torchrun, rank 0's start time (set by the CLI before Hydra composes): every rank then
# names the same run dir. None: the current time, as Hydra's `${now:...}`.
shared_start_time: float | None = None


def _now(pattern: str) -> str:
    """`${rlrun_now:%Y-%m-%d_%H-%M-%S}`: the run dir's timestamp, the same on every rank."""
    import datetime

    t = shared_start_time if shared_start_time is not None else time.time()
    return datetime.datetime.fromtimestamp(t).strftime(pattern)


def _output_subdir(resume: Any, output_dir: Any = None) -> str | None:
    """Where Hydra saves the job's config, or None for "nowhere".

    A resumed run keeps the .hydra/ of its first launch: that is the config it continues.
    Hydra writes .hydra/ before rlrun's code runs, so the run dir's lock is taken here,
    first: a second process aimed at a live run's dir (or at a dir that already holds a
    run) writes nothing there, and `train()` then refuses it with one line. Under torchrun
    only rank 0 writes it.
    """
    if resume not in (None, "", "None", "null"):
        return None
    from rlrun.core.distributed import rank

    if rank() > 0:  # under torchrun rank 0 alone writes (and locks) the run dir
        return None
    if output_dir not in (None, "", "???"):
        from rlrun.core import runlock

        try:
            if not runlock.try_acquire(output_dir) or \
                    (Path(str(output_dir)) / "results.json").exists():
                return None
        except OSError:
            return None  # a read-only or forbidden dir: train() reports it in one line
    return ".hydra"


def _sqlite(path: str) -> str:
    """An SQLite URL for an Optuna study, creating the folder (SQLite will not)."""
    p = Path(path).expanduser().resolve()
    p.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{p}"


def group_options(group: str, dirs: list[Path] | None = None) -> list[str]:
    """Options of a config group across every config dir (rlrun's, installed plugins', the
    user's `--config-dir` / `hydra.searchpath`), nested presets as paths
    (`sutton_barto/fig2_2`); the `points/` folders hold single curves of presets and are
    not listed."""
    from rlrun.core.plugins import config_dirs

    found: set[str] = set()
    for d in config_dirs() if dirs is None else dirs:
        root = d / group
        found.update(str(p.relative_to(root).with_suffix("")) for p in root.glob("**/*.yaml")
                     if "points" not in p.relative_to(root).parts)
    return sorted(found)


def _groups_help(sources: Any = None) -> str:
    """The `Config groups` block of `rlrun --help`; `sources` are Hydra's config sources of
    this invocation (so plugins and `--config-dir` options are listed too)."""
    from rlrun.core.plugins import config_dirs

    if sources is not None and not isinstance(sources, list):
        sources = OmegaConf.to_container(sources, resolve=True)
    dirs = config_dirs(sources or None)
    groups = ("algo", "env", "network", "device", "logger", "experiment", "hparams_search")
    return "\n".join(f"  {g}: {', '.join(group_options(g, dirs))}" for g in groups)


def _settings_help(*, _root_: Any) -> str:
    """The `Settings` block of `rlrun --help [algo=... env=... network=...]`: every field of
    the chosen algorithm's, env's and network's schemas with its type, default, bounds and
    help (the value this command line composes where it differs), as CleanRL's tyro help."""
    from rlrun.core.schema import describe, registered

    schemas = registered()
    blocks = []
    for group in ("algo", "env", "network"):
        node = _root_.get(group)
        if not isinstance(node, DictConfig):
            continue
        path = node.get("schema") or next(
            (p for p, cls in schemas.items()
             if getattr(cls, "_target_", None) == node.get("_target_")), None)
        cls = schemas.get(str(path)) if path else None
        name = node.get("name") or str(node.get("_target_", "")).rsplit(".", 1)[-1]
        if cls is None:
            blocks.append(f"{group}={name}: no registered schema (its keys: "
                          f"{', '.join(str(k) for k in node)})")
            continue
        try:
            values = OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException:
            values = None
        blocks.append(f"{group}={name} ({path}):\n{describe(cls, group, values)}")
    return "\n\n".join(blocks)


def register_resolvers() -> None:
    """OmegaConf resolvers used by configs/train.yaml (run and sweep dirs) and --help, and
    rlrun's schemas in Hydra's ConfigStore (`rlrun.schemas`): what composing needs."""
    from rlrun.schemas import register_all

    register_all()
    for name, fn in (("rlrun_slug", _slug), ("rlrun_run_dir", _run_dir), ("rlrun_now", _now),
                     ("rlrun_output_subdir", _output_subdir), ("rlrun_groups", _groups_help),
                     ("rlrun_sqlite", _sqlite), ("rlrun_settings", _settings_help)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def import_object(path: str, what: str) -> Any:
    """Import `package.module.attr`; a bad path is a one-line ConfigError."""
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{what} '{path}' cannot be imported: {e}") from None


def did_you_mean(word: str, options: list[str] | tuple[str, ...], prefix: str = "") -> str:
    """`; did you mean algo.epsilon?` for the closest of `options`, else the options listed."""
    close = difflib.get_close_matches(word, list(options), n=3, cutoff=0.6)
    if close:
        return f"; did you mean {' or '.join(prefix + c for c in close)}?"
    return f" (options: {', '.join(sorted(options))})" if options else ""


def check_finite(values: Any, prefix: str) -> None:
    """Refuse NaN and infinity anywhere in a config node (`algo.c=nan`, `env.mean=inf`).

    No option of rlrun means anything at NaN, and an infinite one silently disables what it
    bounds; a budget or limit that can be switched off says so with null or 0 instead."""
    if isinstance(values, dict):
        for k, v in values.items():
            check_finite(v, f"{prefix}.{k}")
    elif isinstance(values, list | tuple):
        for i, v in enumerate(values):
            check_finite(v, f"{prefix}[{i}]")
    elif isinstance(values, float) and not math.isfinite(values):
        raise ConfigError(f"{prefix}={values} is not a finite number: give a real value")


def validate(node: DictConfig, schema: type, prefix: str) -> Any:
    """Merge `node` onto `schema` and build the dataclass.

    Types are checked by OmegaConf, NaN/inf here (for every float, whatever the schema), the
    bounds and choices that the schema's fields declare by `rlrun.core.schema.check_fields`,
    and what relates several fields by the dataclass's `__post_init__`. Every failure
    becomes a ConfigError naming the full key, e.g. `algo.epsilon`, with the closest option
    when a key is unknown. Wiring keys (`name`, `loop`, `schema`, `kind`) are kept when the
    schema declares them, dropped otherwise.
    """
    from rlrun.core.schema import check_fields

    names = {f.name for f in dataclasses.fields(schema)}
    values = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items()
              if k not in META_KEYS or k in names}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        check_finite(OmegaConf.to_container(merged), prefix)
        check_fields(schema, OmegaConf.to_container(merged))
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = f"{prefix}.{e.full_key}" if getattr(e, "full_key", None) else prefix
        msg = str(getattr(e, "msg", e)).splitlines()[0]
        unknown = str(getattr(e, "full_key", None) or "")
        if ("not in struct" in msg or "Key '" in msg and "not" in msg) and "." not in unknown:
            fields = [f.name for f in dataclasses.fields(schema) if f.name not in META_KEYS]
            owner = f"{prefix}={node.name}" if node.get("name") else prefix
            raise ConfigError(f"{key} is not an option of {owner}"
                              f"{did_you_mean(unknown, fields, prefix + '.')}") from None
        raise ConfigError(f"{key}: {msg}") from None
    except ConfigError as e:
        text = str(e)
        # Schemas name their own keys (`epsilon=2 must be ...`); some already add the group.
        raise ConfigError(text if text.startswith(f"{prefix}.") else f"{prefix}.{text}") from None
    return obj
