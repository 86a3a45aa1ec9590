"""The resume policy: which saved config a `resume=` continues, and what it may change.

A run dir may come from anyone, so its config is read under the trust rules
(`rlrun.core.trust`) before anything is imported or resolved. A resume keeps the run's
config; it may raise the budget (its schema's `spec.budget`: `algo.total_steps`, `env.steps`
or `algo.episodes`), which also continues a completed run, and change the keys its spec lists
in `resume_keys` (evaluation, logging, resources: they change how a run is watched, not what
it learns). Raising the budget recomputes the schedules that depend on it; the schema says
which (`budget_schedules`), and a warning names them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlrun.core import results as results_file
from rlrun.core.errors import CheckpointError, ConfigError
from rlrun.core.trust import check_env_id, check_no_resolvers, check_references

log = logging.getLogger("rlrun")


def read_run_config(run_dir: Path, where: str, env_ids: tuple[str, ...] = ()) -> DictConfig:
    """A run dir's saved config, checked to name only code rlrun's configs name (a run dir
    from elsewhere must not choose what to import or run): for `resume=` and `rlrun-eval`.

    Checked before anything is resolved: `_target_`/`loop`/`schema` references, the module
    of a `module:EnvId` env id (trusted when installed as a plugin, named by a config dir,
    or in `env_ids`, the ids the user named on the command line) and resolver calls
    (`rlrun.core.trust`)."""
    path = run_dir / ".hydra" / "config.yaml"
    try:
        cfg = OmegaConf.load(path)
        if not isinstance(cfg, DictConfig) or not {"algo", "env"} <= set(cfg):
            raise ValueError("no algo and env sections")
    except (ValueError, OmegaConfBaseException, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{where}: {path} is not a readable rlrun config"
                              f" ({first[:160]})") from None
    raw = OmegaConf.to_container(cfg, resolve=False)
    check_references(raw, where)
    check_no_resolvers(raw, where)
    check_env_id(raw, where, env_ids)
    return cfg


def load_run_config(run_dir: Path, overrides: list[str]) -> DictConfig:
    """The config `resume=run_dir` continues, with the allowed `overrides` applied."""
    # `env.id=` repeats the saved id to trust its module (rlrun.core.trust); it changes nothing
    env_ids = tuple(o.partition("=")[2] for o in overrides
                    if o.lstrip("+").startswith("env.id="))
    cfg = read_run_config(run_dir, f"resume={run_dir}", env_ids)
    for env_id in env_ids:
        if env_id != cfg.env.get("id"):
            raise ConfigError(f"env.id={env_id}: a resumed run keeps its task"
                              f" ({cfg.env.get('id')}); env.id= on resume only confirms it")
    overrides = [o for o in overrides if not o.lstrip("+").startswith("env.id=")]
    cfg.resume = None
    schema = _schema(cfg)
    for key, value in schema.saved_before.items():  # saved before the key existed
        if key not in cfg.algo:
            cfg.algo[key] = value
    spec = schema.spec
    extended = apply_overrides(cfg, overrides, spec.budget, spec.resume_keys)
    if extended:
        from rlrun.core.config import validate

        for what in validate(cfg.algo, schema, "algo").budget_schedules():
            log.warning("budget raised on resume: %s; a run launched with this budget from"
                        " the start differs", what)
    rec = results_file.read(run_dir) or {}
    if rec.get("status") == "completed" and not extended:
        raise CheckpointError(f"resume={run_dir}: that run already completed; to continue it,"
                              f" raise its budget ({spec.budget}=...)")
    if rec.get("status") == "running":  # we hold the lock: its process is gone
        log.warning("resuming a stale run (PID %s on %s stopped without a word)",
                    rec.get("pid"), rec.get("host"))
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise CheckpointError(
            f"resume={run_dir}: no checkpoint was saved before it stopped; start it afresh")
    return cfg


def _schema(cfg: DictConfig) -> Any:
    from rlrun.core.config import import_object
    from rlrun.core.schema import spec_of

    schema = import_object(str(cfg.algo.get("schema")), "algo.schema")
    spec_of(schema)
    return schema


def apply_overrides(cfg: DictConfig, overrides: list[str], budget: str,
                    resume_keys: tuple[str, ...]) -> bool:
    """Apply the `key=value` overrides a resume allows; True if one raised the budget."""
    allowed_re = re.compile("^(" + "|".join([re.escape(budget), *resume_keys]) + ")$")
    allowed = sorted(k for k in _flat_keys(cfg) if allowed_re.match(k))
    extended = False
    for item in overrides:
        key, eq, value = item.lstrip("+").partition("=")
        if not eq or key not in allowed:
            shown = [k for k in allowed if not k.startswith("logger.")] + ["logger.*"]
            hint = f" ({budget}, not {key}, is this run's budget)" if key in (
                "algo.total_steps", "env.steps", "algo.episodes") and key != budget else ""
            raise ConfigError(
                f"resume= continues a run with its saved config; only these keys may change:"
                f" {', '.join(shown)} (got {item}){hint}")
        new = OmegaConf.from_dotlist([f"{key}={value}"])
        old_value = OmegaConf.select(cfg, key)
        OmegaConf.update(cfg, key, OmegaConf.select(new, key), merge=False)
        if key == budget:
            new_value = OmegaConf.select(cfg, key)
            if not isinstance(new_value, int) or isinstance(new_value, bool):
                raise ConfigError(f"{key}={value!r} must be an integer")
            if new_value < old_value:
                raise ConfigError(f"{key}={new_value}: a resumed run's budget can only grow"
                                  f" (it was {old_value})")
            extended = extended or new_value > old_value
    return extended


def _flat_keys(cfg: DictConfig) -> list[str]:
    out: list[str] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out.append(prefix)

    walk("", OmegaConf.to_container(cfg, resolve=False))
    return out
