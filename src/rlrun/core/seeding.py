"""Seeding and RNG state capture, so that same seed means same numbers and resume is exact."""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import numpy as np


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; with `deterministic`, also force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import torch

    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        deterministic_kernels(torch)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def deterministic_kernels(torch: Any) -> None:
    """`torch.use_deterministic_algorithms(True)`, without its import of torch._inductor.

    torch's function also sets inductor's `deterministic` flag, and importing inductor for
    that costs about 2 s of start-up in every deterministic run, most of which never
    compile anything. The switch itself is torch's C flag; `rl.training.maybe_compile`
    sets inductor's flag when a run does compile."""
    switch = getattr(torch._C, "_set_deterministic_algorithms", None)
    if switch is None or "torch._inductor.config" in sys.modules:  # the public call
        torch.use_deterministic_algorithms(True)
    else:
        switch(True, warn_only=False)


def rng_state() -> dict[str, Any]:
    """Global RNG states (Python, NumPy legacy, torch CPU and CUDA) for a checkpoint."""
    import torch

    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    import torch

    random.setstate(_tuplify(state["python"]))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def _tuplify(x: Any) -> Any:
    """random.setstate needs tuples; a checkpoint round trip may hand back lists."""
    return tuple(_tuplify(v) for v in x) if isinstance(x, list | tuple) else x
