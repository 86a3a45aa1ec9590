"""`train(cfg)`: resolve device, seed, open the run, find the algorithm's loop and run it.

Tests call this directly; `rlrun.cli` calls it under Hydra. It returns the run's results
(the same dict that is written to `results.json`), whose `objective` a sweeper optimises.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlrun.checks import (
    check_network_fits,
    check_objective_metric,
    check_root_keys,
    objective_missing,
)
from rlrun.core import results as results_file
from rlrun.core import runlock
from rlrun.core.config import check_finite, import_object, register_resolvers, validate
from rlrun.core.device import resolve_device
from rlrun.core.distributed import Dist, first_error
from rlrun.core.errors import (
    CheckpointError,
    ConfigError,
    PairingError,
    RlrunError,
    RunIOError,
    describe_os_error,
)
from rlrun.core.logger import LoggerConfig
from rlrun.core.run import RunContext, StopOnSignal, StopRequested
from rlrun.core.seeding import seed_everything
from rlrun.core.sweep import sweep_hparams
from rlrun.core.threads import set_threads
from rlrun.core.threads import valid as valid_threads
from rlrun.core.trust import check_references

log = logging.getLogger("rlrun")

# What each task kind is and where to find one, for pairing errors (env configs: `kind:`).
TASK_KINDS = {
    "bandit": ("a bandit testbed", "env=bandit_testbed, env=contextual_bandit"),
    "tabular": ("a tabular task with discrete states and actions and a transition table",
                "e.g. env=cliff_walking_book, env=CliffWalking-v1"),
    "gym": ("a Gymnasium task without a transition table", "e.g. env=CartPole-v1"),
    "text": ("a text corpus", "e.g. env=stdlib_docs, env=text_file env.path=..."),
    "images": ("an image data set", "e.g. env=digits, env=image_folder env.path=..."),
    "text_classification": ("labelled text", "e.g. env=stdlib_docstrings, env=imdb env.path=..."),
}


class Interrupted(Exception):
    """The run stopped on SIGINT/SIGTERM; `resumable` when a checkpoint holds its state."""

    def __init__(self, run_dir: Path, step: int, resumable: bool = True):
        if resumable:
            msg = f"interrupted at step {step}; continue with: rlrun resume={run_dir}"
        else:
            msg = (f"interrupted at step {step}, before any checkpoint was saved: nothing to"
                   " resume, start it afresh")
        super().__init__(msg)
        self.run_dir, self.step, self.resumable = run_dir, step, resumable


def train(cfg: DictConfig, run_dir: str | Path | None = None,
          overrides: list[str] | None = None) -> dict[str, Any]:
    """Run one experiment described by a composed config; return its results dict.

    `run_dir` defaults to Hydra's output dir. With `resume=<run_dir>` the saved config of
    that run is used and the run continues where its last checkpoint left it; `overrides`
    (`key=value` strings) may then raise its budget or change evaluation and logging keys
    (`EXTENDABLE`), which also continues a completed run.

    The run dir is locked for the life of the run (one process per dir). Disk errors
    become one-line `RunIOError`s, and results.json says `failed` wherever the disk lets it.
    """
    register_resolvers()
    resuming = bool(cfg.get("resume"))
    if resuming:
        run_dir = Path(str(cfg.resume))
    elif run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir
    elif overrides:
        raise ConfigError("overrides= is for resume=; compose them into cfg instead")
    run_dir = Path(run_dir).resolve()
    if resuming and not (run_dir / ".hydra" / "config.yaml").is_file():
        raise CheckpointError(f"resume={run_dir}: no run there (.hydra/config.yaml is missing)")
    dist = Dist.from_env()  # rank 0 of 1 outside torchrun
    try:
        if dist.is_main:  # under torchrun rank 0 holds the lock for all ranks
            runlock.acquire(run_dir, fresh=not resuming)
        try:
            return _train(cfg, run_dir, resuming, overrides or [], dist)
        finally:
            runlock.release(run_dir)
    except OSError as e:
        raise RunIOError(describe_os_error(e)) from None


def _train(cfg: DictConfig, run_dir: Path, resuming: bool,
           overrides: list[str], dist: Dist) -> dict[str, Any]:
    if resuming:
        cfg = _load_run_config(run_dir, overrides)
    _check_root(cfg)
    loop, algo, env, logger_cfg, schema = _resolve(cfg)
    _check_pairing(cfg, schema, env)
    device = resolve_device(str(cfg.device.type), cfg.device.get("index"),
                            uses_torch=getattr(schema, "uses_torch", True))
    if dist.enabled:
        device = _distributed_device(cfg, schema, device, dist)
    if not resuming and dist.is_main:
        _prepare_fresh_dir(run_dir, cfg)
    seed_everything(int(cfg.seed), bool(cfg.deterministic))
    set_threads(cfg.get("threads"), schema)  # default auto: see core/threads.py

    headline = getattr(schema, "headline", "charts/episodic_return")
    obj_cfg = cfg.get("objective") or {}
    objective = obj_cfg.get("metric") or getattr(schema, "objective", headline)
    ctx = RunContext(
        run_dir=run_dir, algo=algo, env=env, algo_name=str(cfg.algo.name),
        env_name=str(cfg.env.name), seed=int(cfg.seed), device=device,
        deterministic=bool(cfg.deterministic), logger_cfg=logger_cfg, headline=headline,
        checkpoint_every_s=float(cfg.checkpoint_every_s), resuming=resuming,
        network=cfg.get("network"), objective_tag=objective,
        minimize=tuple(getattr(schema, "minimize", ())),
        objective_stat=str(obj_cfg.get("stat") or "last"), dist=dist,
    )
    if not resuming:
        ctx.logger.text("config", _yaml_block(cfg))
        ctx.logger.hparams(sweep_hparams(_flat_hparams(cfg)),  # only what the sweep varies
                           list(dict.fromkeys([headline, objective])))
    log.info("%s %s on %s: %s", "resuming" if resuming else "run", ctx.algo_name,
             ctx.env_name, run_dir)
    before = results_file.read(run_dir) if resuming else None
    ctx.write_results("running")
    status: str | None = "failed"
    error: str | None = None
    try:
        with StopOnSignal(ctx):
            loop(ctx)
        stopped = ctx.stop_requested and not ctx.finished
        ctx.close()  # the event files' last writes: a disk fault there fails the run
        status = "interrupted" if stopped else "completed"
    except (KeyboardInterrupt, StopRequested):
        status = "interrupted"
    except (RlrunError, RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
        if not ctx.restoring:
            error = str(e) if isinstance(e, RlrunError) else f"{type(e).__name__}: {e}"
            raise
        status = None  # the saved state does not fit this code: leave the run as it was
        if before is not None:
            results_file.write(run_dir, before)
        if isinstance(e, RlrunError):
            raise
        detail = " ".join(line.strip() for line in str(e).splitlines()[:2])[:240]
        raise CheckpointError(
            f"resume={run_dir}: the checkpoint does not fit this version of rlrun or this"
            f" configuration ({type(e).__name__}: {detail})"
        ) from None
    except OSError as e:
        error = describe_os_error(e)
        raise
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
        raise
    finally:
        with contextlib.suppress(OSError):
            ctx.close()
        if error and dist.enabled:  # the first rank's failure, not its peers' lost links
            error = first_error(f"rank {dist.rank}: {error}")
        if status is not None:
            results = _write_final_results(ctx, status, error)
    if status == "interrupted":
        raise Interrupted(run_dir, ctx.step, ctx.has_checkpoint)
    if not dist.is_main:  # rank 0 writes and reports
        return results
    if obj_cfg.get("metric") and results.get("objective") is None:
        raise objective_missing(str(objective), results["metrics"], ctx.algo_name)
    log.info("done: %s = %.4g (results in %s)", headline,
             results["metrics"].get(headline, {}).get("last", float("nan")), run_dir)
    return results


def _write_final_results(ctx: RunContext, status: str, error: str | None) -> dict[str, Any]:
    """The run's last record. When the disk refuses it (or scalars.parquet) and the run had
    no error of its own, that fault is the run's error: `failed`, naming the file, wherever
    the disk still takes it, and a RunIOError. With an error of its own, that error wins."""
    try:
        return ctx.write_results(status, error)
    except OSError as e:
        fault = describe_os_error(e)
        if error is not None:
            log.error("not written: %s", fault)
        rec: dict[str, Any] = {}
        with contextlib.suppress(OSError):  # results.json alone, if scalars.parquet failed
            rec = ctx.write_results("failed" if error is None else status, error or fault,
                                    scalars=False)
        if error is None:
            raise RunIOError(fault) from None
        return rec


def _distributed_device(cfg: DictConfig, schema: type, device: str, dist: Dist) -> str:
    """Under torchrun (or a SLURM job's tasks): only the data-parallel loops, each rank on
    its own GPU."""
    if not getattr(schema, "data_parallel", False):
        raise ConfigError(f"algo={cfg.algo.name} does not train data-parallel: run it as one"
                          " process, without torchrun or SLURM tasks"
                          " (hydra.launcher.tasks_per_node=1); algo=lm and algo=ddpm do")
    if device.startswith("cuda") and cfg.device.get("index") is not None:
        raise ConfigError("device.index does not apply under torchrun: each rank uses"
                          " cuda:LOCAL_RANK (pick GPUs with CUDA_VISIBLE_DEVICES)")
    return dist.device(device)


def _check_root(cfg: DictConfig) -> None:
    """Top-level keys (no schema of their own): seed, deterministic, checkpoint_every_s."""
    check_root_keys(cfg)
    checks = (("seed", int, lambda v: 0 <= v < 2**32, "a non-negative integer below 2**32"),
              ("deterministic", bool, lambda v: True, "true or false"),
              ("checkpoint_every_s", (int, float), lambda v: v >= 0, "a number >= 0"),
              ("threads", (int, str, type(None)), valid_threads, "auto, null or an integer >= 1"))
    for key, types, ok, what in checks:
        value = cfg.get(key)
        if isinstance(value, bool) and types is not bool or not isinstance(value, types) \
                or not ok(value):
            raise ConfigError(f"{key}={value!r} must be {what}")
    stat = (cfg.get("objective") or {}).get("stat", "last")
    if stat not in ("last", "tail_mean", "best"):
        raise ConfigError(f"objective.stat={stat!r} must be last, tail_mean or best")


def _resolve(cfg: DictConfig):
    if cfg.env.get("id", "") is None:  # env=gym names its run after env.id
        raise ConfigError("env.id=null: name a Gymnasium task, e.g. env.id=CartPole-v1")
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
    if cfg.get("network") is not None:
        check_finite(OmegaConf.to_container(cfg.network, resolve=True), "network")
        check_network_fits(cfg, schema)
    check_objective_metric(cfg, schema)
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
    """Algorithm name -> task kinds it accepts, read from the algo configs of rlrun, of the
    installed plugins and of the user's config dirs (the first of a name wins, as in Hydra)."""
    from rlrun.core.plugins import config_dirs

    out: dict[str, tuple[str, ...]] = {}
    seen: set[str] = set()
    for path in [p for d in config_dirs() for p in sorted((d / "algo").glob("*.yaml"))]:
        if path.stem in seen:
            continue
        seen.add(path.stem)
        try:
            schema = OmegaConf.load(path).get("schema")
            if schema is not None:
                out[path.stem] = tuple(getattr(import_object(str(schema), "schema"),
                                               "task_kinds", ()))
        except (ConfigError, OmegaConfBaseException, yaml.YAMLError, AttributeError):
            continue  # another dir's half-written config is not this run's problem
    return out


# Keys a resume may change: budgets (which extend a run, completed or not) and the keys of
# evaluation, logging and resources, which do not change what is learned.
BUDGET_KEYS = ("algo.total_steps", "env.steps", "algo.episodes")
EXTENDABLE = re.compile(r"^(algo\.total_steps|env\.steps|algo\.episodes|algo\.eval_\w+"
                        r"|algo\.log_every|algo\.sample_every|logger\.\w+|threads"
                        r"|checkpoint_every_s)$")


def read_run_config(run_dir: Path, where: str) -> DictConfig:
    """A run dir's saved config, checked to name only code rlrun's configs name (a run dir
    from elsewhere must not choose what to import): for `resume=` and `rlrun-eval`."""
    path = run_dir / ".hydra" / "config.yaml"
    try:
        cfg = OmegaConf.load(path)
        if not isinstance(cfg, DictConfig) or not {"algo", "env"} <= set(cfg):
            raise ValueError("no algo and env sections")
    except (ValueError, OmegaConfBaseException, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{where}: {path} is not a readable rlrun config"
                              f" ({first[:160]})") from None
    check_references(OmegaConf.to_container(cfg, resolve=False), where)
    return cfg


def _load_run_config(run_dir: Path, overrides: list[str]) -> DictConfig:
    cfg = read_run_config(run_dir, f"resume={run_dir}")
    cfg.resume = None
    extended = _apply_resume_overrides(cfg, run_dir, overrides)
    if extended:
        for what in _budget_schedules(cfg):
            log.warning("budget raised on resume: %s; a run launched with this budget from"
                        " the start differs", what)
    rec = results_file.read(run_dir) or {}
    if rec.get("status") == "completed" and not extended:
        keys = " or ".join(k for k in BUDGET_KEYS if OmegaConf.select(cfg, k) is not None)
        raise CheckpointError(f"resume={run_dir}: that run already completed; to continue it,"
                              f" raise its budget ({keys}=...)")
    if rec.get("status") == "running":  # we hold the lock: its process is gone
        log.warning("resuming a stale run (PID %s on %s stopped without a word)",
                    rec.get("pid"), rec.get("host"))
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise CheckpointError(
            f"resume={run_dir}: no checkpoint was saved before it stopped; start it afresh"
        )
    return cfg


def _apply_resume_overrides(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> bool:
    """Apply `key=value` overrides a resume allows; True if one raised the budget."""
    allowed = sorted(k for k in _flat_keys(cfg) if EXTENDABLE.match(k))
    extended = False
    for item in overrides:
        key, eq, value = item.lstrip("+").partition("=")
        if not eq or not EXTENDABLE.match(key) or key not in allowed:
            shown = [k for k in allowed if not k.startswith("logger.")] + ["logger.*"]
            raise ConfigError(
                f"resume= continues a run with its saved config; only these keys may change:"
                f" {', '.join(shown)} (got {item})")
        new = OmegaConf.from_dotlist([f"{key}={value}"])
        old_value = OmegaConf.select(cfg, key)
        OmegaConf.update(cfg, key, OmegaConf.select(new, key), merge=False)
        if key in BUDGET_KEYS:
            new_value = OmegaConf.select(cfg, key)
            if not isinstance(new_value, int) or isinstance(new_value, bool):
                raise ConfigError(f"{key}={value!r} must be an integer")
            if new_value < old_value:
                raise ConfigError(f"{key}={new_value}: a resumed run's budget can only grow"
                                  f" (it was {old_value})")
            extended = extended or new_value > old_value
    return extended


def _budget_schedules(cfg: DictConfig) -> list[str]:
    """What follows the budget in this config, said when a resume raises the budget
    (docs/reliability.md): these schedules are recomputed against the new total."""
    a = cfg.algo
    out = []
    if a.get("anneal_lr"):
        out.append("algo.anneal_lr: the learning rate now anneals to 0 at the new total_steps"
                   " (it steps up where the run resumes)")
    if a.get("anneal_clip"):
        out.append("algo.anneal_clip: the clip range now anneals over the new total_steps")
    if a.get("exploration_fraction") is not None:
        out.append("algo.exploration_fraction: epsilon now decays over that fraction of the"
                   " new total_steps")
    if a.get("min_lr_ratio") is not None:
        out.append("the cosine learning-rate decay now ends at the new total_steps")
    return out


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


def _prepare_fresh_dir(run_dir: Path, cfg: DictConfig) -> None:
    if (run_dir / "results.json").exists():
        raise CheckpointError(
            f"{run_dir} already holds a run; pick another directory or resume={run_dir}"
        )
    hydra_dir = run_dir / ".hydra"
    if not (hydra_dir / "config.yaml").exists():  # called outside Hydra (tests, notebooks)
        hydra_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, hydra_dir / "config.yaml")


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


