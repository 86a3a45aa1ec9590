"""The state of Gymnasium envs as plain numbers, for exact resume, without pickle.

A checkpoint must never be able to run code when it is loaded (`resume=` of a run dir from
elsewhere). Pickling env objects would make that impossible to guarantee: a pickle names the
callables it calls, and any allowlist of names is a puzzle for an attacker. So env state is
saved as data only: for every object of a sub-env's wrapper chain, its attributes that are
numbers, strings, NumPy arrays and scalars (dtype kept), containers of those, and NumPy random
generators (as their bit generator's state dict). Resume builds the envs from the run's config
as usual and writes those values back onto the same attributes. The class names recorded are
only compared with the fresh envs', never imported.

What a saved state may set is restricted, so that a crafted checkpoint cannot reconfigure an
env (`_max_episode_steps=-1`, `render_mode="human"`): for the classes Gymnasium ships and
rlrun builds, only the attributes an episode changes (`STATE_ATTRS`; an env class of a plugin
may declare its own as `rlrun_state_attrs`); for other classes, the attributes a fresh instance
has, never the configuration names in `CONFIG_ATTRS`. RNGs may always be restored. Every value
must have the type of the fresh instance's (an array its dtype and shape; None where the fresh
value, or the episode's, can be None: then a number or an array).

Envs whose state lives in C objects (Box2D, MuJoCo, ALE: those pickle through EzPickle, i.e.
as fresh instances) cannot be captured this way: for them `capture` returns None and a resume
starts new episodes, as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlrun.core.errors import CheckpointError

_RNG = "__np_random__"  # a numpy Generator: its bit generator's state
_SCALAR = "__np_scalar__"  # a numpy scalar, as a 0-d array (keeps float32 float32)
_TUPLE = "__tuple__"
# Bit generators a saved Generator may name (compared as strings, never imported by name).
_BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
                   "MT19937": np.random.MT19937, "Philox": np.random.Philox,
                   "SFC64": np.random.SFC64}
_SKIP = ("env", "spec", "_cached_spec", "_saved_kwargs", "metadata", "_metadata")
_SKIP_VALUE = object()
# The attributes an episode changes, per class of Gymnasium's wrappers and envs (the RNGs
# `_np_random` and the spaces' are restored for every class).
STATE_ATTRS: dict[str, tuple[str, ...]] = {
    "TimeLimit": ("_elapsed_steps",),
    "OrderEnforcing": ("_has_reset",),
    "PassiveEnvChecker": ("checked_reset", "checked_step", "checked_render", "close_called",
                          "checked_data_reuse", "_previous_data"),
    "CartPoleEnv": ("state", "steps_beyond_terminated"),
    "PendulumEnv": ("state", "last_u"),
    "AcrobotEnv": ("state",),
    "MountainCarEnv": ("state",),
    "Continuous_MountainCarEnv": ("state",),
    "FrozenLakeEnv": ("s", "lastaction"),
    "CliffWalkingEnv": ("s", "lastaction"),
    "TaxiEnv": ("s", "lastaction", "taxi_orientation", "fickle_step"),
    "BlackjackEnv": ("dealer", "player", "dealer_top_card_suit", "dealer_top_card_value_str"),
}
# Never restored for any class: how an env is set up, not where an episode is.
CONFIG_ATTRS = frozenset({"render_mode", "_max_episode_steps", "_disable_render_order_enforcing",
                          "spec", "metadata", "np_random_seed"})
_RNG_ATTRS = ("_np_random",)


def _encode(v: Any) -> Any:
    """`v` as checkpoint data, or _SKIP_VALUE when it is not plain data."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, np.ndarray):
        return v.copy() if v.dtype != object else _SKIP_VALUE
    if isinstance(v, np.generic):
        return {_SCALAR: np.asarray(v)}
    if isinstance(v, np.random.Generator):
        return {_RNG: v.bit_generator.state}
    if isinstance(v, list | tuple):
        items = [_encode(x) for x in v]
        if any(x is _SKIP_VALUE for x in items):
            return _SKIP_VALUE
        return {_TUPLE: items} if isinstance(v, tuple) else items
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        items = {k: _encode(x) for k, x in v.items()}
        return _SKIP_VALUE if any(x is _SKIP_VALUE for x in items.values()) else items
    return _SKIP_VALUE


def _decode(v: Any, current: Any = None) -> Any:
    if isinstance(v, dict):
        if set(v) == {_SCALAR}:
            return np.asarray(v[_SCALAR])[()]
        if set(v) == {_TUPLE}:
            return tuple(_decode(x) for x in v[_TUPLE])
        if set(v) == {_RNG}:
            return _generator(v[_RNG], current)
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def _generator(state: dict[str, Any], current: Any) -> np.random.Generator:
    name = str(state.get("bit_generator", ""))
    if name not in _BIT_GENERATORS:
        raise CheckpointError(f"the checkpoint's env state names an unknown RNG {name!r}")
    gen = current if isinstance(current, np.random.Generator) and \
        type(current.bit_generator).__name__ == name else \
        np.random.Generator(_BIT_GENERATORS[name]())
    gen.bit_generator.state = state
    return gen


def _chain(env: Any) -> list[Any]:
    """The wrapper chain of one sub-env, outermost first, down to the unwrapped env."""
    out, e = [], env
    while e is not None and e not in out:
        out.append(e)
        e = getattr(e, "env", None) if hasattr(type(e), "unwrapped") else None
    return out


def _object_state(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(obj).items():
        if key in _SKIP:
            continue
        if hasattr(value, "sample") and hasattr(value, "_np_random"):  # a Gymnasium space
            rng = getattr(value, "_np_random", None)
            if rng is not None:
                out[key] = {"__space_rng__": _encode(rng)}
            continue
        enc = _encode(value)
        if enc is not _SKIP_VALUE:
            out[key] = enc
    return out


def _restorable(obj: Any) -> frozenset[str]:
    """The attribute names a saved state may set on `obj` (see the module docstring)."""
    fresh = {k for k in _object_state(obj) if k.isidentifier() and not k.startswith("__")}
    declared = STATE_ATTRS.get(type(obj).__qualname__)
    if declared is None:
        declared = getattr(type(obj), "rlrun_state_attrs", None)
    spaces = {k for k in fresh if hasattr(getattr(obj, k, None), "_np_random")}
    if declared is not None:
        return frozenset((set(declared) | set(_RNG_ATTRS) | spaces) & fresh)
    return frozenset(fresh - CONFIG_ATTRS)


def _same(a: Any, b: Any) -> bool:
    """Whether a decoded value equals the fresh one (arrays by dtype, shape and values)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(
            _same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.random.Generator) or isinstance(b, np.random.Generator):
        return False
    return type(a) is type(b) and a == b


def _check_type(obj: Any, key: str, new: Any, current: Any) -> None:
    """A restored value has the fresh value's type (an array its dtype and shape); None
    stands for "not yet" on either side (`steps_beyond_terminated`, `last_u`)."""
    where = f"{type(obj).__qualname__}.{key}"
    if new is None or current is None:
        # "not yet" on one side: an episode's counter or last action (a number or an array)
        ok = (key not in CONFIG_ATTRS and not isinstance(new, str | list | tuple | dict)
              and (current is None or not isinstance(current, np.random.Generator)))
        if not ok:
            raise CheckpointError(f"the checkpoint's env state sets {where} to {new!r:.60}")
        return
    if type(new) is not type(current):
        raise CheckpointError(f"the checkpoint's env state sets {where} to a"
                              f" {type(new).__name__}, where this env holds a"
                              f" {type(current).__name__}")
    if isinstance(new, np.ndarray) and (new.dtype != current.dtype
                                        or new.shape != current.shape):
        raise CheckpointError(f"the checkpoint's env state sets {where} to an array of"
                              f" {new.dtype} {new.shape}, where this env holds"
                              f" {current.dtype} {current.shape}")


def capture(sub_envs: list[Any]) -> dict[str, Any] | None:
    """Data-only state of each sub-env, or None where it lives in C objects (EzPickle)."""
    from gymnasium.utils import EzPickle

    if any(isinstance(e.unwrapped, EzPickle) for e in sub_envs):
        return None
    return {"classes": [[type(o).__qualname__ for o in _chain(e)] for e in sub_envs],
            "objects": [[_object_state(o) for o in _chain(e)] for e in sub_envs]}


def restore(sub_envs: list[Any], state: dict[str, Any]) -> None:
    """Write a `capture`d state back onto freshly built envs of the same configuration."""
    try:
        classes, objects = state["classes"], state["objects"]
        fresh = [_chain(e) for e in sub_envs]
        if [[type(o).__qualname__ for o in c] for c in fresh] != classes:
            raise CheckpointError(
                f"the checkpoint's envs ({classes[0] if classes else []}) are not the ones"
                " this configuration builds: resume with the run's own config")
        for chain, saved_chain in zip(fresh, objects, strict=True):
            for obj, saved in zip(chain, saved_chain, strict=True):
                allowed = _restorable(obj)
                for key, value in saved.items():
                    if not isinstance(key, str) or key.startswith("__"):
                        raise CheckpointError(f"the checkpoint's env state sets {key!r}")
                    if key not in allowed and hasattr(obj, key) and not (
                            isinstance(value, dict) and "__space_rng__" in value) and \
                            _same(_decode(value), getattr(obj, key)):
                        continue  # configuration, recorded as this config builds it
                    if key not in allowed:
                        raise CheckpointError(
                            f"the checkpoint's env state sets {type(obj).__qualname__}."
                            f"{key}, which is not state rlrun saves for that class")
                    current = getattr(obj, key, None)
                    if isinstance(value, dict) and set(value) == {"__space_rng__"}:
                        if current is None or not hasattr(current, "_np_random"):
                            raise CheckpointError(f"the checkpoint's env state gives {key} a"
                                                  " space's RNG, but it is not a space here")
                        current._np_random = _decode(value["__space_rng__"],
                                                     getattr(current, "_np_random", None))
                        continue
                    new = _decode(value, current)
                    _check_type(obj, key, new, current)
                    setattr(obj, key, new)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"the checkpoint's env state cannot be read ({e})") from None
