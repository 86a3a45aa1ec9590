"""Device resolution: `auto` picks CUDA when there is one; asking for CUDA without one fails."""

from __future__ import annotations

from rlrun.core.errors import DeviceError


def resolve_device(kind: str, index: int | None = None, uses_torch: bool = True) -> str:
    """Return the torch device string for `device=<kind>`.

    Loops that run on NumPy (`uses_torch=False`) live on the CPU: `auto` gives them `cpu`,
    and an explicit `cuda` is an error rather than a silent fallback.
    """
    if kind not in ("cpu", "cuda", "auto"):
        raise DeviceError(f"unknown device '{kind}': use device=cpu, device=cuda or device=auto")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise DeviceError(f"device.index={index!r} must be null or a GPU number >= 0")
    if kind == "cpu" or (kind == "auto" and not uses_torch):
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if kind == "auto" and not available:
        return "cpu"
    if not available:
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise DeviceError(f"device=cuda requested but {why}: use device=cpu or device=auto")
    if not uses_torch:
        raise DeviceError("this algorithm runs on NumPy on the CPU: use device=cpu or device=auto")
    if index is not None:
        if not 0 <= index < torch.cuda.device_count():
            raise DeviceError(
                f"device.index={index} but only {torch.cuda.device_count()} GPU(s) are visible"
            )
        return f"cuda:{index}"
    return "cuda"
