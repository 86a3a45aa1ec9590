"""`train(cfg)`: resolve device, seed, open the run, find the algorithm's loop and run it.

Tests call this directly; `rlrun.cli` calls it under Hydra. It returns the run's results
(the same dict that is written to `results.json`), whose `objective` a sweeper optimises.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlrun.core.checkpoint import atomic_write_json
from rlrun.core.config import config_dir, import_object, register_resolvers, validate
from rlrun.core.device import resolve_device
from rlrun.core.errors import CheckpointError, ConfigError, PairingError
from rlrun.core.logger import LoggerConfig
from rlrun.core.run import RunContext, StopOnSignal
from rlrun.core.seeding import seed_everything
from rlrun.core.threads import set_threads
from rlrun.core.threads import valid as valid_threads

log = logging.getLogger("rlrun")

# What each task kind is and where to find one, for pairing errors (env configs: `kind:`).
TASK_KINDS = {
    "bandit": ("a bandit testbed", "env=bandit_testbed, env=contextual_bandit"),
    "tabular": ("a tabular task with discrete states and actions and a transition table",
                "e.g. env=cliff_walking_book, env=CliffWalking-v1"),
    "gym": ("a Gymnasium task without a transition table", "e.g. env=CartPole-v1"),
    "text": ("a text corpus", "e.g. env=stdlib_docs, env=text_file env.path=..."),
    "images": ("an image data set", "e.g. env=digits, env=image_folder env.path=..."),
}


class Interrupted(Exception):
    """The run stopped on SIGINT/SIGTERM after saving a checkpoint."""

    def __init__(self, run_dir: Path, step: int):
        super().__init__(f"interrupted at step {step}; continue with: rlrun resume={run_dir}")
        self.run_dir, self.step = run_dir, step


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Run one experiment described by a composed config; return its results dict.

    `run_dir` defaults to Hydra's output dir. With `resume=<run_dir>` the saved config of
    that run is used and the run continues where its last checkpoint left it.
    """
    register_resolvers()
    resuming = bool(cfg.get("resume"))
    if resuming:
        run_dir = Path(str(cfg.resume))
        cfg = _load_run_config(run_dir)
    elif run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir
    run_dir = Path(run_dir).resolve()

    _check_root(cfg)
    loop, algo, env, logger_cfg, schema = _resolve(cfg)
    _check_pairing(cfg, schema, env)
    device = resolve_device(str(cfg.device.type), cfg.device.get("index"),
                            uses_torch=getattr(schema, "uses_torch", True))
    if not resuming:
        _prepare_fresh_dir(run_dir, cfg)
    seed_everything(int(cfg.seed), bool(cfg.deterministic))
    set_threads(cfg.get("threads"), schema)  # default auto: see core/threads.py

    headline = getattr(schema, "headline", "charts/episodic_return")
    obj_cfg = cfg.get("objective") or {}
    objective = obj_cfg.get("metric") or getattr(schema, "objective", headline)
    objective_stat = str(obj_cfg.get("stat") or "last")
    ctx = RunContext(
        run_dir=run_dir, algo=algo, env=env, algo_name=str(cfg.algo.name),
        env_name=str(cfg.env.name), seed=int(cfg.seed), device=device,
        deterministic=bool(cfg.deterministic), logger_cfg=logger_cfg, headline=headline,
        checkpoint_every_s=float(cfg.checkpoint_every_s), resuming=resuming,
        network=cfg.get("network"),
    )
    if not resuming:
        ctx.logger.text("config", _yaml_block(cfg))
        ctx.logger.hparams(_flat_hparams(cfg), list(dict.fromkeys([headline, objective])))
    log.info("%s %s on %s: %s", "resuming" if resuming else "run", ctx.algo_name,
             ctx.env_name, run_dir)
    results_path = run_dir / "results.json"
    before = results_path.read_text() if resuming and results_path.is_file() else None
    _write_results(ctx, "running")
    status: str | None = "failed"
    try:
        with StopOnSignal(ctx):
            loop(ctx)
        status = "interrupted" if ctx.stop_requested else "completed"
    except KeyboardInterrupt:
        status = "interrupted"
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
        if not ctx.restoring:
            raise
        status = None  # the saved state does not fit this code: leave the run as it was
        if before is not None:
            results_path.write_text(before)
        detail = " ".join(line.strip() for line in str(e).splitlines()[:2])[:240]
        raise CheckpointError(
            f"resume={run_dir}: the checkpoint does not fit this version of rlrun or this"
            f" configuration ({type(e).__name__}: {detail})"
        ) from None
    finally:
        ctx.close()
        if status is not None:
            results = _write_results(ctx, status, objective, objective_stat)
    if status == "interrupted":
        raise Interrupted(run_dir, ctx.step)
    log.info("done: %s = %.4g (results in %s)", headline,
             results["metrics"].get(headline, {}).get("last", float("nan")), run_dir)
    return results


def _check_root(cfg: DictConfig) -> None:
    """Top-level keys (no schema of their own): seed, deterministic, checkpoint_every_s."""
    checks = (("seed", int, lambda v: v >= 0, "a non-negative integer"),
              ("deterministic", bool, lambda v: True, "true or false"),
              ("checkpoint_every_s", (int, float), lambda v: v >= 0, "a number >= 0"),
              ("threads", (int, str, type(None)), valid_threads, "auto, null or an integer >= 1"))
    for key, types, ok, what in checks:
        value = cfg.get(key)
        if isinstance(value, bool) and types is not bool or not isinstance(value, types) \
                or not ok(value):
            raise ConfigError(f"{key}={value!r} must be {what}")
    stat = cfg.get("objective", {}).get("stat", "last")
    if stat not in ("last", "tail_mean", "best"):
        raise ConfigError(f"objective.stat={stat!r} must be last, tail_mean or best")


def _resolve(cfg: DictConfig):
    for group in ("algo", "env"):
        for key in ("name", "loop" if group == "algo" else "kind", "schema"):
            if key not in cfg[group] or cfg[group][key] is None:
                raise ConfigError(f"{group} config lacks '{key}': see configs/{group}/*.yaml")
    loop = import_object(str(cfg.algo.loop), "algo.loop")
    schema = import_object(str(cfg.algo.schema), "algo.schema")
    env_schema = import_object(str(cfg.env.schema), "env.schema")
    algo = validate(cfg.algo, schema, "algo")
    env = validate(cfg.env, env_schema, "env")
    logger_cfg = validate(cfg.logger, LoggerConfig, "logger")
    return loop, algo, env, logger_cfg, schema


def _check_pairing(cfg: DictConfig, schema: type, env: Any = None) -> None:
    if not getattr(schema, "uses_network", True) and cfg.get("network") is not None:
        raise PairingError(
            f"algo={cfg.algo.name} is tabular and uses no network: drop the network= override"
        )
    kinds = getattr(schema, "task_kinds", None)
    kind = str(cfg.env.kind)
    if kinds is None or kind in kinds:
        spaces = getattr(schema, "action_spaces", None)
        if kind == "gym" and spaces and env is not None:
            from rlrun.envs.gym import check_action_space

            check_action_space(str(cfg.algo.name), env, tuple(spaces),
                               getattr(schema, "suggest", {}))
        return
    fits = [n for n, k in _algorithms_by_kind().items() if kind in k]
    hint = (f"try algo={fits[0]}" if fits
            else f"no algorithm in this install learns {kind} tasks yet")
    needs = " or ".join("{} ({})".format(*TASK_KINDS.get(k, (f"a {k} task", "")))
                        for k in kinds)
    is_a = TASK_KINDS.get(kind, (f"a {kind} task",))[0]
    raise PairingError(f"algo={cfg.algo.name} needs {needs}, but env={cfg.env.name} is {is_a}:"
                       f" {hint}")


def _algorithms_by_kind() -> dict[str, tuple[str, ...]]:
    """Algorithm name -> task kinds it accepts, read from the packaged algo configs."""
    out = {}
    for path in sorted((config_dir() / "algo").glob("*.yaml")):
        node = OmegaConf.load(path)
        try:
            out[path.stem] = tuple(getattr(import_object(str(node.schema), "schema"),
                                           "task_kinds", ()))
        except ConfigError:
            continue
    return out


def _load_run_config(run_dir: Path) -> DictConfig:
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"resume={run_dir}: no run there ({path} is missing)")
    results = run_dir / "results.json"
    if results.is_file():
        try:
            status = json.loads(results.read_text()).get("status")
        except json.JSONDecodeError:
            status = None
        if status == "completed":
            raise CheckpointError(f"resume={run_dir}: that run already completed")
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise CheckpointError(
            f"resume={run_dir}: no checkpoint was saved before it stopped; start it afresh"
        )
    cfg = OmegaConf.load(path)
    cfg.resume = None
    return cfg


def _prepare_fresh_dir(run_dir: Path, cfg: DictConfig) -> None:
    if (run_dir / "results.json").exists():
        raise CheckpointError(
            f"{run_dir} already holds a run; pick another directory or resume={run_dir}"
        )
    hydra_dir = run_dir / ".hydra"
    if not (hydra_dir / "config.yaml").exists():  # called outside Hydra (tests, notebooks)
        hydra_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, hydra_dir / "config.yaml")


def _write_results(ctx: RunContext, status: str, objective_tag: str | None = None,
                   objective_stat: str = "last") -> dict:
    metrics = ctx.logger.summary()
    results = {
        "algo": ctx.algo_name, "env": ctx.env_name, "seed": ctx.seed, "status": status,
        "steps": ctx.step, "wall_time_s": round(ctx.wall_time_s, 3), "device": ctx.device,
        "headline": ctx.headline, "objective": None, "metrics": metrics,
    }
    if objective_tag and objective_tag in metrics:
        results["objective"] = metrics[objective_tag][objective_stat]
        results["objective_metric"] = f"{objective_tag} ({objective_stat})"
    atomic_write_json(ctx.run_dir / "results.json", results)
    return results


def _flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k not in ("loop", "schema"):
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = "None" if node is None else node

    walk("", OmegaConf.to_container(cfg, resolve=True))
    return flat


def _yaml_block(cfg: DictConfig) -> str:
    # TensorBoard renders text as markdown: indent by four spaces to keep it verbatim.
    text = OmegaConf.to_yaml(cfg, resolve=True)
    return "\n".join("    " + line for line in text.splitlines())


