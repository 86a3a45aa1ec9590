"""What `ctx.track(...)` can hold, and how it goes into a checkpoint and back.

A loop declares its state once, by name (`ctx.track(nets=nets, opt=opt, rb=rb, rng=rng,
counters=st)`); the run context saves it at checkpoints and loads it on `resume=`. Each
tracked item is one of:

- anything with `state_dict()` / `load_state_dict()` (modules, optimisers, schedulers, EMA,
  replay buffers, agents, env adapters), loaded in place;
- a NumPy `Generator` (its bit generator's state) or a torch `Generator` (`get_state`);
- a tensor or a NumPy array (copied back in place, e.g. SAC's `log_alpha`);
- a dict, list or tuple of the above, or of plain values (counters, arrays): dicts and
  lists are updated in place, so the loop's own reference sees the restored values.

Torch is never imported here: tensors and generators are recognised by their methods.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _stateful(x: Any) -> bool:
    return hasattr(x, "state_dict") and hasattr(x, "load_state_dict")


def _torch_generator(x: Any) -> bool:
    return type(x).__name__ == "Generator" and hasattr(x, "get_state") and \
        hasattr(x, "set_state")


def _tensor(x: Any) -> bool:
    return hasattr(x, "detach") and hasattr(x, "copy_")


def dump(x: Any) -> Any:
    """The checkpoint form of a tracked item."""
    if _stateful(x):
        return x.state_dict()
    if isinstance(x, np.random.Generator):
        return x.bit_generator.state
    if _torch_generator(x):
        return x.get_state()
    if _tensor(x):
        return x.detach().clone()
    if isinstance(x, dict):
        return {k: dump(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [dump(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.copy()
    return x


def load(x: Any, saved: Any, name: str = "state") -> Any:
    """Load `saved` into `x` (in place where `x` is mutable); return the loaded value."""
    if _stateful(x):
        x.load_state_dict(saved)
        return x
    if isinstance(x, np.random.Generator):
        x.bit_generator.state = saved
        return x
    if _torch_generator(x):
        x.set_state(saved)
        return x
    if _tensor(x):
        import torch

        with torch.no_grad():
            x.copy_(saved)
        return x
    if isinstance(x, dict):
        if not isinstance(saved, dict) or set(saved) != set(x):
            raise KeyError(f"{name}: the checkpoint holds keys {sorted(saved)}, this run"
                           f" tracks {sorted(x)}")
        for k in x:
            x[k] = load(x[k], saved[k], f"{name}.{k}")
        return x
    if isinstance(x, list | tuple):
        if len(saved) != len(x):
            raise ValueError(f"{name}: the checkpoint holds {len(saved)} items, not {len(x)}")
        items = [load(v, s, f"{name}[{i}]") for i, (v, s) in enumerate(zip(x, saved, strict=True))]
        if isinstance(x, list):
            x[:] = items
            return x
        return tuple(items)
    if isinstance(x, bool):
        return bool(saved)
    if isinstance(x, int):
        return int(saved)
    if isinstance(x, float):
        return float(saved)
    if isinstance(x, np.ndarray):
        saved = np.asarray(saved)
        if saved.shape == x.shape and saved.dtype == x.dtype and x.flags.writeable:
            x[...] = saved  # in place: the loop's own reference sees it
            return x
        return saved
    return saved


def shared(x: Any) -> bool:
    """Whether a tracked item is the same on every rank of a data-parallel run (networks,
    optimisers, schedulers: anything with a state_dict), rather than each rank's own (RNGs,
    counters)."""
    return _stateful(x)


def check_trackable(name: str, x: Any) -> None:
    """A plain value at the top level could not be restored into the loop's variable."""
    if not (_stateful(x) or isinstance(x, np.random.Generator | dict | list | np.ndarray)
            or _torch_generator(x) or _tensor(x)):
        raise TypeError(f"ctx.track({name}=...): a {type(x).__name__} cannot be restored in"
                        " place; put plain values in a dict of counters (counters=st)")
