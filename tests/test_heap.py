"""glibc heap thresholds for the PINN's CPU training (napari_mollifier.inverse.heap)."""

import os
import subprocess
import sys

import pytest

from napari_mollifier.inverse import heap

CHILD = """
import resource, sys
import numpy as np
from napari_mollifier.inverse import heap
if sys.argv[1] == "retain":
    assert heap.retain_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
blocks = [np.ones(3 * 2**20 // 8) for _ in range(12)]  # a step's worth of activations, 36 MB
del blocks
start = faults()
for _ in range(20):
    blocks = [np.ones(3 * 2**20 // 8) for _ in range(12)]
    del blocks
print(faults() - start)
"""


def _faults(mode: str, env: dict | None = None) -> int:
    env = {**os.environ, **(env or {})}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(heap._glibc() is None, reason="glibc only")
def test_retained_heap_stops_refaulting_freed_activations():
    """Freed blocks of a few MB stay in the heap: repeated steps no longer fault their pages
    in again (each fresh process starts with glibc's own dynamic thresholds)."""
    plain, retained = _faults("plain"), _faults("retain")
    assert plain > 20 * 12 * 3 * 2**20 // 4096 // 2  # the pages faulted again every round
    assert retained < plain / 10


def test_without_glibc_both_calls_do_nothing(monkeypatch):
    monkeypatch.setattr(heap, "_glibc", lambda: None)
    assert heap.retain_freed_memory() is False
    heap.release_freed_memory()


@pytest.mark.skipif(heap._glibc() is None, reason="glibc only")
def test_retained_heap_overrides_dasks_trim_threshold():
    """Dask workers start with MALLOC_TRIM_THRESHOLD_=65536, which freezes the mmap threshold
    at 128 kB (every activation a fresh mmap); the PINN's own thresholds undo that."""
    dask_env = {"MALLOC_TRIM_THRESHOLD_": "65536"}
    plain, retained = _faults("plain", dask_env), _faults("retain", dask_env)
    assert plain > 20 * 12 * 3 * 2**20 // 4096 // 2
    assert retained < plain / 10
