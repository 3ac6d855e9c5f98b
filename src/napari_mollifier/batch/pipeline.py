"""One input file -> one set of rate maps on disk: the unit of work of the batch runner.

:func:`process_file` is the whole pipeline for a single file (read -> render -> chromatin fields
-> inference -> atomic write). It is a plain, picklable function so that the same call runs in
this process or on a Dask worker and gives the same maps. Nothing here imports Qt or napari.

Outputs of one input named ``<stem>`` (see :func:`output_paths`) in ``out_dir``:

- ``<stem>.ome.tif``: the maps (ratio, phi_h, residual, uncertainty) with the pixel size, written
  by :func:`napari_mollifier.io.write_maps`;
- ``<stem>.json``: config, versions, device, seed, timings, diagnostics and a ``"batch"`` section
  (input file, output files). It is renamed into place last, so its presence (with every output
  it lists) is what "complete" means for ``--resume``.

Every file is written under a temporary folder inside ``out_dir`` and moved into place with
:func:`os.replace` (atomic on one filesystem): an interrupted run never leaves a half-written
output under its final name.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..inverse.config import InferenceConfig
from ..io import kinds as _io_kinds

#: Hidden folder inside OUT_DIR that holds files being written (removed when a run starts).
TMP_DIRNAME = ".napari-mollifier-tmp"
#: Suffix of the maps file and of the JSON sidecar (the completion marker).
MAPS_SUFFIX = ".ome.tif"
JSON_SUFFIX = ".json"
#: Version of the ``"batch"`` section in the JSON sidecar.
BATCH_SCHEMA = 1

STATUS_OK = "ok"
STATUS_RESUMED = "resumed"
STATUS_ERROR = "error"


@dataclass
class FileReport:
    """What happened to one input (one row of the run summary).

    Attributes
    ----------
    input : str
        The input path as discovered.
    status : {"ok", "resumed", "error"}
        "resumed": complete outputs already existed and ``--resume`` skipped the work.
    output_stem : str
        Output name without suffix, relative to the output folder (may contain sub-folders).
    maps_path, json_path : str
        Written files ("" when nothing was written).
    ratio_mean, ratio_median : float
        Mean / median of the valid Gamma_me / Gamma_ac ratio (dimensionless; NaN on error).
    n_valid : int
        Number of pixels where the ratio is defined.
    time_s : float
        Wall-clock seconds spent on this input (read to last rename).
    input_format : str
        Format name from :func:`napari_mollifier.io.sniff_format` ("" if unknown).
    method, device : str
        Estimator and compute device actually used.
    seed : int
    timings : dict
        Seconds per stage: read, render, fields, infer, write.
    error : str
        One-line error message ("" when fine).
    traceback : str
        Full traceback for unexpected (non-ValueError) failures, "" otherwise.
    """

    input: str
    status: str
    output_stem: str
    maps_path: str = ""
    json_path: str = ""
    ratio_mean: float = math.nan
    ratio_median: float = math.nan
    n_valid: int = 0
    time_s: float = 0.0
    input_format: str = ""
    method: str = ""
    device: str = ""
    seed: int = 0
    timings: dict = field(default_factory=dict)
    error: str = ""
    traceback: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (STATUS_OK, STATUS_RESUMED)

    def to_dict(self) -> dict:
        return asdict(self)


# --- input classification (one classifier, in io) ---------------------------------------------
input_kind = _io_kinds.input_kind
supported_suffixes = _io_kinds.supported_suffixes
strip_known_suffix = _io_kinds.strip_known_suffix


# --- output files and their completeness -------------------------------------------------------
def output_paths(out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    """(maps OME-TIFF, JSON sidecar) for output name ``stem`` inside ``out_dir``."""
    out_dir = Path(out_dir)
    return out_dir / f"{stem}{MAPS_SUFFIX}", out_dir / f"{stem}{JSON_SUFFIX}"


def read_complete_sidecar(out_dir: str | Path, stem: str) -> dict | None:
    """The JSON sidecar of ``stem`` if its outputs are complete, else None.

    Complete means: the sidecar (renamed into place last) parses, carries a ``"batch"``
    section, and every file that section lists exists with the recorded size in bytes.
    """
    out_dir = Path(out_dir)
    _, json_path = output_paths(out_dir, stem)
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return None
    batch = meta.get("batch") if isinstance(meta, dict) else None
    if not isinstance(batch, dict) or not batch.get("outputs"):
        return None
    for name, size in batch["outputs"].items():
        try:
            if (out_dir / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return meta


def report_from_sidecar(input_path: str, out_dir: str | Path, stem: str, meta: dict) -> FileReport:
    """Rebuild a summary row for a resumed input from its complete sidecar."""
    maps_path, json_path = output_paths(out_dir, stem)
    batch = meta.get("batch", {})
    summary = meta.get("summary") or {}
    config = meta.get("config") or {}
    return FileReport(
        input=input_path,
        status=STATUS_RESUMED,
        output_stem=stem,
        maps_path=str(maps_path),
        json_path=str(json_path),
        ratio_mean=_float(summary.get("ratio_mean")),
        ratio_median=_float(summary.get("ratio_median")),
        n_valid=int(summary.get("n_valid") or 0),
        time_s=float(batch.get("time_s") or 0.0),
        input_format=str(batch.get("input_format") or ""),
        method=str(config.get("method") or ""),
        device=str(meta.get("device") or ""),
        seed=int(config.get("seed") or 0),
        timings=dict(batch.get("timings_s") or {}),
    )


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def atomic_write_text(path: str | Path, text: str, tmp_dir: str | Path | None = None) -> None:
    """Write ``text`` to a temporary file, fsync it, then rename it over ``path``.

    The temporary file lives in ``tmp_dir`` (which must be on the same filesystem) or next to
    ``path`` as a hidden ``.<name>.<random>.tmp``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tmp_dir) if tmp_dir is not None else path.parent
    tmp = folder / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --- the pipeline ---------------------------------------------------------------------------
def load_density(path: str | Path, config: InferenceConfig, timings: dict | None = None):
    """Read ``path`` as a density image (see :func:`napari_mollifier.pipeline.load_density`)."""
    from ..pipeline import load_density as load

    return load(Path(path), config, timings)


def process_file(
    path: str | Path,
    out_dir: str | Path,
    config: InferenceConfig | dict | None = None,
    output_stem: str | None = None,
    on_progress: Callable | None = None,
) -> FileReport:
    """Run the full pipeline on one input and write its outputs atomically.

    Parameters
    ----------
    path : path
        A localisation table or a density image in any supported format.
    out_dir : path
        Output folder (created if needed); outputs are ``<output_stem>.ome.tif`` and
        ``<output_stem>.json``.
    config : InferenceConfig or dict
        The same configuration the widget uses; the same config gives the same maps on any
        machine and worker (the seed is ``config.seed`` for every file).
    output_stem : str, optional
        Output name (may hold sub-folders); defaults to the input name without its suffix.
    on_progress : callable, optional
        Called with every :class:`napari_mollifier.inverse.ProgressEvent`.

    Returns
    -------
    FileReport
        Never raises for a bad input or a failed inference: the error is in the report
        (``status == "error"``). KeyboardInterrupt / SystemExit propagate after the temporary
        files are removed.
    """
    if not isinstance(config, InferenceConfig):
        config = InferenceConfig.from_dict(config or {})
    path = Path(path)
    out_dir = Path(out_dir)
    stem = output_stem or strip_known_suffix(path.name)
    report = FileReport(
        input=str(path),
        status=STATUS_ERROR,
        output_stem=stem,
        method=config.method,
        seed=config.seed,
    )
    t_start = time.perf_counter()
    tmp_dir = out_dir / TMP_DIRNAME / f"{Path(stem).name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        from .. import io as mio
        from ..pipeline import run_pipeline

        report.input_format = str(mio.sniff_format(path) or "")
        timings: dict[str, float] = {}
        result = run_pipeline(path, config, on_progress=on_progress, timings=timings)
        result.metadata.setdefault("source_file", str(path))
        t0 = time.perf_counter()
        written = _write_outputs(result, out_dir, stem, tmp_dir, report, timings, t_start)
        timings["write"] = time.perf_counter() - t0
        summary = result.summary()
        report.status = STATUS_OK
        report.maps_path, report.json_path = (str(p) for p in written)
        report.ratio_mean = _float(summary.get("ratio_mean"))
        report.ratio_median = _float(summary.get("ratio_median"))
        report.n_valid = int(summary.get("n_valid", 0))
        report.device = str(result.metadata.get("device", ""))
        report.timings = timings
    except Exception as exc:  # one bad file must never stop the run: report it
        report.status = STATUS_ERROR
        report.error = _one_line(exc)
        if not isinstance(exc, ValueError):  # unexpected: keep the traceback for the log
            report.traceback = traceback.format_exc()
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        _remove_if_empty(tmp_dir.parent)
    report.time_s = time.perf_counter() - t_start
    return report


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, ValueError):
        text = f"{type(exc).__name__}: {text}"
    return text[:2000]


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _write_outputs(
    result,
    out_dir: Path,
    stem: str,
    tmp_dir: Path,
    report: FileReport,
    timings: dict,
    t_start: float,
) -> tuple[Path, Path]:
    """Write maps + sidecar under ``tmp_dir``, then rename them into place (sidecar last)."""
    from .. import io as mio

    maps_path, json_path = output_paths(out_dir, stem)
    tmp_dir.mkdir(parents=True, exist_ok=False)
    tmp_maps = tmp_dir / maps_path.name
    written = [Path(p) for p in (mio.write_maps(tmp_maps, result) or [tmp_maps])]

    # io may write its own sidecar: start from it, so the final JSON holds everything it has
    meta = result.full_metadata()
    data_files = []
    for p in written:
        if p.suffix.lower() == ".json":
            try:
                meta = {**meta, **json.loads(p.read_text())}
            except (OSError, ValueError):
                pass
        else:
            data_files.append(p)
    if not tmp_maps.exists():
        raise RuntimeError(f"io.write_maps did not write {tmp_maps.name} (wrote {written})")

    # drop an old completion marker first (--overwrite), move the data files, sidecar last
    maps_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.unlink(missing_ok=True)
    outputs: dict[str, int] = {}
    final_data = []
    for p in data_files:
        target = maps_path.parent / p.name
        os.replace(p, target)
        final_data.append(target)
        outputs[target.relative_to(out_dir).as_posix()] = target.stat().st_size

    meta["batch"] = {
        "schema": BATCH_SCHEMA,
        "input": str(report.input),
        "input_abspath": str(Path(report.input).resolve()),
        "input_format": report.input_format,
        "output_stem": stem,
        "outputs": outputs,
        "timings_s": dict(timings),
        "time_s": time.perf_counter() - t_start,
    }
    meta.setdefault("seed", result.config.seed)
    text = json.dumps(_jsonable(meta), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_text(json_path, text + "\n", tmp_dir=tmp_dir)
    return maps_path, json_path


def _jsonable(obj):
    from ..inverse.result import jsonable

    return jsonable(obj)
