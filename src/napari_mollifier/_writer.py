"""napari writer: rate-map layers made by the "Infer rates" widget -> OME-TIFF + JSON.

Select the ratio layer and its companions (phi_h, residual, uncertainty) of one inference and use
File > Save Selected Layers with the "rate maps (OME-TIFF + JSON)" writer. The layers are put
back into a :class:`~napari_mollifier.inverse.RateMaps` (config, versions, device and seed come
from the layer metadata; pixel size and origin from the layer ``scale`` / ``translate``) and
written by :func:`napari_mollifier.io.write_maps`. A companion that was not selected is written
as a NaN channel and listed under ``"maps_not_selected"`` in the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._layer_keys import KIND_KEY, MAP_KEY, RESULT_ID_KEY, SOURCE_KEY  # noqa: F401 - re-exported

#: Keys of ``RateMaps.full_metadata()`` that map to RateMaps fields rather than ``metadata``.
_RESULT_FIELDS = (
    "config",
    "spacing_model_units",
    "pixel_size_nm",
    "origin_nm",
    "timings_s",
    "summary",
    "diagnostics",
)


def write_rate_maps(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """npe2 multi-layer writer: write the selected rate-map layers; return the written paths.

    Parameters
    ----------
    path : str
        Target file; ``.ome.tif`` is the expected suffix (a JSON sidecar is written next to it).
    layer_data : list of (data, layer state dict, layer type)
        Image layers whose metadata carries ``"napari_mollifier_map"`` (set by the widget).

    Returns
    -------
    list of str
        Written files; empty when the layers cannot be written (not rate maps of this plugin,
        maps of different inferences, shapes or scales that disagree, unwritable path). The
        reason is shown as a napari error notification: napari turns a ValueError raised by a
        writer into a vague "not a valid writer" warning, which would hide it.
    """
    from . import io as mio

    try:
        result = rate_maps_from_layers(layer_data)
        written = mio.write_maps(path, result) or [Path(path)]
    except (ValueError, OSError) as exc:
        from napari.utils.notifications import show_error

        show_error(f"napari-mollifier could not save {Path(path).name}: {exc}")
        return []
    return [str(p) for p in written]


def rate_maps_from_layers(layer_data: list[tuple[Any, dict, str]]):
    """Rebuild a :class:`~napari_mollifier.inverse.RateMaps` from rate-map layer data."""
    from .inverse.config import InferenceConfig
    from .inverse.result import MAP_NAMES, RateMaps

    if not layer_data:
        raise ValueError("no layers to write: select the rate-map layers made by 'Infer rates'")
    maps: dict[str, np.ndarray] = {}
    first_meta: dict | None = None
    first_state: dict | None = None
    for data, state, layer_type in layer_data:
        name = state.get("name", "?")
        meta = state.get("metadata") or {}
        map_name = meta.get(MAP_KEY)
        if layer_type != "image" or map_name not in MAP_NAMES:
            raise ValueError(
                f"layer {name!r} is not a napari-mollifier rate map: expected an image layer made "
                f"by the 'Infer rates' widget (metadata key {MAP_KEY!r} in {MAP_NAMES}), found "
                f"{layer_type} layer with {MAP_KEY}={map_name!r}"
            )
        if map_name in maps:
            raise ValueError(f"two selected layers hold the {map_name!r} map; select one of each")
        array = np.asarray(data, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"layer {name!r}: expected a 2D (H, W) map, found shape {array.shape}")
        if first_meta is None:
            first_meta, first_state = meta, state
        else:
            if meta.get(RESULT_ID_KEY) != first_meta.get(RESULT_ID_KEY):
                raise ValueError(
                    f"layers {first_state.get('name')!r} and {name!r} come from different "
                    "inferences; select the maps of one run"
                )
            if array.shape != next(iter(maps.values())).shape:
                raise ValueError(
                    f"layer {name!r} has shape {array.shape}, expected "
                    f"{next(iter(maps.values())).shape} like {first_state.get('name')!r}"
                )
        maps[map_name] = array

    assert first_meta is not None and first_state is not None
    shape = next(iter(maps.values())).shape
    missing = [m for m in MAP_NAMES if m not in maps]
    nan_map = np.full(shape, np.nan, dtype=np.float32)
    scale = [float(v) for v in first_state.get("scale", (1.0, 1.0))][-2:]
    translate = [float(v) for v in first_state.get("translate", (0.0, 0.0))][-2:]
    if not np.isclose(scale[0], scale[1], rtol=1e-6):
        raise ValueError(
            f"layer {first_state.get('name')!r}: expected square pixels, found scale {scale} nm"
        )
    try:
        config = InferenceConfig.from_dict(first_meta.get("config") or {})
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"layer {first_state.get('name')!r}: the 'config' in its metadata is not a valid "
            f"InferenceConfig ({exc})"
        ) from exc
    extra = {
        k: v
        for k, v in first_meta.items()
        if k not in _RESULT_FIELDS and not str(k).startswith("napari_mollifier_")
    }
    if missing:
        extra["maps_not_selected"] = missing
    extra["napari_layers"] = [state.get("name") for _, state, _ in layer_data]
    spacing = first_meta.get("spacing_model_units")
    if spacing is None:  # model units per pixel from the layer scale
        spacing = scale[0] / config.model.nm_per_unit
    ratio = maps.get("ratio", nan_map)
    return RateMaps(
        ratio=ratio,
        phi_h=maps.get("phi_h", nan_map),
        residual=maps.get("residual", nan_map),
        uncertainty=maps.get("uncertainty"),
        valid_mask=np.isfinite(ratio),
        config=config,
        spacing=float(spacing),
        pixel_size_nm=scale[0],
        origin_nm=(translate[0], translate[1]),
        timings=dict(first_meta.get("timings_s") or {}),
        metadata=extra,
        diagnostics=dict(first_meta.get("diagnostics") or {}),
    )
