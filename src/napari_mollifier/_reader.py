"""napari reader: SMLM localisation tables and chromatin density images -> layers.

Only converts what :mod:`napari_mollifier.io` reads into napari layer data:

- a localisation table becomes the rendered density image (``scale = (px, px)`` nm,
  ``translate = origin_nm``) plus a hidden, subsampled points layer in nm on the same world
  coordinates, so both overlay exactly;
- a density image (TIFF / OME-TIFF / .npy) becomes an image layer with its pixel size.

The hook (:func:`napari_get_reader`) only looks at the file name and a few header bytes (through
``io.sniff_format``), returns None for anything it does not understand and never raises. Reading
errors (no pixel size, bad columns, truncated file) are shown as a napari error notification
naming the file; the reader then returns napari's "nothing to add" sentinel instead of raising.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ._layer_keys import KIND_KEY, MAP_STYLE

#: Pixel size (nm) used to render localisation tables opened from File > Open; the same
#: default as ``InferenceConfig.render_pixel_size_nm`` so the widget and the batch runner agree.
RENDER_PIXEL_SIZE_NM = 20.0
#: Rendering method for localisation tables (``InferenceConfig.render_method`` default).
RENDER_METHOD = "gaussian"
#: At most this many localisations are shown as points (a whole nucleus has millions).
MAX_POINTS = 20_000

#: ``io.sniff_format`` names of image formats (everything else it names is a table).
_IMAGE_FORMATS = ("ome-tiff", "tiff", "npy")

LayerData = tuple  # (data, kwargs, layer_type)


def napari_get_reader(path: str | Sequence[str]) -> Callable | None:
    """Return :func:`read_paths` when every path is a file this plugin reads, else None.

    Never raises: an unreadable, missing or unknown file simply makes the hook decline.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        return None
    try:
        if all(_kind(p) is not None for p in paths):
            return read_paths
    except Exception:  # noqa: BLE001 - a reader hook must never raise
        return None
    return None


def _kind(path) -> str | None:
    """ "image", "localisations" or None: :func:`io.input_kind` confirmed by the header bytes."""
    from . import io as mio

    path = Path(path)
    if not path.is_file():
        return None
    kind = mio.input_kind(path)
    if kind is None:
        return None
    found = mio.sniff_format(path)  # header bytes only; never raises
    if found is None:
        return None
    if found in _IMAGE_FORMATS:
        return "image" if kind == "image" else None
    return "localisations" if kind == "localisations" else None


def read_paths(path: str | Sequence[str], stack: bool = False) -> list[LayerData]:
    """Read one or more files into napari layer data (a list of ``(data, kwargs, type)``).

    Errors become napari notifications; files that failed add no layer.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        try:
            layers.extend(read_file(p))
        except (ValueError, OSError) as exc:  # io.FormatError is a ValueError
            _notify_error(f"napari-mollifier could not open {Path(p).name}: {exc}")
    return layers or [(None,)]  # napari's sentinel: handled, nothing to add


def read_file(path: str | os.PathLike) -> list[LayerData]:
    """Layer data for one file; raises ``io.FormatError`` (ValueError) on bad input."""
    kind = _kind(path)
    if kind == "image":
        return image_layer_data(path)
    if kind == "localisations":
        return localisation_layer_data(path)
    from . import io as mio

    raise mio.FormatError(f"{path}: not a localisation table or density image this plugin reads")


def image_layer_data(path: str | os.PathLike) -> list[LayerData]:
    """A density image file -> image layer data with ``scale`` in nm per pixel.

    A multi-channel image (``metadata["axes"] == "CYX"``, e.g. rate maps written by this
    plugin) gives one layer per channel, named after the channel.
    """
    from . import io as mio

    density = mio.read_image(path)
    data = np.asarray(density.data)
    if data.ndim == 2:
        return [density_layer_data(density, name=_stem(path))]
    names = list((density.metadata or {}).get("channel_names") or [])
    names += [f"channel {i}" for i in range(len(names), data.shape[0])]
    layers = []
    for index, channel in enumerate(data):
        name = str(names[index])
        single = replace(density, data=channel)
        layer = density_layer_data(
            single, name=f"{_stem(path)} {name}", extra_metadata={"channel": name}
        )
        style = MAP_STYLE.get(name)
        if style:
            layer[1]["colormap"] = style["colormap"]
        layer[1]["visible"] = index == 0
        layers.append(layer)
    return layers


def density_layer_data(density, name: str, extra_metadata: dict | None = None) -> LayerData:
    """``io.DensityImage`` -> image layer data (scale = pixel size nm, translate = origin nm)."""
    pixel_size_nm = float(density.pixel_size_nm)
    origin_nm = tuple(float(v) for v in density.origin_nm)
    data = np.asarray(density.data)
    metadata = {
        **_plain(getattr(density, "metadata", {}) or {}),
        **(extra_metadata or {}),
        KIND_KEY: "density",
        "pixel_size_nm": pixel_size_nm,
        "origin_nm": list(origin_nm),
        "source_file": str(density.path) if getattr(density, "path", None) else None,
    }
    kwargs = {
        "name": name,
        "scale": (pixel_size_nm, pixel_size_nm),
        "translate": origin_nm,
        "units": ("nm", "nm"),
        "colormap": "gray",
        "contrast_limits": robust_limits(data),
        "metadata": metadata,
    }
    return (data, kwargs, "image")


def localisation_layer_data(path: str | os.PathLike) -> list[LayerData]:
    """A localisation table -> [rendered density image, hidden subsampled points]."""
    from . import io as mio

    locs = mio.read_localisations(path)
    n_locs = len(locs.table)
    if n_locs == 0:
        raise mio.FormatError(f"{path}: the file holds no localisations; nothing to render")
    density = mio.render_density(locs, pixel_size_nm=RENDER_PIXEL_SIZE_NM, method=RENDER_METHOD)
    name = _stem(path)
    extra = {
        "n_localisations": int(n_locs),
        "render_pixel_size_nm": RENDER_PIXEL_SIZE_NM,
        "render_method": RENDER_METHOD,
        "localisation_metadata": _plain(getattr(locs, "metadata", {}) or {}),
    }
    image = density_layer_data(density, name=f"{name} density", extra_metadata=extra)
    return [image, points_layer_data(locs.table, name=f"{name} localisations")]


def points_layer_data(table, name: str, max_points: int = MAX_POINTS, seed: int = 0) -> LayerData:
    """Localisation table (x_nm, y_nm) -> points layer data in world nm, (y, x) order.

    At most ``max_points`` rows, drawn without replacement with a fixed seed so the same file
    always shows the same points. The layer starts hidden: it is for checking the rendering.
    """
    n_total = len(table)
    if n_total > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n_total, max_points, replace=False))
    else:
        rows = np.arange(n_total)
    yx_nm = np.column_stack(
        [table["y_nm"].to_numpy()[rows], table["x_nm"].to_numpy()[rows]]
    ).astype(np.float64)
    kwargs = {
        "name": f"{name} ({len(rows)} of {n_total})",
        "size": 15.0,  # nm: about one localisation precision
        "face_color": "cyan",
        "border_width": 0,
        "opacity": 0.6,
        "visible": False,
        "units": ("nm", "nm"),
        "metadata": {
            KIND_KEY: "localisations",
            "n_shown": int(len(rows)),
            "n_total": int(n_total),
            "subsample_seed": seed,
        },
    }
    return (yx_nm, kwargs, "points")


def robust_limits(data: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Contrast limits from percentiles of the finite values (a strictly increasing pair)."""
    values = np.asarray(data, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    if not hi > lo:
        lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        hi = lo + 1.0
    return (lo, hi)


def _stem(path) -> str:
    name = Path(path).name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _plain(meta: dict) -> dict:
    """Keep only JSON-like values so layer metadata stays small and serialisable."""
    out = {}
    for key, value in meta.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[str(key)] = value
        elif isinstance(value, np.generic):
            out[str(key)] = value.item()
        elif isinstance(value, (list, tuple)) and len(value) <= 64:
            out[str(key)] = [v.item() if isinstance(v, np.generic) else v for v in value]
        elif isinstance(value, dict):
            out[str(key)] = _plain(value)
        elif isinstance(value, Path):
            out[str(key)] = str(value)
    return out


def _notify_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)
