"""Versions and machine facts written next to every output (Qt-free, torch optional)."""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone


def provenance(device: str | None = None, device_reason: str | None = None) -> dict:
    """Return package versions, Python, platform, time and (optionally) the compute device."""
    import numpy

    from . import __version__

    info = {
        "napari_mollifier_version": __version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
    if device is not None:
        info["device"] = device
    if device_reason is not None:
        info["device_reason"] = device_reason
    return info
