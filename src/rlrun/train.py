"""`train(cfg)`: the run lifecycle. Check the config (`rlrun.preflight`), open the run dir,
resolve device, seed and threads, run the algorithm's loop, write results.

Tests call this directly; `rlrun.cli` calls it under Hydra. It returns the run's results
(the same dict that is written to `results.json`), whose `objective` a sweeper optimises.
What a `resume=` may change is `rlrun.core.resume`'s policy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlrun.core import results as results_file
from rlrun.core import runlock
from rlrun.core.device import resolve_device
from rlrun.core.distributed import Dist, first_error
from rlrun.core.errors import (
    CheckpointError,
    ConfigError,
    Interrupted,
    RlrunError,
    RunIOError,
    describe_os_error,
)
from rlrun.core.resume import load_run_config, read_run_config
from rlrun.core.run import RunContext, StopOnSignal, StopRequested
from rlrun.core.seeding import seed_everything
from rlrun.core.sweep import sweep_hparams
from rlrun.core.threads import set_threads
from rlrun.preflight import Plan, objective_missing, preflight

log = logging.getLogger("rlrun")

__all__ = ["Interrupted", "read_run_config", "train"]


def train(cfg: DictConfig, run_dir: str | Path | None = None,
          overrides: list[str] | None = None, plan: Plan | None = None,
          stop_at: Callable[[int], bool] | None = None) -> dict[str, Any]:
    """Run one experiment described by a composed config; return its results dict.

    `run_dir` defaults to Hydra's output dir. With `resume=<run_dir>` the saved config of
    that run is used and the run continues where its last checkpoint left it; `overrides`
    (`key=value` strings) may then raise its budget or change evaluation and logging keys
    (`rlrun.core.resume`), which also continues a completed run. `plan`: the config's
    `preflight`, when the caller already made it. `stop_at(step)`: a stop requested as
    Ctrl-C would, when it returns True at a tick (`rlrun.testing`).

    The run dir is locked for the life of the run (one process per dir). Disk errors
    become one-line `RunIOError`s, and results.json says `failed` wherever the disk lets it.
    """
    from rlrun.schemas import register_all

    register_all()  # the schemas a resumed config names are trusted once registered
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
    if not resuming and plan is None:
        plan = preflight(cfg)  # before the run dir is touched
    dist = Dist.from_env()  # rank 0 of 1 outside torchrun
    try:
        if dist.is_main:  # under torchrun rank 0 holds the lock for all ranks
            runlock.acquire(run_dir, fresh=not resuming)
        try:
            if resuming:
                cfg = load_run_config(run_dir, overrides or [])
                plan = preflight(cfg, init_from=False)  # its weights are its checkpoint's
            assert plan is not None
            return _train(cfg, plan, run_dir, resuming, dist, stop_at)
        finally:
            runlock.release(run_dir)
    except OSError as e:
        hint = ("a resumed run writes into its dir: copy it somewhere writable and resume the"
                " copy" if resuming else "hydra.run.dir=...")
        raise RunIOError(describe_os_error(e, hint)) from None


def _train(cfg: DictConfig, plan: Plan, run_dir: Path, resuming: bool, dist: Dist,
           stop_at: Callable[[int], bool] | None) -> dict[str, Any]:
    spec = plan.spec
    device = resolve_device(str(cfg.device.type), cfg.device.get("index"),
                            uses_torch=spec.uses_torch)
    if dist.enabled:
        device = _distributed_device(cfg, spec, device, dist)
    if not resuming and dist.is_main:
        _prepare_fresh_dir(run_dir, cfg)
    seed_everything(int(cfg.seed), bool(cfg.deterministic))
    set_threads(cfg.get("threads"), spec)  # default auto: see core/threads.py

    headline = spec.headline
    obj_cfg = cfg.get("objective") or {}
    objective = obj_cfg.get("metric") or spec.objective
    ctx = RunContext(
        run_dir=run_dir, algo=plan.algo, env=plan.env, algo_name=str(cfg.algo.name),
        env_name=str(cfg.env.name), seed=int(cfg.seed), device=device,
        deterministic=bool(cfg.deterministic), logger_cfg=plan.logger, headline=headline,
        checkpoint_every_s=float(cfg.checkpoint_every_s), resuming=resuming,
        network=cfg.get("network"), objective_tag=objective, minimize=spec.minimize,
        also_report=spec.also_report,
        objective_stat=str(obj_cfg.get("stat") or "last"), dist=dist, stop_at=stop_at,
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
            plan.loop(ctx)
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


def _distributed_device(cfg: DictConfig, spec: Any, device: str, dist: Dist) -> str:
    """Under torchrun (or a SLURM job's tasks): only the data-parallel loops, each rank on
    its own GPU."""
    if not spec.data_parallel:
        raise ConfigError(f"algo={cfg.algo.name} does not train data-parallel: run it as one"
                          " process, without torchrun or SLURM tasks"
                          " (hydra.launcher.tasks_per_node=1); algo=lm and algo=ddpm do")
    if device.startswith("cuda") and cfg.device.get("index") is not None:
        raise ConfigError("device.index does not apply under torchrun: each rank uses"
                          " cuda:LOCAL_RANK (pick GPUs with CUDA_VISIBLE_DEVICES)")
    return dist.device(device)


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


