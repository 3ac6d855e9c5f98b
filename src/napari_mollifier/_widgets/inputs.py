"""From the widget's picked layers to arrays for the worker (napari public API only).

Input: an Image layer (density) or a Points layer (localisations, rendered here with the
config's ``render.pixel_size_nm`` / ``render.method``). A Z stack asks for a plane or a
projection; a camera-pixel table asks for its pixel size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._layer_keys import KIND_KEY, MAP_KEY
from .._reader import density_layer_data
from .layers import NUCLEI_KIND

#: Ways to make one plane of a stack: the plane shown in the viewer, or a projection.
PLANE_CHOICES = ("current slice", "max", "mean", "sum")
_NM_UNITS = ("nm", "nanometer", "nanometre")


def is_result_layer(layer) -> bool:
    """Maps, truth and nucleus tables made by this plugin are not inputs."""
    meta = layer.metadata or {}
    return MAP_KEY in meta or meta.get(KIND_KEY) in ("rate_map", "truth", NUCLEI_KIND)


def layer_pixel_size_nm(layer) -> float | None:
    """nm per pixel of an image layer: our reader's metadata, else a scale given in nm."""
    meta = layer.metadata or {}
    if "pixel_size_nm" in meta:
        value = meta["pixel_size_nm"]
        return float(value) if value else None
    unit = str(layer.units[-1]) if getattr(layer, "units", None) else ""
    if unit in _NM_UNITS:
        return float(layer.scale[-1])
    return None


def layer_origin_nm(layer) -> tuple[float, float]:
    """World (y, x) of the centre of pixel [0, 0] in nm (0, 0 for a layer not in nm)."""
    unit = str(layer.units[-1]) if getattr(layer, "units", None) else ""
    if unit in _NM_UNITS or "origin_nm" in (layer.metadata or {}):
        return (float(layer.translate[-2]), float(layer.translate[-1]))
    return (0.0, 0.0)


def plane_of(layer, viewer, how: str) -> tuple[np.ndarray, str]:
    """A float64 (H, W) copy of an image layer; a stack is reduced as ``how`` says.

    Raises ValueError naming the layer for anything that is not an image of real numbers.
    """
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    array = np.asarray(data)
    note = ""
    if getattr(layer, "rgb", False):
        raise ValueError(f"layer {layer.name!r}: an RGB picture; expected a density image")
    lead = [i for i, n in enumerate(array.shape[:-2]) if n != 1]
    if lead:
        if how not in PLANE_CHOICES:
            raise ValueError(
                f"layer {layer.name!r} is a stack of shape {array.shape}: choose a Z plane "
                f"({', '.join(PLANE_CHOICES)})"
            )
        if how == "current slice":
            coords = layer.world_to_data(viewer.dims.point)
            index = tuple(
                int(np.clip(round(float(coords[i])), 0, array.shape[i] - 1))
                for i in range(array.ndim - 2)
            )
            array = array[index]
            note = f"plane {index} of a stack of shape {np.shape(data)}"
        else:
            axes = tuple(range(array.ndim - 2))
            array = getattr(np, how)(np.asarray(array, dtype=np.float64), axis=axes)
            note = f"{how} projection of a stack of shape {np.shape(data)}"
    array = np.squeeze(array) if array.ndim > 2 else array
    if array.ndim != 2:
        raise ValueError(
            f"layer {layer.name!r}: expected a 2D (Y, X) density image, found shape "
            f"{np.shape(layer.data)}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"layer {layer.name!r}: expected real numbers, found dtype {array.dtype}")
    array = array.astype(np.float64, copy=True)
    if not np.isfinite(array).any():
        raise ValueError(f"layer {layer.name!r}: the image holds no finite values")
    return array, note


def is_stack(layer) -> bool:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return any(n != 1 for n in np.shape(data)[:-2]) and not getattr(layer, "rgb", False)


def points_localisations(layer, config):
    """The localisations behind a Points layer, in nm (``io.Localisations``).

    The file the layer came from (all localisations, not the shown subsample) when known;
    otherwise the points themselves (world coordinates; nm, or camera pixels times the
    config's ``pixel_size_nm``).
    """
    from .. import io as mio
    from ..io._table import build_localisations

    meta = layer.metadata or {}
    camera = bool(meta.get("camera_pixels"))
    unit = str(layer.units[-1]) if getattr(layer, "units", None) else ""
    needs_size = camera or unit not in _NM_UNITS
    if needs_size and not config.pixel_size_nm:
        raise ValueError(
            f"layer {layer.name!r} is in camera pixels and has no pixel size: enter the camera "
            "pixel size in 'Pixel size (nm)', then render"
        )
    source = meta.get("source_file")
    if source and Path(source).is_file():
        size = config.pixel_size_nm if camera else None
        return mio.read_localisations(source, pixel_size_nm=size)
    yx = np.asarray(layer.data, dtype=np.float64)[:, -2:]
    factor = float(config.pixel_size_nm) if needs_size else 1.0
    columns = {"x_nm": yx[:, 1] * factor, "y_nm": yx[:, 0] * factor}
    return build_localisations(columns, path=None, fmt="napari-points")


def render_layer_data(layer, config):
    """Image layer data of the density rendered from a Points layer with the config's settings."""
    from .. import io as mio

    locs = points_localisations(layer, config)
    if len(locs.table) == 0:
        raise ValueError(f"layer {layer.name!r} holds no localisations to render")
    density = mio.render_density(
        locs, pixel_size_nm=float(config.render.pixel_size_nm), method=config.render.method
    )
    stem = layer.name.split(" localisations")[0]
    extra = {
        "n_localisations": int(len(locs.table)),
        "render_pixel_size_nm": float(config.render.pixel_size_nm),
        "render_method": config.render.method,
        "rendered_from_layer": layer.name,
    }
    return density_layer_data(density, name=f"{stem} density", extra_metadata=extra)
