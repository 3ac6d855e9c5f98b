"""Keep the C heap from handing memory back to the OS between training steps (glibc only).

A PINN step on the CPU allocates and frees some 40 activations of a few MB each. glibc's
``malloc`` returns the top of its heap to the OS whenever more than ``M_TRIM_THRESHOLD`` is free
there (dynamically twice the largest block it has seen freed, a few MB here), so every step
faults the same pages in again: about 2600 page faults per step of the PINN on a 256^2 density
(1.69 million in a 600-step run, 0.12-0.16 million with this module), and the network's forward
and backward took 38-41 ms instead of 34-36 ms (best of 5 rounds) on a 2-core AMD EPYC VM
(docs/benchmarks.md).

:func:`retain_freed_memory` sets the thresholds glibc itself adopts after freeing a 32 MB block
(``M_MMAP_THRESHOLD`` 32 MB, its maximum, and ``M_TRIM_THRESHOLD`` twice that), so the state
is one the allocator reaches on its own in any process that once freed a large array; it is
left so for the process. :func:`release_freed_memory` hands what is free back at the end of a
run (``malloc_trim``). Elsewhere (macOS, Windows, musl) both do nothing.

Setting ``M_TRIM_THRESHOLD`` alone would be far worse: it also freezes the mmap threshold at
128 kB, and every activation would then be a fresh ``mmap`` (3x slower steps, measured).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's largest dynamic mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES


@functools.cache
def _glibc():
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring); True when set."""
    libc = _glibc()
    if libc is None:
        return False
    # the mmap threshold first: setting either one switches glibc's dynamic thresholds off
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return ok and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1


def release_freed_memory() -> None:
    """Hand the free part of the heap back to the OS (``malloc_trim(0)``; glibc only)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
