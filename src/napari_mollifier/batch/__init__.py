"""Headless batch runner: ``python -m napari_mollifier.batch INPUT ... -o OUT_DIR``.

Runs the same engine as the napari widget over files and folders, one after another or on a
Dask cluster (``--workers N`` / ``--scheduler ADDRESS``), and writes per input an OME-TIFF of the
maps and a JSON sidecar, plus a run summary CSV. See docs/batch.md.

Python use::

    from napari_mollifier.batch import process_file, run_batch
    report = process_file("cell.csv", "out/", InferenceConfig(method="direct"))
    result = run_batch(["data/"], "out/", InferenceConfig(), workers=4)

Importing this package imports neither qtpy nor napari (nor torch nor dask: those load when a
file is processed or a cluster is started).
"""

from .cli import build_parser, config_from_args, main
from .pipeline import (
    FileReport,
    input_kind,
    load_density,
    output_paths,
    process_file,
    read_complete_sidecar,
)
from .runner import (
    CONFIG_NAME,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    SUMMARY_NAME,
    BatchResult,
    BatchUsageError,
    Job,
    discover_inputs,
    run_batch,
    write_summary,
)

__all__ = [
    "CONFIG_NAME",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_USAGE",
    "SUMMARY_NAME",
    "BatchResult",
    "BatchUsageError",
    "FileReport",
    "Job",
    "build_parser",
    "config_from_args",
    "discover_inputs",
    "input_kind",
    "load_density",
    "main",
    "output_paths",
    "process_file",
    "read_complete_sidecar",
    "run_batch",
    "write_summary",
]
