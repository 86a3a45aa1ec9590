"""The `rlrun` console script: a Hydra app around `rlrun.train.train`.

This is the one place that turns user errors (RlrunError, Hydra's config errors) into a
single line on stderr and exit code 2. Bugs keep their traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from typing import Any

# On `resume=`, these reach Hydra; every other override goes to train() (which allows only
# budgets and evaluation/logging keys): composing them against the default config would
# fail with Hydra's "use +key" advice for keys the default algorithm lacks.
_HYDRA_SIDE = re.compile(r"^(resume=|hydra\.|hydra/|-)")
_resume_overrides: list[str] = []
# Hydra's launchers that only run sweeps' jobs (hydra/launcher=...), ours and the extras'
_SWEEP_LAUNCHERS = ("joblib", "submitit_local", "submitit_slurm", "slurm", "ray", "ray_aws")
# Hydra's flags that take their value as the next argument.
_FLAGS_WITH_VALUE = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn",
                     "--package", "-p", "--experimental-rerun")


def _sentences(lines: list[str]) -> str:
    out = ""
    for line in lines:
        out += line if not out else (" " if out.endswith((".", ":", "?")) else ". ") + line
    return out


# Hydra's advice for an unknown key is to add it with `+`: for rlrun that is never the fix
# (nothing would read the key), so it is cut and the closest existing keys are named instead.
_APPEND_ADVICE = re.compile(r"\s*To append to your (config|default list) use \+\S*\.?")
# "not in struct" (a plain node) or "not in 'UCBConfig'" (a schema's structured node)
_UNKNOWN_KEY = re.compile(r"Could not override '([^']+)'\..*Key '([^']+)' (?:is )?not in")
_TUNED_KEY = re.compile(r"In 'tuned/([^/']+)/([^']+)': \w+ raised while composing config:"
                        r" Key '(?:(\w+)\.)?(\w+)' not in '(\w+)'")
_NOT_INTEGER = re.compile(r"Error merging override ([\w.]+)=(\S+?)\.? Value '([^']*)' of type"
                          r" 'float' could not be converted to Integer")
_BAD_VALUE = re.compile(r"Error merging override ([\w.]+)=(\S+?)\.? Value '([^']*)' of type"
                        r" '(\w+)' could not be converted to (\w+)")


def _one_line(text: str) -> str:
    """Hydra's multi-line messages (option lists, search paths) folded into one line."""
    text = _APPEND_ADVICE.sub("", str(text).split("Config search path")[0])
    flat = " ".join(text.split())
    unknown = _UNKNOWN_KEY.search(flat)
    if unknown:
        return _unknown_key(unknown.group(1), unknown.group(2))
    tuned = _TUNED_KEY.search(flat)
    if tuned:  # algo=ddpg network=transformer: the pair's tuned values set MLP widths
        algo, env, group, key, schema = tuned.groups()
        group = group or _group_of_schema(schema)
        chosen = next((a.partition("=")[2] for a in sys.argv[1:]
                       if a.startswith(f"{group}=")), None)
        what = f"{group}={chosen}" if chosen else f"this {group} ({schema})"
        return (f"{what} does not fit algo={algo}: the tuned values"
                f" configs/tuned/{algo}/{env}.yaml set {group}.{key}, which {what} does not"
                f" have; use the {group} they are for, or drop them with ~tuned@_global_")
    integral = _NOT_INTEGER.search(flat)
    if integral:  # algo.total_steps=1e5: Hydra reads a float, the schema wants an integer
        key, given, value = integral.groups()
        whole = float(value)
        fix = f": write {int(whole)}" if whole.is_integer() else ""
        return f"{key}={given} must be an integer{fix}"
    bad = _BAD_VALUE.search(flat)
    if bad:
        key, given, _, kind, want = bad.groups()
        want = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false",
                "String": "text"}.get(want, want)
        return f"{key}={given} must be {want}, not {'a list' if kind == 'ListConfig' else kind}"
    present = re.search(r"An item is already at '([^']+)'", text)
    if present:  # `+algo.epsilon=0.2`: the key exists, so no `+` is needed
        return f"{present.group(1)} is already an option: set it without the +"
    head, _, options = text.partition("Available options in ")
    lines = [ln.strip() for ln in head.splitlines()]
    out = _sentences([ln for ln in lines
                      if ln and not ln.startswith(("full_key:", "object_type=", "See https"))])
    if options:
        group, *items = [ln.strip() for ln in options.splitlines() if ln.strip()]
        missing = re.search(r"Could not find '(\w+)/([^'/]+)'", out)
        if missing:  # algo=qlearning: the closest option first, as for a mistyped key
            from rlrun.core.config import did_you_mean

            close = did_you_mean(missing.group(2), [i.strip(",") for i in items],
                                 f"{missing.group(1)}=")
            if close.startswith(";"):
                out = _sentences([out + close])
        out = _sentences([out, f"Available options in {group} {', '.join(items)}"])
        plugin = re.search(r"Could not find 'hydra/(launcher|sweeper)/(\w+)'", out)
        if plugin:  # launchers and sweepers come with extras
            extra = "ray" if plugin.group(2).startswith("ray") else "sweep"
            out = _sentences([out, f"Install it with: pip install 'rlrun[{extra}]'"])
        if re.search(r"Could not find 'env/", out):  # any Gymnasium id, even without a file
            out = _sentences([out, "Any registered Gymnasium id runs as env=gym env.id=<id>"])
    else:
        missing = re.search(r"Could not find '([\w/]+)/([^'/]+)'", out)
        if missing:  # Hydra lists no options for nested groups such as experiment presets
            from rlrun.core.config import group_options

            found = group_options(missing.group(1))  # rlrun's, plugins' and --config-dir's
            if found:
                out = _sentences([out, f"Available: {', '.join(found)}"])
    return out


def _group_of_schema(class_name: str) -> str:
    """The config group whose registered schema is named `class_name` (network, when none
    says otherwise: the group the tuned values of an algorithm and task set besides algo)."""
    from hydra.core.config_store import ConfigStore

    for group, nodes in ConfigStore.instance().repo.get("schema", {}).items():
        for node in nodes.values():
            cfg = getattr(node, "node", None)
            if cfg is not None and str(cfg.get("schema") or cfg.get("_target_") or "") \
                    and type(cfg._metadata.object_type).__name__ != "NoneType" \
                    and cfg._metadata.object_type.__name__ == class_name:
                return group
    return "network"


def _lexer_error(override: str, text: str) -> str:
    """Hydra's `LexerNoViableAltException: key=~/x` plus a caret line: name the character
    its grammar refuses and show the quoting that passes it through."""
    lines = text.splitlines()
    col = len(lines[1]) - 1 if len(lines) > 1 and lines[1].strip() == "^" else -1
    bad = f" at {lines[0][col]!r}" if 0 <= col < len(lines[0]) else ""
    key, eq, value = override.partition("=")
    if not eq or not value or "'" in value:
        return f"cannot parse the override '{override}'{bad}"
    return (f"cannot parse the override '{override}'{bad}: quote the value for Hydra, in"
            f" the shell: '{key}=\"{value}\"'")


def _unknown_key(path: str, missing: str) -> str:
    """`algo.epsilonn=0.1`: name the closest keys of that node of the composed config (composed
    again without the offending override), as a `did you mean`."""
    from omegaconf import DictConfig, OmegaConf

    from rlrun.core.config import did_you_mean
    from rlrun.preflight import GROUPS

    parts = path.split(".")
    parent = ".".join(parts[:parts.index(missing)]) if missing in parts else ""
    full = f"{parent}.{missing}" if parent else missing
    cfg = _composed_without(path)
    node = (OmegaConf.select(cfg, parent) if parent else cfg) if cfg is not None else None
    if not isinstance(node, DictConfig):
        return f"{full} is not an rlrun option"
    keys = [str(k) for k in node if k not in ("name", "kind", "loop", "schema", "_target_")]
    owner = parent or "rlrun"
    if not parent:
        keys = list(dict.fromkeys([*keys, *GROUPS]))
    elif parent in ("algo", "env") and node.get("name"):
        owner = f"{parent}={node.name}"
    budget = _budget_of(cfg) if cfg is not None else None
    if full in ("algo.total_steps", "env.steps", "algo.episodes") and budget and budget != full:
        return (f"{full} is not an option of algo={cfg.algo.name}: its budget is {budget}"
                f" (e.g. {budget}=...); algo.total_steps is the budget of deep RL, the LM and"
                " DDPM, env.steps of bandits, algo.episodes of tabular methods")
    if parent == "algo" and _sweeps_algorithms():
        return (f"{full} is not an option of {owner}, an algorithm of this sweep: sweep"
                " algorithms that all have it, or sweep each algorithm on its own")
    return (f"{full} is not an option of {owner}"
            f"{did_you_mean(missing, keys, f'{parent}.' if parent else '')}")


def _budget_of(cfg) -> str | None:
    """The budget key of the composed config's algorithm (its spec), if known."""
    from rlrun.core.config import import_object
    from rlrun.core.errors import RlrunError

    try:
        spec = getattr(import_object(str(cfg.algo.get("schema")), "schema"), "spec", None)
    except (RlrunError, AttributeError):
        return None
    return getattr(spec, "budget", None)


def _sweeps_algorithms() -> bool:
    return any(re.match(r"^algo=[^,]+,", a) for a in sys.argv[1:])


def _composed_without(path: str):
    """The config composed from this command line minus the override of `path` (None when
    it cannot be composed, e.g. a sweep's comma lists)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rlrun.core.config import config_dir

    keep = []
    for arg in sys.argv[1:]:
        key, eq, value = arg.partition("=")
        if arg.startswith("-") or not eq or key.lstrip("+~") in (path, "") \
                or key.lstrip("+~").startswith("hydra") or "(" in value:
            continue
        if "," in value and not re.search(r"[\[{'\"]", value):  # a sweep: its first value
            value = value.split(",")[0]
        keep.append(f"{key}={value}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            return compose("train", overrides=keep)
    except (HydraException, OmegaConfBaseException, ValueError):
        return None
    finally:
        GlobalHydra.instance().clear()


def _task(cfg) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from rlrun.core.distributed import rank
    from rlrun.core.errors import Interrupted, RlrunError, RunDirBusyError, RunDirTakenError
    from rlrun.core.logger import detach_log_files
    from rlrun.launch.cluster import slurm_job
    from rlrun.preflight import preflight
    from rlrun.train import train

    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    output_dir = HydraConfig.get().runtime.output_dir
    started = False
    try:
        # A SLURM job: a requeued one continues its own run; submitit's requeue signal saves
        # a checkpoint first (rlrun.launch.cluster). Outside SLURM, cfg as it is.
        with slurm_job(cfg, output_dir) as cfg:
            resuming = bool(cfg.get("resume"))
            try:
                plan = None if resuming else preflight(cfg)
            except Exception:
                _raise_startup_sigint()  # a Ctrl-C that a library's clean-up turned into this
                raise
            _raise_startup_sigint()  # a Ctrl-C that a library swallowed: do not start
            started = True
            results = train(cfg, overrides=list(_resume_overrides) if resuming else None,
                            plan=plan)
    except KeyboardInterrupt:  # Ctrl-C in the preflight (its imports): no run to keep
        if not started and not cfg.get("resume") and not sweep and rank() == 0:
            _remove_unstarted_run_dir(output_dir)
        raise  # main() prints the one line
    except Interrupted as e:
        if rank() == 0:  # under torchrun every rank stopped at this step: one line
            print(f"rlrun: {_resume_hint(str(e))}", file=sys.stderr)
        sys.exit(130)  # a sweep stops too: Ctrl-C means stop
    except RlrunError as e:
        if isinstance(e, RunDirBusyError | RunDirTakenError):  # the dir is another run's:
            detach_log_files(HydraConfig.get().runtime.output_dir)  # not a line in its log
        if not cfg.get("resume") and rank() == 0:  # a resumed run's dir keeps its results
            if started or sweep:
                _record_failed_job(cfg, e)  # a sweep's job dir says why it failed
            else:
                _remove_unstarted_run_dir(output_dir)
        if not sweep:
            _fail(str(e))  # exits here, before Hydra prints its "Error executing job" line
        # In a sweep one bad job must not stop the others: it is recorded, go on. NaN tells
        # a sweeper (Optuna) that the trial failed.
        return float("nan")
    objective = results.get("objective")
    return float("nan") if objective is None else float(objective)


def _remove_unstarted_run_dir(run_dir: str) -> None:
    """A run that failed its preflight leaves no run dir: remove what Hydra wrote before
    rlrun's code ran (.hydra/, the job's log file, the run-dir lock), then the dir and the
    parents that this left empty (outputs/<algo>/<env>/), never anything else."""
    import contextlib
    import os
    import shutil
    from pathlib import Path

    from rlrun.core import runlock

    d = Path(run_dir).resolve()
    if not runlock.holds(d):  # not this process's dir (a live run's, or none)
        return
    runlock.release(d)
    with contextlib.suppress(OSError):
        shutil.rmtree(d / ".hydra")
        for name in ("rlrun.log", runlock.lock_path(d).name):
            (d / name).unlink(missing_ok=True)
        stop = Path.cwd().resolve()
        while d != stop and stop in d.parents and not any(os.scandir(d)):
            d.rmdir()
            d = d.parent


def _resume_hint(message: str) -> str:
    """Under torchrun (or a SLURM job's tasks), the resume command is a torchrun one with
    the same processes."""
    from rlrun.core.distributed import env_world, ranks_per_node

    world = env_world()[2]
    if world == 1:
        return message
    per_node = ranks_per_node()
    nodes = f"--nnodes={world // per_node} " if per_node != world else ""
    return message.replace("rlrun resume=",
                           f"torchrun {nodes}--nproc_per_node={per_node} -m rlrun resume=")


def _record_failed_job(cfg, error: Exception) -> None:
    """Write a `failed` results.json (with the error) for a job that could not start or run;
    nothing more when the disk refuses (the error line is printed all the same), and
    nothing at all in a dir that another run holds (`results.mark_failed` takes its lock)."""
    import contextlib
    import logging

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from rlrun.core import results
    from rlrun.core.errors import RunDirBusyError, RunDirTakenError

    if HydraConfig.get().mode == RunMode.MULTIRUN:
        logging.getLogger("rlrun").error("job failed: %s", error)
    if isinstance(error, RunDirBusyError | RunDirTakenError):
        return  # its record, whatever it says, is the other run's
    seed = cfg.get("seed")  # what results.json holds: an integer, or nothing (seed=[0,1])
    with contextlib.suppress(OSError):
        results.mark_failed(HydraConfig.get().runtime.output_dir, str(error),
                            algo=str(cfg.algo.get("name")), env=str(cfg.env.get("name")),
                            seed=seed if isinstance(seed, int) and not isinstance(seed, bool)
                            else None)


# A Ctrl-C before the run started, remembered: a library that catches BaseException during
# the imports would otherwise swallow it and the job would run to its end (seen in CI).
_startup_sigint: list[int] = []


def _on_startup_sigint(signum: int, frame: Any) -> None:
    _startup_sigint.append(signum)
    raise KeyboardInterrupt


def _raise_startup_sigint() -> None:
    """Re-raise a Ctrl-C that came during the imports and preflight, in case it was
    swallowed there: the run must not start."""
    if _startup_sigint:
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rlrun` console script."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    _startup_sigint.clear()
    installed = False
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored, not ours
        with contextlib.suppress(ValueError):  # outside the main thread: as it is
            signal.signal(signal.SIGINT, _on_startup_sigint)
            installed = True
    from rlrun.core import distributed

    def interrupted() -> None:
        if distributed.rank() == 0:
            print("rlrun: interrupted before the run started; nothing was saved",
                  file=sys.stderr)
        sys.exit(130)

    together = False  # under torchrun, ranks wait for each other only on a run's clean end
    try:
        _main()
        together = True
    except KeyboardInterrupt:  # before a run started (imports, composing): nothing to save
        interrupted()
    except SystemExit as e:
        if e.code not in (None, 0, 130) and _startup_sigint:
            interrupted()  # a start-up Ctrl-C that a library turned into an error
        together = e.code in (None, 0, 130)  # done, or stopped by all ranks at one step
        raise
    except Exception:
        if _startup_sigint:  # the same, escaping as a traceback (seen: omegaconf's clean-up
            interrupted()  # of a half-built ListConfig raised AttributeError)
        raise
    finally:
        if installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        distributed.teardown(together)


def _main() -> None:
    args = sys.argv[1:]
    for arg in args:
        if re.match(r"^[+~]*=", arg):  # Hydra answers these with a ValueError traceback
            _fail(f"the override {arg!r} names no key: write key=value, e.g. seed=1")
        group, _, value = arg.lstrip("+").partition("=")
        if value in ("null", "None"):  # a config group's: Hydra answers a ValueError traceback
            from rlrun.preflight import GROUPS

            if group in GROUPS:
                _fail(f"{arg}: {group} is a config group, which takes the name of one of its"
                      f" options (rlrun --help lists them), not null")

    multirun = any(a in ("-m", "--multirun") or a.startswith("hydra.mode=") for a in args)
    launcher = next((a.partition("=")[2] for a in args if a.startswith("hydra/launcher=")), None)
    if launcher in _SWEEP_LAUNCHERS and not multirun:  # an unknown one: Hydra names it
        _fail(f"hydra/launcher={launcher} launches the jobs of a sweep: add -m (rlrun -m"
              f" hydra/launcher={launcher} ...); without -m the run would train here")
    from rlrun.core.errors import RlrunError
    from rlrun.launch.callbacks import check_launcher_overrides

    try:
        check_launcher_overrides(args)
    except RlrunError as e:
        _fail(str(e))
    if multirun and any(a in ("--cfg", "-c") for a in args):
        _fail("--cfg prints one composed config and launches nothing: drop -m and give one"
              " value per key (rlrun --cfg job algo.epsilon=0.1)")

    if multirun:  # `-m algo=ppo,sac algo.total_steps=5000`: see _sweep_group_keys
        args = _sweep_group_keys(args)
        sys.argv = [sys.argv[0], *args]

    _resume_overrides.clear()
    if any(a.startswith("resume=") for a in args):
        hydra_side = []
        for i, a in enumerate(args):  # a flag's value (`--config-dir DIR`) goes with it
            if _HYDRA_SIDE.match(a.lstrip("+~")) or i and args[i - 1] in _FLAGS_WITH_VALUE:
                hydra_side.append(a)
            else:
                _resume_overrides.append(a)
        sys.argv = [sys.argv[0], *hydra_side]
    from rlrun.core import distributed

    if any(a in ("--help", "-h") for a in args):
        _help(args)
    if distributed.is_distributed():
        _start_distributed()
    # Let Hydra's own errors reach us (instead of a multi-line report and exit 1).
    os.environ["HYDRA_FULL_ERROR"] = "1"
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rlrun.core.config import config_dir, register_resolvers
    from rlrun.core.errors import RlrunError, describe_os_error
    from rlrun.schemas import register_all

    register_resolvers()
    register_all()
    app = hydra.main(config_path=str(config_dir()), config_name="train",
                     version_base="1.3")(_task)
    try:
        app()
    except RlrunError as e:
        _fail(str(e))
    except (HydraException, OmegaConfBaseException) as e:
        cause = e.__cause__
        if isinstance(cause, RlrunError):
            _fail(str(cause))
        text = str(e)
        override = getattr(e, "override", None)  # an OverrideParseException
        if override and text.startswith("LexerNoViableAltException"):
            _fail(_lexer_error(str(override), text))
        if override and override not in text:
            text = f"cannot parse the override '{override}': {text}"
        if isinstance(cause, OmegaConfBaseException) and str(cause) not in text:
            text = f"{text}\n{cause}"
        _fail(_one_line(text))
    except OSError as e:  # Hydra making the run dir or writing .hydra/ (read-only, full)
        _fail(describe_os_error(e))
    except Exception as e:
        if isinstance(e, ValueError) and str(e).startswith("Only one of --run, --multirun"):
            _fail(f"{str(e).splitlines()[0]}: give one of them")  # Hydra's flags clash
        # Hydra's log file handler in a read-only or full run dir
        if isinstance(e, ValueError) and isinstance(e.__cause__, OSError):
            _fail(describe_os_error(e.__cause__))
        if distributed.is_distributed():
            _fail_rank(e)
        from rlrun.launch.cluster import PeerFailed, describe_uncompleted

        if isinstance(e, PeerFailed):  # a data-parallel SLURM job: the rank that failed first
            print(f"rlrun: error: {e}", file=sys.stderr)
            sys.exit(1)
        if type(e).__name__ != "UncompletedJobError":  # submitit's, for a job with no result
            raise

        print(f"rlrun: error: {describe_uncompleted(str(e))}", file=sys.stderr)
        sys.exit(1)
    from rlrun.launch import callbacks

    if callbacks.failed_jobs:  # the sweep finished the others and printed its summary
        sys.exit(1)


def _sweep_group_keys(args: list[str]) -> list[str]:
    """In a sweep over a group's options (`algo=ppo,sac`), that group's keys
    (`algo.total_steps=5000`) are set with Hydra's `++`: Hydra first composes the sweep's base
    config with the group's default option (epsilon_greedy), which has no such key, and
    would refuse the whole sweep. Each job still composes its own algorithm with the key, and
    a job whose algorithm lacks it fails alone."""
    swept = {key for key, eq, value in (a.partition("=") for a in args)
             if eq and key in ("algo", "env", "network") and "," in value}
    out = []
    for a in args:
        key = a.partition("=")[0]
        if key.split(".")[0] in swept and "." in key and a[0] not in "+~":
            a = "++" + a
        out.append(a)
    return out


def _help(args: list[str]) -> None:
    """`rlrun --help [overrides]`: the help template (configs/hydra/help/rlrun.yaml) over the
    config these overrides compose, with every setting of its algorithm, env and network.

    Rendered here rather than by Hydra's `--help`, which also lists every config group of
    the search path by composing a fresh config repository per group (about 200 deep copies
    of the ConfigStore, where rlrun's schemas live): seconds of start-up for lines the
    template does not show."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rlrun.core.config import config_dir, register_resolvers
    from rlrun.schemas import register_all

    overrides, dirs, skip = [], [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
        elif a in ("--help", "-h", "-m", "--multirun"):
            continue
        elif a in ("--config-dir", "-cd"):
            dirs.append(args[i + 1] if i + 1 < len(args) else "")
            skip = True
        elif a.startswith("--config-dir="):
            dirs.append(a.partition("=")[2])
        elif not a.startswith("-"):
            overrides.append(a)
    if dirs:  # as Hydra's --config-dir: searched first
        from pathlib import Path

        paths = ",".join(f"file://{Path(d).resolve()}" for d in dirs)
        overrides.append(f"hydra.searchpath=[{paths}]")
    register_resolvers()
    register_all()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
            from hydra.core.hydra_config import HydraConfig

            HydraConfig.instance().set_config(cfg)
            text = str(cfg.hydra.help.template)
    except (HydraException, OmegaConfBaseException) as e:
        _fail(_one_line(str(e)))
    finally:
        GlobalHydra.instance().clear()
    print(text)
    sys.exit(0)


def _start_distributed() -> None:
    """Under torchrun: join the process group before Hydra composes, so that every rank
    names the same run dir (rank 0's clock), and keep ranks > 0 quiet (no Hydra log file,
    no log lines): rank 0 speaks and writes for the run (rlrun.core.distributed)."""
    from rlrun.core import config, distributed

    if any(a in ("-m", "--multirun") or a.startswith("hydra.mode=") for a in sys.argv[1:]):
        _fail("a sweep (-m) does not run under torchrun: launch one torchrun per run, or sweep"
              " with a launcher (docs/scaling.md)")
    distributed.setup()
    config.shared_start_time = distributed.shared_time()
    if distributed.rank() > 0:
        sys.argv += ["hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


def _fail_rank(error: BaseException) -> None:
    """A bug under torchrun: one line, from the rank that failed first (its peers then lose
    their link and fail too, silently); the traceback goes to torchrun's error file."""
    from rlrun.core import distributed

    r = distributed.rank()
    first = distributed.first_error(f"rank {r}: {type(error).__name__}: {error}")
    if first.startswith(f"rank {r}: "):
        print(f"rlrun: error: {first.splitlines()[0]}", file=sys.stderr)
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(error)  # for torchrun's summary, when it asks
    sys.exit(1)


def _fail(message: str) -> None:
    from rlrun.core import distributed

    if distributed.is_distributed():  # the same error on every rank: rank 0 says it
        distributed.report_error(f"rank {distributed.rank()}: {message}")
        if distributed.rank() > 0:
            sys.exit(2)
    from rlrun.core.escape import one_line

    # one line, and inert: messages quote values from configs and run dirs (ANSI escapes)
    print(f"rlrun: error: {one_line(message)}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
