"""The `rlrun` console script: a Hydra app around `rlrun.train.train`.

This is the one place that turns user errors (RlrunError, Hydra's config errors) into a
single line on stderr and exit code 2. Bugs keep their traceback.
"""

from __future__ import annotations

import os
import re
import sys

# On `resume=`, these reach Hydra; every other override goes to train() (which allows only
# budgets and evaluation/logging keys): composing them against the default config would
# fail with Hydra's "use +key" advice for keys the default algorithm lacks.
_HYDRA_SIDE = re.compile(r"^(resume=|hydra\.|hydra/|-)")
_resume_overrides: list[str] = []
# Hydra's flags that take their value as the next argument.
_FLAGS_WITH_VALUE = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn",
                     "--package", "-p", "--experimental-rerun")


def _sentences(lines: list[str]) -> str:
    out = ""
    for line in lines:
        out += line if not out else (" " if out.endswith((".", ":")) else ". ") + line
    return out


def _one_line(text: str) -> str:
    """Hydra's multi-line messages (option lists, search paths) folded into one line."""
    text = str(text).split("Config search path")[0]
    head, _, options = text.partition("Available options in ")
    lines = [ln.strip() for ln in head.splitlines()]
    out = _sentences([ln for ln in lines
                      if ln and not ln.startswith(("full_key:", "object_type=", "See https"))])
    if options:
        group, *items = [ln.strip() for ln in options.splitlines() if ln.strip()]
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


def _task(cfg) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from rlrun.core.errors import RlrunError
    from rlrun.train import Interrupted, train

    try:
        results = train(cfg, overrides=list(_resume_overrides) if cfg.get("resume") else None)
    except Interrupted as e:
        print(f"rlrun: {e}", file=sys.stderr)
        sys.exit(130)  # a sweep stops too: Ctrl-C means stop
    except RlrunError as e:
        if not cfg.get("resume"):  # a resumed run's dir keeps its own results
            _record_failed_job(cfg, e)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            _fail(str(e))  # exits here, before Hydra prints its "Error executing job" line
        # In a sweep one bad job must not stop the others: it is recorded, go on. NaN tells
        # a sweeper (Optuna) that the trial failed.
        return float("nan")
    objective = results.get("objective")
    return float("nan") if objective is None else float(objective)


def _record_failed_job(cfg, error: Exception) -> None:
    """Write a `failed` results.json (with the error) for a job that could not start or run;
    nothing more when the disk refuses (the error line is printed all the same)."""
    import contextlib
    import logging

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from rlrun.core import results

    if HydraConfig.get().mode == RunMode.MULTIRUN:
        logging.getLogger("rlrun").error("job failed: %s", error)
    with contextlib.suppress(OSError):
        results.mark_failed(HydraConfig.get().runtime.output_dir, str(error),
                            algo=str(cfg.algo.get("name")), env=str(cfg.env.get("name")),
                            seed=cfg.get("seed"))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rlrun` console script."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    try:
        _main()
    except KeyboardInterrupt:  # before a run started (imports, composing): nothing to save
        print("rlrun: interrupted before the run started; nothing was saved", file=sys.stderr)
        sys.exit(130)


def _main() -> None:
    args = sys.argv[1:]
    _resume_overrides.clear()
    if any(a.startswith("resume=") for a in args):
        hydra_side = []
        for i, a in enumerate(args):  # a flag's value (`--config-dir DIR`) goes with it
            if _HYDRA_SIDE.match(a.lstrip("+~")) or i and args[i - 1] in _FLAGS_WITH_VALUE:
                hydra_side.append(a)
            else:
                _resume_overrides.append(a)
        sys.argv = [sys.argv[0], *hydra_side]
    # Let Hydra's own errors reach us (instead of a multi-line report and exit 1).
    os.environ["HYDRA_FULL_ERROR"] = "1"
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rlrun.core.config import config_dir, register_resolvers
    from rlrun.core.errors import RlrunError, describe_os_error

    register_resolvers()
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
        msg = _one_line(str(e))
        if isinstance(cause, OmegaConfBaseException) and str(cause) not in str(e):
            msg = _sentences([msg, _one_line(str(cause))])
        _fail(msg)
    except OSError as e:  # Hydra making the run dir or writing .hydra/ (read-only, full)
        _fail(describe_os_error(e))


def _fail(message: str) -> None:
    print(f"rlrun: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
