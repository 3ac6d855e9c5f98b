"""Compute-device choice for the PINN estimators: auto (CUDA, then Apple MPS, then CPU) or explicit.

The chosen device and the reason for it are written into every result's metadata, so a user who
expected a GPU run can see why it ran on the CPU.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..choices import DEVICES as DEVICE_NAMES
from ..choices import is_device_name


class DeviceError(ValueError):
    """An explicitly requested device is not available, or a run did not fit into its memory."""


def _cuda_status(torch) -> tuple[bool, str]:
    if getattr(torch.version, "cuda", None) is None:
        return False, "torch built without CUDA"
    try:
        if not torch.cuda.is_available():
            return False, "torch has CUDA but no usable GPU or driver was found"
    except Exception as exc:  # noqa: BLE001 - driver errors come in many types
        return False, f"CUDA initialisation failed ({exc})"
    return True, f"CUDA device {torch.cuda.get_device_name(0)!r}"


def _mps_status(torch) -> tuple[bool, str]:
    backend = getattr(torch.backends, "mps", None)
    if backend is None or not backend.is_built():
        return False, "torch built without MPS"
    if not backend.is_available():
        return False, "MPS built but not available (needs macOS 12.3+ on Apple silicon)"
    return True, "Apple MPS device"


def _cuda_device(torch, name: str, cuda_ok: bool, cuda_why: str):
    """``torch.device`` for "cuda" or "cuda:N", or DeviceError saying why not."""
    if not cuda_ok:
        raise DeviceError(
            f"device {name!r} requested but CUDA is not available: {cuda_why}; "
            "use device='auto' or 'cpu'"
        )
    index = int(name.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"device {name!r} requested but only {count} CUDA device(s) exist (0..{count - 1})"
        )
    return torch.device(name), f"requested: {name} ({cuda_why})"


def resolve_device(name: str = "auto"):
    """Turn a device name into a ``torch.device`` and a human-readable reason.

    Parameters
    ----------
    name : {"auto", "cpu", "cuda", "cuda:N", "mps"}
        "auto" picks CUDA, then MPS, then CPU.

    Returns
    -------
    (torch.device, str)
        The device and why it was chosen, e.g.
        ``(device("cpu"), "auto: CUDA not available: torch built without CUDA; MPS not
        available: torch built without MPS; using CPU")``.

    Raises
    ------
    DeviceError (a ValueError)
        For an unknown name or an explicitly requested device that is not available.
    """
    import torch

    if not is_device_name(name):
        raise DeviceError(
            f"unknown device {name!r}: expected one of {DEVICE_NAMES} or 'cuda:N' (a GPU index)"
        )
    if name == "cpu":
        return torch.device("cpu"), "requested: cpu"
    cuda_ok, cuda_why = _cuda_status(torch)
    mps_ok, mps_why = _mps_status(torch)
    if name.startswith("cuda"):
        return _cuda_device(torch, name, cuda_ok, cuda_why)
    if name == "mps":
        if not mps_ok:
            raise DeviceError(
                f"device 'mps' requested but MPS is not available: {mps_why}; "
                "use device='auto' or 'cpu'"
            )
        return torch.device("mps"), f"requested: mps ({mps_why})"
    if cuda_ok:
        return torch.device("cuda"), f"auto: {cuda_why}"
    if mps_ok:
        return torch.device("mps"), f"auto: CUDA not available: {cuda_why}; {mps_why}"
    return torch.device("cpu"), (
        f"auto: CUDA not available: {cuda_why}; MPS not available: {mps_why}; using CPU"
    )


@contextmanager
def out_of_memory_as_error(device, patch_size: int):
    """Turn a CUDA / MPS out-of-memory error into a :class:`DeviceError` suggesting a smaller
    ``patch_size``."""
    import torch

    oom_types = tuple(
        t
        for t in (
            getattr(torch.cuda, "OutOfMemoryError", None),
            torch.OutOfMemoryError if hasattr(torch, "OutOfMemoryError") else None,
        )
        if t is not None
    )
    try:
        yield
    except oom_types as exc:
        raise DeviceError(_oom_message(device, patch_size, exc)) from exc
    except RuntimeError as exc:  # MPS and older torch report OOM as a plain RuntimeError
        if "out of memory" not in str(exc).lower():
            raise
        raise DeviceError(_oom_message(device, patch_size, exc)) from exc


def _oom_message(device, patch_size: int, exc: Exception) -> str:
    smaller = max(16, int(patch_size) // 2)
    return (
        f"out of memory on {device} with patch_size={patch_size}: try patch_size={smaller} "
        f"(memory per step grows with patch_size**2), a smaller backbone, or device='cpu' "
        f"[{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}]"
    )
