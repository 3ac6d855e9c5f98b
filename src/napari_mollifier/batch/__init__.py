"""Headless batch runner: ``python -m napari_mollifier.batch INPUT ... -o OUT_DIR``.

Runs the same engine as the napari widget over files and folders, one after another or on a
Dask cluster (``--workers N`` / ``--scheduler ADDRESS``), and writes per input an OME-TIFF of the
maps and a JSON sidecar, plus a run summary CSV. See docs/batch.md.

Python use::

    from napari_mollifier.batch import process_file, run_batch
    report = process_file("cell.csv", "out/", InferenceConfig(method="direct"))
    result = run_batch(["data/"], "out/", InferenceConfig(), workers=4)

Importing this package imports neither qtpy nor napari (nor torch nor dask: those load when a
file is processed or a cluster is started). Its names load on first use (PEP 562), so that
``python -m napari_mollifier.batch`` installs its signal handlers before the engine is imported.
"""

import importlib

#: public name -> submodule that defines it
_EXPORTS = {
    "build_parser": "cli",
    "config_from_args": "cli",
    "main": "cli",
    "FileReport": "pipeline",
    "input_kind": "pipeline",
    "load_density": "pipeline",
    "output_paths": "pipeline",
    "process_file": "pipeline",
    "read_complete_sidecar": "pipeline",
    "CONFIG_NAME": "runner",
    "EXIT_INTERRUPTED": "runner",
    "EXIT_OK": "runner",
    "EXIT_OUTPUT": "runner",
    "EXIT_SOME_FAILED": "runner",
    "EXIT_TERMINATED": "runner",
    "EXIT_USAGE": "runner",
    "SUMMARY_NAME": "runner",
    "BatchOutputError": "runner",
    "BatchResult": "runner",
    "BatchUsageError": "runner",
    "Job": "runner",
    "discover_inputs": "runner",
    "run_batch": "runner",
    "write_summary": "runner",
}
_SUBMODULES = ("cli", "pipeline", "runner")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
