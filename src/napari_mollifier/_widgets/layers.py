"""Result layers of the "Infer rates" widget: rate maps aligned on the source, nucleus table.

Only napari public API: ``viewer.add_image`` / ``add_points`` and layer attributes.
"""

from __future__ import annotations

import math
import uuid

import numpy as np

from .._layer_keys import KIND_KEY, MAP_KEY, MAP_STYLE, RESULT_ID_KEY, SOURCE_KEY
from .._reader import robust_limits

#: Layer-metadata kind of the per-nucleus table layer.
NUCLEI_KIND = "nuclei"


def add_result_layers(viewer, result, source) -> list:
    """Add (or update) the result maps as image layers aligned with ``source``.

    Returns the layers, ratio first (uncertainty only when the method gives one). Each layer's
    metadata holds ``result.full_metadata()`` (config, versions, device, seed, timings,
    diagnostics, the per-nucleus table when there is one) plus the map name, a result id and
    the source layer name.
    """
    from ..inverse.result import MAP_NAMES

    maps = result.maps()
    common = result.full_metadata()
    common[SOURCE_KEY] = source.name
    common[RESULT_ID_KEY] = uuid.uuid4().hex
    common[KIND_KEY] = "rate_map"
    layers = []
    # companions first and hidden, the ratio last so it sits on top of the density
    for map_name in (*[m for m in MAP_NAMES if m != "ratio"], "ratio"):
        if map_name == "uncertainty" and result.uncertainty is None:
            continue
        data = maps[map_name]
        style = MAP_STYLE[map_name]
        limits = robust_limits(data, 1.0, 99.0)
        if style["symmetric"]:
            half = max(abs(limits[0]), abs(limits[1]))
            limits = (-half, half)
        elif map_name == "ratio" and limits[1] > 0:
            limits = (max(limits[0], 0.0), limits[1])  # a rate ratio is positive
        kwargs = {
            "scale": tuple(source.scale[-2:]),
            "translate": tuple(source.translate[-2:]),
            "units": tuple(source.units[-2:]),
            "colormap": style["colormap"],
            "contrast_limits": limits,
            "metadata": {**common, MAP_KEY: map_name},
            "opacity": 0.75 if map_name == "ratio" else 1.0,
            "visible": map_name == "ratio",
        }
        name = f"{source.name} {map_name}"
        if name in viewer.layers and MAP_KEY in viewer.layers[name].metadata:
            layer = viewer.layers[name]
            layer.data = data
            for key in ("scale", "translate", "contrast_limits", "metadata"):
                setattr(layer, key, kwargs[key])
        else:
            layer = viewer.add_image(data, name=name, **kwargs)
            if map_name == "ratio" and hasattr(layer, "colorbar"):
                layer.colorbar.visible = True  # the ratio scale belongs with the map
        layers.append(layer)
    return layers[-1:] + layers[:-1]


def add_nuclei_layer(viewer, rows: list[dict], labels_layer, source):
    """Points at the nucleus centroids, the table as their features and as text in the viewer.

    ``labels_layer``: the mask's Labels layer (its scale / translate place the centroids).
    Returns the layer (replaced when it exists).
    """
    labels = np.asarray(labels_layer.data)
    centres, kept = [], []
    for row in rows:
        ys, xs = np.nonzero(labels == row["label"])
        if ys.size:
            centres.append((ys.mean(), xs.mean()))
            kept.append(row)
    scale = np.asarray(labels_layer.scale[-2:], dtype=float)
    translate = np.asarray(labels_layer.translate[-2:], dtype=float)
    world = np.asarray(centres, dtype=float).reshape(-1, 2) * scale + translate
    features = {k: [r[k] for r in kept] for k in (kept[0] if kept else {})}
    name = f"{source.name} nuclei"
    if name in viewer.layers:
        viewer.layers.remove(name)
    return viewer.add_points(
        world,
        name=name,
        features=features,
        text={
            "string": "{label}: {ratio_median:.3g} ± {ratio_uncertainty:.2g}",
            "color": "white",
            "size": 10,
        },
        size=float(scale[0]) * 4,
        face_color="transparent",
        border_color="white",
        units=tuple(labels_layer.units[-2:]),
        metadata={KIND_KEY: NUCLEI_KIND, "nuclei": kept},
    )


def format_progress(event) -> str:
    """One-line live readout: step, losses, elapsed time, message."""
    parts = []
    if event.total and event.total > 1:
        parts.append(f"step {event.step}/{event.total}")
    for key, value in list((event.losses or {}).items())[:4]:
        if isinstance(value, (int, float)) and math.isfinite(value):
            parts.append(f"{key} {value:.3g}")
    parts.append(f"{event.elapsed_s:.1f} s")
    if event.message:
        parts.append(event.message)
    return " · ".join(parts)


def format_summary(result, elapsed_s: float | None = None) -> str:
    """Short description of a finished result for the status line.

    The device's reason (e.g. why "auto" chose the CPU) is left to the device row and the
    result's metadata; ``elapsed_s`` is the run's wall time from its last progress event.
    """
    summary = result.summary()
    meta = result.metadata or {}
    nbsp = "\u00a0"  # keeps numbers with their units when the status line wraps
    text = f"Done: {summary.get('n_valid', 0)} valid pixels"
    nuclei = meta.get("nuclei")
    if nuclei:
        text += f" in {len(nuclei)} nuclei"
    if summary.get("n_valid"):
        text += (
            f"; median ratio {summary['ratio_median']:.3g},"
            f" p5{nbsp}{summary.get('ratio_p05', float('nan')):.3g},"
            f" p95{nbsp}{summary.get('ratio_p95', float('nan')):.3g}"
        )
    width = meta.get("mollifier_width")
    if isinstance(width, (int, float)):
        text += f"; width {width * result.config.model.nm_per_unit:.0f}{nbsp}nm"
    if meta.get("device"):
        text += f"; device {meta['device']}"
    if elapsed_s is not None and math.isfinite(elapsed_s):
        text += f"; {elapsed_s:.1f}{nbsp}s"
    if (result.diagnostics or {}).get("stopped"):
        text += f"; stopped at step {result.diagnostics.get('steps_done')}"
    return text
