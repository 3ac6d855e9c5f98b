"""Peak memory (and allocator-stable timing) of one benchmark configuration in a fresh process.

CPU (Linux), memory: the child runs with glibc malloc tunables that return freed memory to the
OS at once (blocks >= 64 KiB are mmapped and unmapped on free, the heap top is always trimmed),
so the resident set size tracks live memory. After setup and warm-up the kernel's RSS
high-water mark is reset (``5`` -> ``/proc/self/clear_refs``) and the current RSS becomes the
baseline; the peak of the measured steps is ``VmHWM - baseline``. Where ``/proc`` cannot do
that, the peak is ``None`` ("not measured"), never a number taken from the warm-up.

CPU, time: glibc's default trims and re-faults memory by heuristics that depend on the
process's allocation history (the same N = 256 step measured 0 or 50,000 page faults, 100 or
165 ms, from one process to the next), so timing children run with ``malloc="keep"``: freed
memory stays in the heap (blocks up to 32 MiB, glibc's largest heap threshold), steady-state
steps do not page-fault and the time is the computation's.

CUDA: ``torch.cuda.max_memory_allocated`` above the allocation after setup and warm-up.

Usage (the callable must be importable by the child, i.e. defined at module level)::

    from _memory import PeakMeter, run_isolated

    def job(n):
        ...setup, warm-up...
        meter = PeakMeter("cpu")
        meter.start()
        ...measured steps...
        return {"peak_mb": meter.peak_mb()}

    result = run_isolated(job, {"n": 128})      # dict, or {"error": ...}

``python benchmarks/_memory.py`` runs a self-check (a step that allocates a 200 MB tensor must
report ~200 MB, whatever the warm-up allocated).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing as mp
import os
import queue as queue_module
import sys
import traceback
from pathlib import Path

#: glibc malloc settings per child mode (legacy variables and GLIBC_TUNABLES, same values).
#: "release" (memory): mmap every block >= 64 KiB, no dynamic threshold, trim on every free.
#: "keep" (time): heap blocks up to 32 MiB (glibc's maximum), never trim.
MALLOC_MODES = {
    "release": {"mmap_threshold": 65536, "trim_threshold": 0},
    "keep": {"mmap_threshold": 32 * 2**20, "trim_threshold": 2**40},
    "default": {},
}
_LEGACY_NAMES = {
    "mmap_threshold": "MALLOC_MMAP_THRESHOLD_",
    "trim_threshold": "MALLOC_TRIM_THRESHOLD_",
}
#: What "release" mmaps (bytes), and the environment variables the modes set (for scripts that
#: switch the same settings at run time with ``mallopt`` and must not inherit them).
MMAP_THRESHOLD_BYTES = MALLOC_MODES["release"]["mmap_threshold"]
MALLOC_ENV = (*_LEGACY_NAMES.values(), "GLIBC_TUNABLES")
_PROBE_BYTES = 96 * 1024  # above the "release" threshold, below glibc's default (128 KiB)
_PROBE_BLOCKS = 256
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def malloc_tunables_active() -> bool | None:
    """True if this process's malloc mmaps a 96 KiB block (the "release" threshold is active).

    None where it cannot be told (no glibc ``mallinfo2``, i.e. not glibc >= 2.33).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # free heap chunks serve a request before mmap is considered, so allocate until they are
    # used up: with glibc's default threshold (>= 128 KiB) no 96 KiB block is ever mmapped
    before = mallinfo2().hblks
    blocks = [libc.malloc(_PROBE_BYTES) for _ in range(_PROBE_BLOCKS)]
    mapped = mallinfo2().hblks - before
    for block in blocks:
        libc.free(block)
    return mapped > 0


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_bytes() -> int | None:
    """Current resident set size (``VmRSS``), None without /proc."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def hwm_bytes() -> int | None:
    """RSS high-water mark since process start or the last reset (``VmHWM``), None without /proc."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def reset_hwm() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS; False if unsupported."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakMeter:
    """Peak memory above a baseline taken at :meth:`start`; :meth:`peak_bytes` reads it.

    ``device`` is a torch device string. On CPU the baseline is the RSS right after resetting
    the high-water mark; on CUDA the allocated bytes after resetting the peak statistics.
    """

    def __init__(self, device: str = "cpu"):
        self.device = str(device)
        self.cuda = self.device.startswith("cuda")
        self.baseline_bytes: int | None = None
        self.method = "not measured"

    def start(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_bytes = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated"
        elif reset_hwm() and rss_bytes() is not None:
            self.baseline_bytes = rss_bytes()
            self.method = "VmHWM after clear_refs"
        else:
            self.baseline_bytes = None
            self.method = "not measured"

    def peak_bytes(self) -> int | None:
        """Peak above the baseline since :meth:`start`; None where it cannot be measured."""
        if self.baseline_bytes is None:
            return None
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = hwm_bytes()
            if peak is None:
                return None
        return max(peak - self.baseline_bytes, 0)

    def peak_mb(self) -> float | None:
        peak = self.peak_bytes()
        return None if peak is None else peak / 2**20


def _child(func, kwargs, results, malloc):
    try:
        out = func(**kwargs)
        if isinstance(out, dict):
            out = {**out, "malloc": malloc}
            if malloc == "release":
                out["malloc_tunables"] = malloc_tunables_active()
        results.put(out)
    except BaseException as exc:  # report to the parent instead of leaving it waiting
        results.put({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})


def _child_environment(malloc: str) -> dict[str, str | None]:
    """Values of the malloc variables for the next child (None: unset)."""
    settings = MALLOC_MODES[malloc]
    env: dict[str, str | None] = {name: None for name in _LEGACY_NAMES.values()}
    tunables = [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t]
    ours = {f"glibc.malloc.{key}" for key in _LEGACY_NAMES}
    tunables = [t for t in tunables if t.split("=")[0] not in ours]
    for key, value in settings.items():
        env[_LEGACY_NAMES[key]] = str(value)
        tunables.append(f"glibc.malloc.{key}={value}")
    env["GLIBC_TUNABLES"] = ":".join(tunables) or None
    return env


def _set_environ(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def run_isolated(func, kwargs: dict, timeout_s: float = 900.0, malloc: str = "release") -> dict:
    """Run ``func(**kwargs)`` in a fresh spawned process; returns its dict or ``{"error": ...}``.

    ``malloc``: "release" for memory measurements (the result then says in
    ``malloc_tunables`` whether the setting took effect), "keep" for timings, "default" for
    glibc's own behaviour (see the module docstring).
    """
    if malloc not in MALLOC_MODES:
        raise ValueError(f"malloc must be one of {tuple(MALLOC_MODES)}, found {malloc!r}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_child, args=(func, kwargs, results, malloc))
    child_env = _child_environment(malloc)
    saved = {name: os.environ.get(name) for name in child_env}
    _set_environ(child_env)  # glibc reads them at start-up; the spawned child inherits them
    try:
        proc.start()
    finally:
        _set_environ(saved)
    try:
        out = results.get(timeout=timeout_s)  # before join: a full pipe would block the child
    except queue_module.Empty:
        out = {"error": f"timed out after {timeout_s:.0f} s"}
        proc.kill()
    proc.join(30)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return out


# --- self-check -----------------------------------------------------------------------------
_CHUNK_FLOATS = 25_600  # 100 KiB: above our mmap threshold, below glibc's default one


def _touch(mb: int) -> float:
    import torch

    if mb <= 0:
        return 0.0
    block = torch.ones(mb * 2**20 // 4, dtype=torch.float32)  # ones: every page written
    return float(block[-1])


def _selfcheck_job(warmup_mb: int, step_mb: int, steps: int, chunked: bool) -> dict:
    """Warm-up touches ``warmup_mb``, each measured step ``step_mb`` of fresh memory.

    ``chunked``: as 100 KiB tensors (below glibc's default mmap threshold), the warm-up ones
    interleaved with small tensors that stay alive, so their freed space is stuck in the heap.
    """
    import torch

    def chunks(mb: int) -> list:
        return [torch.ones(_CHUNK_FLOATS) for _ in range(mb * 2**20 // (4 * _CHUNK_FLOATS))]

    _touch(1)  # first use of torch.ones maps its code pages: part of any warm-up
    pinned = []
    if chunked:
        warm = []
        for _ in range(warmup_mb * 2**20 // (4 * _CHUNK_FLOATS)):
            warm.append(torch.ones(_CHUNK_FLOATS))
            pinned.append(torch.ones(4))
        del warm
    else:
        _touch(warmup_mb)
    meter = PeakMeter("cpu")
    meter.start()
    for _ in range(steps):
        if chunked:
            live = chunks(step_mb)
            del live
        else:
            _touch(step_mb)
    return {"peak_mb": meter.peak_mb(), "baseline_mb": (meter.baseline_bytes or 0) / 2**20}


def selfcheck(tolerance_mb: float = 8.0) -> bool:
    """Known allocations must be reported as such; prints one line per case."""
    cases = [  # (warm-up MB, step MB, chunked, expected peak MB)
        (0, 200, False, 200),
        (400, 200, False, 200),  # a larger warm-up peak must not leak into the measurement
        (400, 0, False, 0),
        (200, 100, True, 100),  # freed memory must not stay resident for the steps to reuse
    ]
    ok = True
    for warmup_mb, step_mb, chunked, expected_mb in cases:
        kwargs = {"warmup_mb": warmup_mb, "step_mb": step_mb, "steps": 3, "chunked": chunked}
        out = run_isolated(_selfcheck_job, kwargs)
        peak = out.get("peak_mb")
        good = peak is not None and abs(peak - expected_mb) <= tolerance_mb
        ok &= good
        shown = "not measured" if peak is None else f"{peak:.1f} MB"
        kind = "100 KiB tensors" if chunked else "one tensor"
        print(
            f"warm-up {warmup_mb} MB, 3 steps of {step_mb} MB ({kind}): peak {shown}, expected "
            f"{expected_mb} MB; malloc tunables active: {out.get('malloc_tunables')}: "
            f"{'ok' if good else 'FAIL'} {out.get('error', '')}"
        )
    # what the tunables are for: glibc's defaults keep the freed chunks resident
    kwargs = {"warmup_mb": 200, "step_mb": 100, "steps": 3, "chunked": True}
    out = run_isolated(_selfcheck_job, kwargs, malloc="default")
    peak = out.get("peak_mb")
    print(
        f"same, glibc defaults (for comparison, not a check): peak "
        f"{'not measured' if peak is None else f'{peak:.1f} MB'}, live memory 100 MB"
    )
    return ok


if __name__ == "__main__":
    sys.exit(0 if selfcheck() else 1)
