"""One line naming the machine a benchmark ran on (printed above every table, saved in JSON)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or f"{platform.machine()} CPU"


def describe_machine(device: str = "cpu", threads: int | None = None, note: str = "") -> str:
    """E.g. "Intel(R) Xeon(R) Processor, 2 logical CPUs, 1 torch thread(s), torch 2.13.0+cpu".

    On CUDA the GPU's name leads. ``note`` is appended as is (e.g. "per cell").
    """
    import torch

    parts = []
    if str(device).startswith("cuda"):
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    parts.append(f"{cpu_model()}, {os.cpu_count()} logical CPUs")
    if threads is not None:
        parts.append(f"{threads} torch thread(s){' ' + note if note else ''}")
    parts.append(f"torch {torch.__version__}, Python {platform.python_version()}")
    return ", ".join(parts)
