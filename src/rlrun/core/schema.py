"""Every setting declared once: a dataclass field with its default, help, bounds and choices.

A schema is a dataclass in a torch-free module. Each field is declared with `opt(...)`:

    @dataclass
    class UCBConfig(AlgoSchema):
        spec: ClassVar[AlgoSpec] = AlgoSpec(task_kinds=("bandit",), objective="...", goal="max")
        c: float = opt(2.0, "exploration weight c in Q + c sqrt(ln t / N)", ge=0)

`register(group, name, cls)` puts the schema into Hydra's ConfigStore as
`schema/<group>/<name>`, and a YAML file of the group names it at the head of its defaults
list (`- /schema/algo/ucb@_here_`), Hydra's schema-extension pattern: the composed node is
then the structured config, typed, with every default, and the YAML holds only wiring
(`loop`, `defaults`), tuned values and presets. `check_fields` checks a built dataclass
against its fields' bounds and choices (one rule, for every schema); a schema's
`__post_init__` is left with checks that relate several fields. `describe` writes the
`rlrun --help algo=sac` listing from the same metadata, as CleanRL's tyro does from its
docstrings.

What an algorithm declares about itself (which tasks it learns, its objective and that
objective's direction, the tags it logs...) is its `spec`, one `AlgoSpec`, checked when the
schema is registered, so a plugin that forgets its objective's direction fails at load time.

No torch, no Hydra at import: the CLI's start-up reads these modules.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field
from typing import Any, ClassVar

from rlrun.core.errors import ConfigError, RlrunError

GOALS = ("max", "min")
BUDGET_KEYS = ("algo.total_steps", "env.steps", "algo.episodes", "algo.max_iterations")


def opt(default: Any = MISSING, help: str = "", *, ge: float | None = None,
        gt: float | None = None, le: float | None = None, lt: float | None = None,
        choices: Sequence[Any] | None = None, factory: Callable[[], Any] | None = None,
        each: bool = False) -> Any:
    """A schema field: its default (or `factory` for lists and dicts), a one-line help text,
    and its bounds (`ge` >=, `gt` >, `le` <=, `lt` <) or `choices`. `each`: the bounds apply
    to every element of a list. None is always allowed for a field typed `X | None`."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "choices": tuple(choices) if choices is not None else None, "each": each}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def bounds_text(meta: typing.Mapping[str, Any]) -> str:
    """`in [0, 1]`, `>= 1`, `> 0`, `one of a, b`: what the metadata allows, in words."""
    if meta.get("choices"):
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    lo = ("[", meta["ge"]) if meta.get("ge") is not None else \
        ("(", meta["gt"]) if meta.get("gt") is not None else None
    hi = ("]", meta["le"]) if meta.get("le") is not None else \
        (")", meta["lt"]) if meta.get("lt") is not None else None
    if lo and hi:
        return f"in {lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
    if lo:
        return f"{'>=' if lo[0] == '[' else '>'} {_num(lo[1])}"
    if hi:
        return f"{'<=' if hi[0] == ']' else '<'} {_num(hi[1])}"
    return ""


def _within(value: Any, meta: typing.Mapping[str, Any]) -> bool:
    if meta.get("choices") is not None:
        return value in meta["choices"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True  # bounds are for numbers; the type was checked by OmegaConf
    return not ((meta.get("ge") is not None and not value >= meta["ge"])
                or (meta.get("gt") is not None and not value > meta["gt"])
                or (meta.get("le") is not None and not value <= meta["le"])
                or (meta.get("lt") is not None and not value < meta["lt"]))


def check_fields(cls: type, values: typing.Mapping[str, Any]) -> None:
    """ConfigError (`epsilon=1.5 must be in [0, 1]`) for the first field of the dataclass
    `cls` whose value in `values` is outside its declared bounds or choices; NaN and
    infinities never pass a bound. Run before the dataclass is built, so that a value out of
    range is named before any check that relates several fields."""
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta or not bounds_text(meta) or f.name not in values:
            continue
        value = values[f.name]
        if value is None:
            continue
        items = list(value) if meta.get("each") and isinstance(value, list | tuple) else [value]
        for v in items:
            bad = isinstance(v, float) and not math.isfinite(v)
            if bad or not _within(v, meta):
                shown = repr(v) if isinstance(v, str) else _num(v) if isinstance(
                    v, int | float) and not isinstance(v, bool) else str(v)
                what = f"{f.name}={shown}" if len(items) == 1 else \
                    f"{f.name}={list(value)}: each element"
                raise ConfigError(f"{what} must be {bounds_text(meta)}")


# ---- what an algorithm declares about itself ------------------------------------------------
@dataclass(frozen=True)
class AlgoSpec:
    """The class-level declarations of an algorithm (its schema's `spec`), read before and
    after a run. Three have no default, since a wrong guess would go unnoticed:

    - `task_kinds`: the env kinds it learns (`bandit`, `tabular`, `gym`, `text`, `images`,
      `text_classification`, or a plugin's own);
    - `objective`: the scalar tag `results.json` reports as the run's `objective` (what a
      sweeper optimises and the report ranks by);
    - `goal`: `max` or `min`, the objective's direction. A `min` objective is added to
      `minimize`, so its `best` is the minimum.

    The rest:
    - `headline`: the tag on the progress bar and in log lines (default: the objective);
    - `minimize`: tags whose `best` is the minimum (besides `losses/*`);
    - `also_report`: tags rlrun-report summarises beside the objective by default (the LM's
      `eval/val_bpb`, which compares runs with different tokenizers); recorded in
      results.json's `objectives` after the objective;
    - `logged_tags`: patterns of the tags it logs, for checking `objective.metric` up front
      (None: not checked until the run ends);
    - `uses_torch`: False for NumPy loops (no device, no torch threads; torch itself is
      still imported, by seeding and by TensorBoard's writer, `torch.utils.tensorboard`);
    - `uses_network`: whether `network=` applies;
    - `network_inputs`: the shape arguments it passes when it builds its network (a
      `network=` whose class takes other arguments cannot fit);
    - `action_spaces`: for Gymnasium tasks, `discrete` and/or `continuous`;
    - `suggest`: an algorithm to name when the action space does not fit
      (`{"discrete": "ppo"}`);
    - `data_parallel`: it trains under torchrun / SLURM tasks (DDP);
    - `parallel_ops`: its operators are large (threads=auto gives it the idle cores);
    - `default_num_envs`: copies of a Gymnasium env when `env.num_envs` is null;
    - `budget`: the key that sets its length (`algo.total_steps`, `env.steps`,
      `algo.episodes`, or `algo.max_iterations` for the dynamic-programming loops, which
      stop at convergence and sweep at most that often);
    - `resume_keys`: regexes of the keys `resume=` may change besides the budget (they
      change how a run is evaluated or logged, not what it learns).
    """

    task_kinds: tuple[str, ...]
    objective: str
    goal: str
    headline: str | None = None
    minimize: tuple[str, ...] = ()
    also_report: tuple[str, ...] = ()
    logged_tags: tuple[str, ...] | None = None
    uses_torch: bool = True
    uses_network: bool = True
    network_inputs: tuple[str, ...] = ()
    action_spaces: tuple[str, ...] = ()
    suggest: dict[str, str] = field(default_factory=dict)
    data_parallel: bool = False
    parallel_ops: bool = False
    default_num_envs: int | None = None
    budget: str = "algo.total_steps"
    resume_keys: tuple[str, ...] = (r"algo\.eval_\w+", r"algo\.log_every", r"logger\.\w+",
                                    r"threads", r"checkpoint_every_s")

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise ValueError(f"goal={self.goal!r} must be 'max' or 'min'")
        if self.goal == "min" and self.objective not in self.minimize:
            object.__setattr__(self, "minimize", (*self.minimize, self.objective))
        if self.goal == "max" and self.objective in self.minimize:
            raise ValueError(f"objective {self.objective!r} has goal='max' but is in minimize")
        if self.headline is None:
            object.__setattr__(self, "headline", self.objective)
        if self.budget not in BUDGET_KEYS:
            raise ValueError(f"budget={self.budget!r} must be one of {', '.join(BUDGET_KEYS)}")
        for name in ("task_kinds", "minimize", "also_report", "network_inputs",
                     "action_spaces", "resume_keys"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


class SchemaError(RlrunError):
    """A schema (ours or a plugin's) that does not declare what rlrun needs."""


@dataclass
class AlgoSchema:
    """The wiring every algorithm node has: its `name`, its `loop` (`module.run`) and the
    `schema` itself (set when registered; a saved config names it for resume and eval)."""

    spec: ClassVar[AlgoSpec]
    # settings added after runs were saved whose default would change what a checkpoint
    # holds: a saved config without the key resumes with this value (rlrun.core.resume)
    saved_before: ClassVar[dict[str, Any]] = {}
    name: str = opt("", "the algorithm's name (run dirs, results.json)")
    loop: str = opt("", "the loop function, `package.module.run`")
    schema: str = opt("", "this schema, `package.module.Class` (set when registered)")

    def __post_init__(self) -> None:
        """Bounds and choices hold for a schema built in code too (tests, notebooks); a
        subclass with checks of its own calls this first."""
        check_fields(type(self), vars(self))

    def budget_schedules(self) -> list[str]:
        """What follows the budget in this config: said when `resume=` raises the budget,
        since those schedules are then recomputed against the new total."""
        return []

    def check_env(self, env: Any, data: bool = True) -> None:
        """Checks of these settings against the built `env` and, when `data`, the data it
        names (labels an image set must have, characters a corpus must hold, a tabular
        task's transition table), raising a one-line RlrunError with the full key
        (`algo.x=...`). Preflight calls it after `env.check()`, before a run dir exists;
        rlrun-eval does not (it replays from the checkpoint). None by default."""

    def check_network(self, network: Any, env: Any) -> None:
        """Checks of what the algorithm needs of its composed `network` config, with the
        task's `env` config for shapes it fixes (the LM's causal attention; DDPM's image side
        against the UNet's levels), as a one-line RlrunError. Preflight calls it once the
        network's own settings validate, before a run dir exists. None by default."""


@dataclass
class EnvSchema:
    """The wiring every env node has: `name` (run dirs), `kind` (pairing) and `schema`."""

    name: str = opt("", "the task's name (run dirs, results.json)")
    kind: str = opt("", "what kind of task it is, for pairing with algorithms")
    schema: str = opt("", "this schema, `package.module.Class` (set when registered)")

    def __post_init__(self) -> None:
        check_fields(type(self), vars(self))


META_FIELDS = ("name", "loop", "schema", "kind", "_target_")


def dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def spec_of(schema: type, where: str = "algo.schema") -> AlgoSpec:
    """The `AlgoSpec` of an algorithm schema, or a one-line SchemaError."""
    spec = getattr(schema, "spec", None)
    if not isinstance(spec, AlgoSpec):
        raise SchemaError(
            f"{where} {dotted(schema)} declares no `spec: ClassVar[AlgoSpec]` (its task kinds,"
            " objective and the objective's direction, goal='max' or 'min'):"
            " see docs/extending.md")
    return spec


_REGISTERED: dict[str, type] = {}


def registered() -> dict[str, type]:
    """Every registered schema by its dotted path (what a resumed config may name)."""
    return dict(_REGISTERED)


def register(group: str, name: str, cls: type) -> None:
    """Put `cls` into Hydra's ConfigStore as `schema/<group>/<name>` (its `schema` field set
    to its dotted path); an algorithm's spec is checked here, so a plugin's mistake is an
    error when it loads."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    _share_the_store_in_copies(ConfigStore)
    if not dataclasses.is_dataclass(cls):
        raise SchemaError(f"schema {name!r} of group {group!r} is not a dataclass")
    if group == "algo":
        spec_of(cls, f"algo={name}: its schema")
    path = dotted(cls)
    node = OmegaConf.structured(cls)
    if "schema" in node:
        node.schema = path
    ConfigStore.instance().store(group=f"schema/{group}", name=name, node=node)
    _REGISTERED[path] = cls


def _share_the_store_in_copies(store_cls: type) -> None:
    """Copies of Hydra's config repository share the ConfigStore. Hydra deep-copies the
    repository on every compose (`CachingConfigRepository`, so that `initialize_sources()`
    cannot change the original), and its structured-config source holds the store: each
    compose copied every schema registered here, twice, 13 ms a copy with rlrun's, a quarter
    of a compose. A compose only reads the store, and `ConfigStore.load` copies the node it
    hands out, so nothing it does reaches the shared store. Pickling (launchers ship
    `Singleton.get_state()` to their workers) still copies it."""
    if "__deepcopy__" not in vars(store_cls):
        store_cls.__deepcopy__ = lambda self, memo: self


# ---- help ------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = " | ".join(_type_name(a) for a in args)
        return f"{inner} | null" if len(args) < len(typing.get_args(tp)) else inner
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin is dict:
        return "dict"
    return getattr(tp, "__name__", str(tp))


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not MISSING:
        value = f.default
    elif f.default_factory is not MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
    else:
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def describe(cls: type, prefix: str, values: dict[str, Any] | None = None,
             width: int = 100) -> str:
    """Every field of a schema as lines of `prefix.name: type = default  [bounds]  help`;
    `values`: the composed config's values, shown where they differ from the default (tuned
    values, presets, this command line)."""
    import textwrap

    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.name in META_FIELDS:
            continue
        default = _default_text(f)
        now = ""
        if values is not None and f.name in values:
            shown = values[f.name]
            text = "null" if shown is None else str(shown).lower() if isinstance(
                shown, bool) else str(shown)
            now = f" (now {text})" if text != default else ""
        head = f"  {prefix}.{f.name}: {_type_name(hints.get(f.name, f.type))} = {default}{now}"
        bounds = bounds_text(f.metadata) if f.metadata else ""
        help_text = (f.metadata.get("help", "") if f.metadata else "") + (
            f" [{bounds}]" if bounds else "")
        rows.append(head)
        if help_text:
            rows.append(textwrap.fill(help_text, width, initial_indent=" " * 6,
                                      subsequent_indent=" " * 6))
    return "\n".join(rows)
