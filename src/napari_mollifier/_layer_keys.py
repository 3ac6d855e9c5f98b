"""Layer-metadata keys and the display style of result maps, shared by the napari glue."""

from __future__ import annotations

#: What a layer of this plugin holds ("density", "localisations", "truth", "rate_map").
KIND_KEY = "napari_mollifier_kind"
#: Which map (``RateMaps.MAP_NAMES``) a result layer shows.
MAP_KEY = "napari_mollifier_map"
#: One id per inference: the layers of one result share it.
RESULT_ID_KEY = "napari_mollifier_result_id"
#: Name of the layer a result was inferred from.
SOURCE_KEY = "napari_mollifier_source_layer"

#: Display of the result maps: colormap, and whether limits are symmetric about 0.
MAP_STYLE = {
    "ratio": {"colormap": "turbo", "symmetric": False},
    "phi_h": {"colormap": "viridis", "symmetric": False},
    "residual": {"colormap": "PiYG", "symmetric": True},
    "uncertainty": {"colormap": "inferno", "symmetric": False},
}
