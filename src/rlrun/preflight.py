"""`preflight(cfg)`: every check that can run before a run dir exists, once, in one place.

`train` (fresh runs and `resume=`), `rlrun-eval` and the docs-commands test call it; the CLI
calls it before Hydra's run dir is kept, so a config error leaves no run dir behind. In order:

1. the root keys (`seed`, `deterministic`, `threads`, `objective`...), no unknown ones;
2. the wiring: the algorithm's loop and schema, the env's schema (importable, registered),
   and the device (`device=cuda` where there is none);
3. every setting against its schema (types, bounds, choices, NaN; `rlrun.core.schema`), and
   the algorithm's declarations (`AlgoSpec`);
4. the pairing of algorithm and task (task kind, action space), the network fitting the
   task, the objective metric being one the algorithm logs;
5. the data: an env schema with a `check()` (text files, image folders, token shards) looks
   at its path (a `check(cfg)` is given the composed config: a shard must hold a window of
   `network.block_size` tokens); an algorithm schema with a `check_env(env, data)` checks
   what needs the task itself (the tabular loops: a transition table, the discount, the
   shape of a policy file; DDPM's labels for a conditional model; the LM's negative prompt
   against the corpus; PPO's minibatches against its env copies), and a
   `check_network(network, env)` what it needs of its network (the LM's causal attention,
   the classifier's bidirectional one, DDPM's image side against the UNet's levels);
6. the starting point: `algo.init_from` names an LM run whose architecture and tokens fit
   (`rlrun.algos.init_from.check`).

It returns a `Plan`: what `train` needs to start, already built.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import math
from dataclasses import dataclass
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlrun.core.config import (
    check_finite,
    config_dir,
    did_you_mean,
    import_object,
    register_resolvers,
    validate,
)
from rlrun.core.device import resolve_device
from rlrun.core.errors import ConfigError, PairingError
from rlrun.core.logger import LoggerConfig
from rlrun.core.schema import AlgoSpec, spec_of
from rlrun.core.threads import max_threads
from rlrun.core.threads import valid as valid_threads
from rlrun.schemas import register_all

# The config groups at the top level; train.yaml's own keys are read from the file.
GROUPS = ("algo", "env", "network", "device", "logger", "experiment", "hparams_search")

# What each task kind is and where to find one, for pairing errors (env configs: `kind:`).
TASK_KINDS = {
    "bandit": ("a bandit testbed", "env=bandit_testbed, env=contextual_bandit"),
    "tabular": ("a tabular task with discrete states and actions and a transition table",
                "e.g. env=cliff_walking_book, env=CliffWalking-v1"),
    "gym": ("a Gymnasium task without a transition table", "e.g. env=CartPole-v1"),
    "text": ("a text corpus", "e.g. env=stdlib_docs, env=text_file env.path=..."),
    "tokens": ("token shards from rlrun-prepare", "env=tokens env.path=DIR"),
    "images": ("an image data set", "e.g. env=digits, env=image_folder env.path=..."),
    "text_classification": ("labelled text", "e.g. env=stdlib_docstrings, env=imdb env.path=..."),
}


@dataclass
class Plan:
    """A checked config, ready to run: the loop, the typed configs and the declarations."""

    loop: Any
    algo: Any  # the algorithm's schema dataclass, built and checked
    env: Any
    logger: LoggerConfig
    schema: type
    spec: AlgoSpec


def preflight(cfg: DictConfig, data: bool = True, init_from: bool = True,
              device: bool = True) -> Plan:
    """Every check that needs no run dir (see the module docstring); a `Plan`, or the first
    problem as one-line RlrunError. `data=False` skips the data paths and `algo.init_from`
    (rlrun-eval replays a run from its checkpoint and saved vocabulary, without the training
    data); `init_from=False` skips the latter alone (a resumed run has its own weights);
    `device=False` skips the device (rlrun-eval chooses its own)."""
    register_resolvers()
    register_all()
    check_root(cfg)
    plan = _resolve(cfg)
    dev = None
    if device:  # device=cuda where there is none: here, not in a run dir (train resolves it)
        dev = resolve_device(str(cfg.device.type), cfg.device.get("index"),
                             uses_torch=plan.spec.uses_torch)
    check_pairing(cfg, plan)
    check_fast_path_fits(cfg, plan, dev)
    check = getattr(plan.env, "check", None)
    if data and callable(check):
        # data paths (text files, image folders, shards): a DataError before any run dir
        check(cfg) if inspect.signature(check).parameters else check()
    fits = getattr(plan.algo, "check_env", None)
    if callable(fits):  # what needs the task built: a P table, the discount, a policy file
        fits(plan.env, data=data)
    if data and init_from and getattr(plan.algo, "init_from", None):
        from rlrun.algos.init_from import check as check_init_from

        check_init_from(cfg, plan.algo, plan.env)
    return plan


# ---- 1. the root keys --------------------------------------------------------------------------
def check_root(cfg: DictConfig) -> None:
    """Top-level keys: no unknown one (`+sed=1`, Hydra's advice for a typo, followed, would
    add a key nothing reads), and the values of seed, deterministic, checkpoint_every_s,
    threads and objective."""
    root = OmegaConf.load(config_dir() / "train.yaml")
    known = [k for k in root if k not in ("defaults", "hydra")] + list(GROUPS)
    for key in cfg:
        if key not in known:
            raise ConfigError(f"{key} is not an rlrun option{did_you_mean(str(key), known)}")
    checks = (("seed", int, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)"),
              ("deterministic", bool, lambda v: True, "true or false"),
              ("checkpoint_every_s", (int, float), lambda v: math.isfinite(v) and v >= 0,
               "a number >= 0"),
              ("threads", (int, str, type(None)), valid_threads,
               f"auto, null or an integer in [1, {max_threads()}] (4 per CPU here)"))
    for key, types, ok, what in checks:
        value = cfg.get(key)
        if isinstance(value, bool) and types is not bool or not isinstance(value, types) \
                or not ok(value):
            hint = (f"; to run several seeds, sweep them: rlrun -m seed="
                    f"{','.join(str(v) for v in value)}" if key == "seed" and
                    isinstance(value, ListConfig) else "")
            raise ConfigError(f"{key}={_shown(value)} must be {what}{hint}")
    objective = cfg.get("objective")
    if objective is not None and not isinstance(objective, DictConfig):
        raise ConfigError(f"objective={objective!r} must be a group: objective.metric=TAG,"
                          " objective.stat=last|tail_mean|best")
    stat = (objective or {}).get("stat", "last")
    if stat not in ("last", "tail_mean", "best"):
        raise ConfigError(f"objective.stat={stat!r} must be last, tail_mean or best")


def _shown(value: Any) -> str:
    if isinstance(value, DictConfig | ListConfig):
        return str(OmegaConf.to_container(value))
    return repr(value)


# ---- 2-3. wiring and settings ------------------------------------------------------------------
def _resolve(cfg: DictConfig) -> Plan:
    if cfg.env.get("id", "") is None:  # env=gym names its run after env.id
        raise ConfigError("env.id=null: name a Gymnasium task, e.g. env.id=CartPole-v1")
    for group in ("algo", "env"):
        for key in ("name", "loop" if group == "algo" else "kind", "schema"):
            if not cfg[group].get(key):
                raise ConfigError(f"{group} config lacks '{key}': see configs/{group}/*.yaml")
    loop = import_object(str(cfg.algo.loop), "algo.loop")
    schema = import_object(str(cfg.algo.schema), "algo.schema")
    spec = spec_of(schema)
    env_schema = import_object(str(cfg.env.schema), "env.schema")
    algo = validate(cfg.algo, schema, "algo")
    env = validate(cfg.env, env_schema, "env")
    logger_cfg = validate(cfg.logger, LoggerConfig, "logger")
    return Plan(loop, algo, env, logger_cfg, schema, spec)


# ---- 4. pairing, network, objective ------------------------------------------------------------
def check_pairing(cfg: DictConfig, plan: Plan) -> None:
    spec = plan.spec
    if not spec.uses_network and cfg.get("network") is not None:
        raise PairingError(f"algo={cfg.algo.name} uses no network: drop the network= override")
    if spec.uses_network and cfg.get("network") is None:  # `~network`
        raise ConfigError(f"algo={cfg.algo.name} builds its networks from a network config:"
                          " drop the ~network override, or name one (rlrun --help lists"
                          " them)")
    if cfg.get("network") is not None:
        check_finite(OmegaConf.to_container(cfg.network, resolve=True), "network")
        check_network_fits(cfg, spec)
        from rlrun.schemas.networks import network_schema

        schema = network_schema(cfg.network.get("_target_"))
        if schema is not None:  # a class of rlrun's or a plugin's: its settings, checked
            validate(cfg.network, schema, "network")
        fits = getattr(plan.algo, "check_network", None)  # AlgoSchema's, or a plugin's
        if callable(fits):  # what the algorithm needs of its network (and the task's shape)
            fits(cfg.network, plan.env)
    check_objective_metric(cfg, spec)
    kind = str(cfg.env.kind)
    if kind in spec.task_kinds:
        if kind == "gym" and spec.action_spaces:
            from rlrun.envs.gym import check_action_space

            shape = check_action_space(str(cfg.algo.name), plan.env, spec.action_spaces,
                                       spec.suggest)
            if spec.uses_network and cfg.get("network") is not None:
                check_network_takes_vectors(cfg, shape)
        return
    fits = [n for n, k in algorithms_by_kind().items() if kind in k]
    hint = (f"try algo={fits[0]}" if fits
            else f"no algorithm in this install learns {kind} tasks yet")
    needs = " or ".join("{} ({})".format(*TASK_KINDS.get(k, (f"a {k} task", "")))
                        for k in spec.task_kinds)
    is_a = TASK_KINDS.get(kind, (f"a {kind} task",))[0]
    raise PairingError(f"algo={cfg.algo.name} needs {needs}, but env={cfg.env.name} is {is_a}:"
                       f" {hint}")


def algorithms_by_kind() -> dict[str, tuple[str, ...]]:
    """Algorithm name -> task kinds it accepts, read from the algo configs of rlrun, of the
    installed plugins and of the user's config dirs (the first of a name wins, as in Hydra):
    the schema a config names at the head of its defaults list (registered by rlrun or a
    plugin), or in its `schema:` key (an unpackaged config dir's own module)."""
    from hydra.core.config_store import ConfigStore

    from rlrun.core.plugins import config_dirs
    from rlrun.core.schema import registered

    dirs = config_dirs()  # first: loading the plugins registers their schemas
    store = ConfigStore.instance()
    out: dict[str, tuple[str, ...]] = {}
    for path in [p for d in dirs for p in sorted((d / "algo").glob("*.yaml"))]:
        if path.stem in out:
            continue
        try:
            raw = yaml.safe_load(path.read_text()) or {}
            schema: Any = None
            for item in raw.get("defaults", []) or []:
                if isinstance(item, str) and item.startswith("/schema/algo/"):
                    node = store.load(f"{item.split('@')[0].lstrip('/')}.yaml").node
                    schema = registered().get(str(node.get("schema")))
            if schema is None and raw.get("schema"):
                schema = import_object(str(raw["schema"]), "schema")
        except (OSError, yaml.YAMLError, ConfigError, AttributeError, ValueError, TypeError):
            continue  # another dir's half-written config is not this run's problem
        spec = getattr(schema, "spec", None)
        if isinstance(spec, AlgoSpec):
            out[path.stem] = spec.task_kinds
    return out


def _network_takes(target: str, inputs: tuple[str, ...]) -> bool:
    """Whether the network class at `target` accepts the shape arguments `inputs`."""
    params = inspect.signature(import_object(target, "network._target_")).parameters
    return (any(p.kind is p.VAR_KEYWORD for p in params.values())
            or all(name in params for name in inputs))


def check_network_fits(cfg: DictConfig, spec: AlgoSpec) -> None:
    """`algo=sac network=unet`: say which networks fit, before the loop tries to build one."""
    inputs = spec.network_inputs
    target = cfg.network.get("_target_")
    if not inputs or not target or _network_takes(str(target), inputs):
        return
    # configs sharing a class (network=transformer, network=encoder): the one most like this
    names: dict[str, tuple[str, int]] = {}
    fits: list[str] = []
    for path in sorted((config_dir() / "network").glob("*.yaml")):
        try:
            node = _composed_network(path.stem)
        except (OmegaConfBaseException, ConfigError, ValueError):
            continue
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


def check_network_takes_vectors(cfg: DictConfig, shape: tuple[int, ...]) -> None:
    """`network=nature_cnn` on CartPole: an image network on vector observations, which every
    loop refuses when it builds it (the network's `input_ranks`). Image observations with an
    MLP are left to the loop: most flatten them."""
    from rlrun.nets import accepts_observations

    if len(shape) <= 1 and not accepts_observations(cfg.network, shape):
        raise ConfigError(f"env={cfg.env.get('id', cfg.env.name)} observes vectors of shape"
                          f" {shape}, which network._target_={cfg.network._target_} does not"
                          " take (it takes images): use network=mlp")


def check_fast_path_fits(cfg: DictConfig, plan: Plan, device: str | None) -> None:
    """`algo.fast_path=on` where the fast path cannot run (a GPU, a network other than an
    MLP, an activation it does not cover): the loop's own check (rlrun/fast/*.py `why_not`,
    on the built networks) would refuse it in a run dir; the same refusal here, from the
    config and the activations the schema's `fast_path` field declares."""
    if cfg.algo.get("fast_path") != "on":
        return
    field = {f.name: f for f in dataclasses.fields(plan.schema)}.get("fast_path")
    acts = field.metadata.get("activations") if field is not None else None
    if not acts:
        return
    target, act = str(cfg.network.get("_target_", "")), cfg.network.get("activation")
    reason = None
    if device is not None and device != "cpu":
        reason = f"it runs on the CPU only (device={device})"
    elif target != "rlrun.nets.mlp.MLP":
        reason = "it needs an MLP network (network=mlp)"
    elif act not in acts:
        reason = (f"it needs {' or '.join(acts)} activations (network.activation={act})")
    if reason is not None:
        raise ConfigError(f"algo.fast_path=on: {reason}; use algo.fast_path=auto or off")


def _composed_network(name: str) -> DictConfig:
    """A network config file with its schema's defaults (the file alone holds wiring only)."""
    from hydra.core.config_store import ConfigStore

    raw = OmegaConf.load(config_dir() / "network" / f"{name}.yaml")
    base = OmegaConf.create()
    for item in raw.get("defaults", []):
        if isinstance(item, str) and item.startswith("/schema/network/"):
            node = item.split("@")[0].rsplit("/", 1)[-1]
            base = ConfigStore.instance().load(f"schema/network/{node}.yaml").node
    body = OmegaConf.masked_copy(raw, [k for k in raw if k != "defaults"])
    return OmegaConf.merge(OmegaConf.to_container(base), body)


def check_objective_metric(cfg: DictConfig, spec: AlgoSpec) -> None:
    """objective.metric must be a tag this algorithm can log: checked up front against the
    patterns its spec declares; the exact tag (e.g. one loss of several) when the run ends,
    see `objective_missing`."""
    metric = (cfg.get("objective") or {}).get("metric")
    patterns = spec.logged_tags
    if metric is None or patterns is None:
        return
    if not any(fnmatch.fnmatchcase(str(metric), p) for p in patterns):
        raise ConfigError(f"objective.metric={metric!r}: algo={cfg.algo.name} logs no such tag;"
                          f" it logs {', '.join(patterns)} (its own objective:"
                          f" {spec.objective}); or set objective.metric=null")


def objective_missing(metric: str, metrics: dict[str, Any], algo: str) -> ConfigError:
    close = did_you_mean(metric, sorted(metrics)) if metrics else ""
    if not close.startswith(";"):
        close = " (results.json lists what it logged)"
    return ConfigError(f"objective.metric={metric!r} was never logged by algo={algo}, so the"
                       f" run has no objective{close}")
