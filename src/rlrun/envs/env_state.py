"""The state of Gymnasium envs as plain numbers, for exact resume, without pickle.

A checkpoint must never be able to run code when it is loaded (`resume=` of a run dir from
elsewhere). Pickling env objects would make that impossible to guarantee: a pickle names the
callables it calls, and any allowlist of names is a puzzle for an attacker. So env state is
saved as data only: for every object of a sub-env's wrapper chain, its attributes that are
numbers, strings, NumPy arrays and scalars (dtype kept), containers of those, and NumPy random
generators (as their bit generator's state dict). Resume builds the envs from the run's config
as usual and writes those values back onto the same attributes. The class names recorded are
only compared with the fresh envs', never imported.

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
                for key, value in saved.items():
                    if not key.isidentifier() or key.startswith("__"):
                        raise CheckpointError(f"the checkpoint's env state sets {key!r}")
                    current = getattr(obj, key, None)
                    if isinstance(value, dict) and set(value) == {"__space_rng__"}:
                        if current is not None:
                            current._np_random = _decode(value["__space_rng__"],
                                                         getattr(current, "_np_random", None))
                        continue
                    setattr(obj, key, _decode(value, current))
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"the checkpoint's env state cannot be read ({e})") from None
