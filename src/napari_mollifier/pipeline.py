"""One Qt-free pipeline: file or array -> density -> chromatin fields -> estimate -> maps.

The widget (in a worker thread) and the batch runner (per file, here or on a Dask worker) both
call these functions, so the same input and config give the same maps wherever they run:

    density = load_density("cell.csv", config)          # read, render a table at config.render
    fields = fields_from_density(density, config)       # calibrate to volume fractions
    for event in iter_pipeline("cell.csv", config):     # all of it, with progress events
        ...
    maps = run_pipeline(density, config)                # drained: the RateMaps

A source is a path (localisation table or density image), an ``io.Localisations``, an
``io.DensityImage``, a ``ChromatinFields`` (used as it is) or a 2D array (its pixel size from
``config.pixel_size_nm``).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from . import io as mio
from .inverse.api import iter_inference
from .inverse.config import InferenceConfig
from .inverse.events import ProgressEvent, StopToken
from .physics.chromatin import ChromatinFields


def load_density(source, config: InferenceConfig, timings: dict | None = None):
    """``source`` as an ``io.DensityImage`` (localisation tables rendered at ``config.render``).

    ``config.pixel_size_nm`` (nm) only fills in a pixel size the file does not carry (a density
    image without pixel-size metadata, a camera-pixel localisation file); the file's own wins.
    Raises ``io.FormatError`` (a ValueError) for unsupported or unreadable input.
    """
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    if isinstance(source, mio.DensityImage):
        return source
    if isinstance(source, mio.Localisations):
        return _render(source, config, timings)
    if isinstance(source, np.ndarray):
        return _array_density(source, config)
    path = Path(source)
    kind = mio.input_kind(path)
    if kind is None:
        raise mio.FormatError(
            f"{path}: unsupported file type; expected one of the suffixes "
            f"{', '.join(mio.supported_suffixes())}, found {''.join(path.suffixes) or 'none'!r}"
        )
    reader = mio.read_localisations
    if kind == "image":
        reader = functools.partial(mio.read_image, z_plane=config.z_plane)
    try:
        loaded = reader(path)
    except mio.FormatError:
        if config.pixel_size_nm is None:
            raise
        loaded = reader(path, pixel_size_nm=config.pixel_size_nm)
    else:
        _warn_if_overridden(path, loaded, config.pixel_size_nm)
    timings["read"] = time.perf_counter() - t0
    if kind == "image":
        return loaded
    if len(loaded.table) == 0:
        raise mio.FormatError(f"{path}: the file holds no localisations; nothing to render")
    return _render(loaded, config, timings)


class PixelSizeWarning(UserWarning):
    """A pixel size was given that the file's own overrides (the file wins)."""


def _warn_if_overridden(path: Path, loaded, given_nm: float | None) -> None:
    """Warn when ``given_nm`` (config / ``--pixel-size-nm``) disagrees with the file's own
    pixel size, which is the one used (a table in nm has none: nothing to disagree with)."""
    if given_nm is None:
        return
    if isinstance(loaded, mio.DensityImage):
        stored, source = loaded.pixel_size_nm, (loaded.metadata or {}).get("pixel_size_source")
    else:
        stored = (loaded.metadata or {}).get("pixel_size_nm")
        source = (loaded.metadata or {}).get("pixel_size_source")
    if stored is None:
        return
    values = np.atleast_1d(np.asarray(stored, dtype=np.float64))
    if np.allclose(values, float(given_nm), rtol=1e-6, atol=0.0):
        return
    shown = " x ".join(f"{v:g}" for v in values)
    warnings.warn(
        f"{path}: the file's pixel size {shown} nm ({source or 'file metadata'}) is used; "
        f"the given pixel_size_nm {float(given_nm):g} nm (--pixel-size-nm / config) only fills "
        "in a missing one and is ignored for this file",
        PixelSizeWarning,
        stacklevel=3,
    )


def _render(locs, config: InferenceConfig, timings: dict):
    t0 = time.perf_counter()
    density = mio.render_density(
        locs,
        pixel_size_nm=config.render.pixel_size_nm,
        method=config.render.method,
        max_render_megapixels=config.render.max_render_megapixels,
        min_localisations_per_megapixel=config.render.min_localisations_per_megapixel,
    )
    timings["render"] = time.perf_counter() - t0
    return density


def _array_density(array: np.ndarray, config: InferenceConfig):
    if config.pixel_size_nm is None:
        raise mio.FormatError(
            "array input: a pixel size is needed to convert pixels to model units; set "
            "config.pixel_size_nm (nm per pixel)"
        )
    return mio.DensityImage(data=np.asarray(array), pixel_size_nm=float(config.pixel_size_nm))


def fields_from_density(density, config: InferenceConfig, mask=None) -> ChromatinFields:
    """Calibrate a density (or a 2-channel phase image) into fields with ``config.model`` and
    ``config.calibration``; ``mask`` (H, W) bool, or None for the automatic nucleus mask."""
    if isinstance(density, ChromatinFields):
        return density
    return ChromatinFields.from_density(
        density,
        mask=mask,
        params=config.model,
        calibration=config.calibration,
        channel=config.density_channel,
        image_border=config.image_border,
    )


def iter_pipeline(
    source,
    config: InferenceConfig | None = None,
    stop: StopToken | None = None,
    mask=None,
    timings: dict | None = None,
) -> Iterator[ProgressEvent]:
    """Generator over the whole pipeline; the last event carries the ``RateMaps`` (with the
    source named in its metadata and the time per stage in ``timings``)."""
    config = config or InferenceConfig()
    timings = {} if timings is None else timings
    total = config.pinn.steps if config.method != "direct" else 1
    yield ProgressEvent(0, total, message="reading and preparing chromatin fields")
    density = load_density(source, config, timings)
    t0 = time.perf_counter()
    fields = fields_from_density(density, config, mask=mask)
    timings["fields"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for event in iter_inference(fields, config, stop=stop):
        if event.result is not None:
            timings["infer"] = time.perf_counter() - t0
            event.result.metadata.setdefault("source", _describe(source))
        yield event


def run_pipeline(
    source,
    config: InferenceConfig | None = None,
    stop: StopToken | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    mask=None,
    timings: dict | None = None,
):
    """:func:`iter_pipeline` drained: the ``RateMaps``."""
    result = None
    for event in iter_pipeline(source, config, stop=stop, mask=mask, timings=timings):
        if on_progress is not None:
            on_progress(event)
        result = event.result or result
    if result is None:  # the estimator contract says the last event carries it
        raise RuntimeError("the estimator finished without a result")
    return result


def _describe(source) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    path = getattr(source, "path", None)
    return str(path) if path is not None else type(source).__name__
