"""What the widget's worker runs (no Qt, no napari): one image, or every nucleus of a mask.

:func:`run_inference` is a generator: it yields the estimator's
:class:`~napari_mollifier.inverse.ProgressEvent` objects and returns a
:class:`~napari_mollifier.inverse.RateMaps` on the whole image grid. With a label image every
label is one nucleus, inferred in turn on its bounding box (plus a margin) with the label as the
nucleus mask; the maps are put back on the full grid (NaN outside every nucleus) and one row per
nucleus goes into ``result.metadata["nuclei"]`` (:data:`NUCLEUS_COLUMNS`).
"""

from __future__ import annotations

import time

import numpy as np

#: Columns of the per-nucleus table. ``ratio_uncertainty`` is the median over the nucleus of the
#: per-pixel uncertainty map (PINN: calibrated ensemble spread; direct: the spread over
#: neighbouring mollifier widths, not calibrated; NaN when the method gives no map);
#: ``ratio_iqr`` the interquartile range of the ratio inside the nucleus.
NUCLEUS_COLUMNS = (
    "label",
    "area_px",
    "area_um2",
    "n_valid",
    "ratio_median",
    "ratio_uncertainty",
    "ratio_iqr",
)
#: Margin (pixels) around each nucleus' bounding box: context for the mollifier at the rim.
NUCLEUS_MARGIN_PX = 8


def run_inference(image, pixel_size_nm, origin_nm, config, labels=None, stop=None, source=""):
    """Generator run in the worker thread; see the module docstring.

    Parameters
    ----------
    image : ndarray (H, W)
        Chromatin density (any positive units), owned by the worker.
    pixel_size_nm : float
        nm per pixel.
    origin_nm : (float, float)
        World (y, x) in nm of the centre of pixel [0, 0].
    config : InferenceConfig
    labels : ndarray (H, W) int, optional
        Nucleus label image (0 = background) on the same grid.
    stop : StopToken, optional
        Set it to stop; the current nucleus returns its best result so far, later ones are
        not started.
    source : str
        Name of the source layer, recorded in the result metadata.
    """
    from ..inverse.events import ProgressEvent

    steps = 1 if config.method == "direct" else int(config.pinn.steps)
    if labels is None:
        result = yield from _one(image, pixel_size_nm, origin_nm, config, None, stop)
        result.metadata.setdefault("source_layer", source)
        return result
    ids = [int(v) for v in np.unique(labels) if v != 0]
    if not ids:
        raise ValueError("the nucleus mask holds no labels (every pixel is 0)")
    t0 = time.perf_counter()
    parts = []
    for index, label in enumerate(ids):
        if stop is not None and stop.is_set() and parts:
            break
        box = _bounding_box(labels == label, NUCLEUS_MARGIN_PX)
        crop = image[box]
        mask = labels[box] == label
        origin = (
            origin_nm[0] + box[0].start * pixel_size_nm,
            origin_nm[1] + box[1].start * pixel_size_nm,
        )
        offset = index * steps
        yield ProgressEvent(offset, steps * len(ids), message=f"nucleus {label}: preparing")
        inner = _one(crop, pixel_size_nm, origin, config, mask, stop)
        try:
            while True:
                event = next(inner)
                yield ProgressEvent(
                    offset + int(event.step),
                    steps * len(ids),
                    losses=event.losses,
                    elapsed_s=time.perf_counter() - t0,
                    message=f"nucleus {label} ({index + 1}/{len(ids)}): {event.message}",
                    extra=event.extra,
                )
        except StopIteration as done:
            parts.append((label, box, mask, done.value))
    result = combine(parts, image.shape, pixel_size_nm, origin_nm, ids)
    result.metadata.setdefault("source_layer", source)
    return result


def _one(image, pixel_size_nm, origin_nm, config, mask, stop):
    """One density crop through :func:`napari_mollifier.pipeline.iter_pipeline`; its RateMaps."""
    from .. import io as mio
    from ..pipeline import iter_pipeline

    density = mio.DensityImage(
        data=np.asarray(image, dtype=np.float64),
        pixel_size_nm=float(pixel_size_nm),
        origin_nm=(float(origin_nm[0]), float(origin_nm[1])),
        metadata={},
        path=None,
    )
    result = None
    for event in iter_pipeline(density, config, stop=stop, mask=mask):
        if event.result is not None:
            result = event.result
        yield event
    if result is None:  # the estimator contract says the last event carries it
        raise RuntimeError("the estimator finished without a result")
    return result


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, mask.shape[0])),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, mask.shape[1])),
    )


def combine(parts, shape, pixel_size_nm, origin_nm, ids):
    """One RateMaps on the full grid from per-nucleus results; the table in its metadata."""
    from ..inverse.result import RateMaps

    full = {name: np.full(shape, np.nan) for name in ("ratio", "phi_h", "residual")}
    uncertainty = np.full(shape, np.nan)
    valid = np.zeros(shape, dtype=bool)
    rows, diagnostics = [], {}
    has_uncertainty = False
    for label, box, mask, result in parts:
        for name, target in full.items():
            target[box][mask] = np.asarray(getattr(result, name))[mask]
        if result.uncertainty is not None:
            has_uncertainty = True
            uncertainty[box][mask] = np.asarray(result.uncertainty)[mask]
        valid[box] |= mask & np.asarray(result.valid_mask, dtype=bool)
        rows.append(nucleus_row(label, mask, result, pixel_size_nm))
        diagnostics[str(label)] = result.diagnostics
    full["ratio"][~valid] = np.nan
    first = parts[0][3]
    metadata = dict(first.metadata)
    metadata["nuclei"] = rows
    metadata["nuclei_columns"] = list(NUCLEUS_COLUMNS)
    metadata["nuclei_not_run"] = [label for label in ids if label not in {p[0] for p in parts}]
    stopped = any(p[3].diagnostics.get("stopped") for p in parts)
    return RateMaps(
        ratio=full["ratio"],
        phi_h=full["phi_h"],
        residual=full["residual"],
        uncertainty=uncertainty if has_uncertainty else None,
        valid_mask=valid,
        config=first.config,
        spacing=first.spacing,
        pixel_size_nm=float(pixel_size_nm),
        origin_nm=(float(origin_nm[0]), float(origin_nm[1])),
        timings={k: sum(p[3].timings.get(k, 0.0) for p in parts) for k in first.timings},
        metadata=metadata,
        diagnostics={"per_nucleus": diagnostics, "stopped": stopped},
    )


def nucleus_row(label: int, mask: np.ndarray, result, pixel_size_nm: float) -> dict:
    """One row of the per-nucleus table (see :data:`NUCLEUS_COLUMNS`)."""
    ratio = np.asarray(result.ratio)[mask]
    ratio = ratio[np.isfinite(ratio)]
    spread = float("nan")
    if result.uncertainty is not None:
        values = np.asarray(result.uncertainty)[mask]
        values = values[np.isfinite(values)]
        spread = float(np.median(values)) if values.size else float("nan")
    area = int(mask.sum())
    q25, q50, q75 = np.percentile(ratio, [25, 50, 75]) if ratio.size else (np.nan,) * 3
    return {
        "label": int(label),
        "area_px": area,
        "area_um2": area * (pixel_size_nm / 1000.0) ** 2,
        "n_valid": int(ratio.size),
        "ratio_median": float(q50),
        "ratio_uncertainty": spread,
        "ratio_iqr": float(q75 - q25),
    }


def nuclei_csv(rows: list[dict]) -> str:
    """The per-nucleus table as CSV text (header :data:`NUCLEUS_COLUMNS`)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=NUCLEUS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in NUCLEUS_COLUMNS})
    return buffer.getvalue()


def write_nuclei_table(maps_path, rows: list[dict]):
    """``<maps stem>_nuclei.csv`` next to a written map file; returns its path."""
    from pathlib import Path

    from ..io.write import sidecar_path

    json_path = sidecar_path(maps_path)
    path = Path(json_path).with_name(Path(json_path).stem + "_nuclei.csv")
    path.write_text(nuclei_csv(rows))
    return path
