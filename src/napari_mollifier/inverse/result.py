"""The one result type returned by every rate estimator."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .config import InferenceConfig

#: Order and names of the maps written to disk and shown as layers.
MAP_NAMES = ("ratio", "phi_h", "residual", "uncertainty")


@dataclass
class RateMaps:
    """Rate-ratio map and its companions, all (H, W) on the input image's pixel grid.

    Attributes
    ----------
    ratio : ndarray (H, W) float
        Gamma_me / Gamma_ac (dimensionless), NaN outside ``valid_mask``.
    phi_h : ndarray (H, W) float
        Fitted (mollified) heterochromatin volume fraction.
    residual : ndarray (H, W) float
        Mollified steady-state residual of the phi_d equation (model units, 1/time).
    uncertainty : ndarray (H, W) float or None
        Per-pixel standard deviation of ``ratio`` when the method provides one.
    valid_mask : ndarray (H, W) bool
        Where the estimate is defined (inside the nucleus, away from the image border).
    config : InferenceConfig
        The full configuration that produced this result.
    spacing : float
        Grid spacing in model units per pixel.
    pixel_size_nm : float or None
        Physical pixel size; None when the input had no physical scale (simulations).
    origin_nm : (float, float)
        World coordinate (y, x) in nm of the centre of pixel [0, 0] (napari ``translate``).
    timings : dict
        Seconds spent per stage.
    metadata : dict
        Versions, device, seed, chosen mollifier width, calibration, source file.
    diagnostics : dict
        Method-specific numbers (losses, chosen-width criterion, global balance, ...).
    """

    ratio: np.ndarray
    phi_h: np.ndarray
    residual: np.ndarray
    uncertainty: np.ndarray | None
    valid_mask: np.ndarray
    config: InferenceConfig
    spacing: float
    pixel_size_nm: float | None = None
    origin_nm: tuple[float, float] = (0.0, 0.0)
    timings: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)

    def maps(self) -> dict[str, np.ndarray]:
        """Named (H, W) float32 maps in :data:`MAP_NAMES` order (uncertainty NaN if absent)."""
        out = {}
        for name in MAP_NAMES:
            value = getattr(self, name)
            if value is None:
                value = np.full(self.ratio.shape, np.nan)
            out[name] = np.asarray(value, dtype=np.float32)
        return out

    def summary(self) -> dict:
        """Small scalar summary (mean / median / percentiles of the valid ratio)."""
        valid = self.ratio[np.isfinite(self.ratio)]
        if valid.size == 0:
            return {"n_valid": 0, "ratio_mean": float("nan"), "ratio_median": float("nan")}
        return {
            "n_valid": int(valid.size),
            "ratio_mean": float(valid.mean()),
            "ratio_median": float(np.median(valid)),
            "ratio_p05": float(np.percentile(valid, 5)),
            "ratio_p95": float(np.percentile(valid, 95)),
        }

    def full_metadata(self) -> dict:
        """Everything needed to reproduce this result, JSON-serialisable."""
        return jsonable(
            {
                "config": self.config.to_dict(),
                "spacing_model_units": self.spacing,
                "pixel_size_nm": self.pixel_size_nm,
                "origin_nm": list(self.origin_nm),
                "timings_s": self.timings,
                "summary": self.summary(),
                "diagnostics": self.diagnostics,
                **self.metadata,
            }
        )

    def save(self, path: str | Path) -> list[Path]:
        """Write an OME-TIFF of all maps plus a JSON sidecar; returns the written paths."""
        from ..io import write_maps

        return write_maps(path, self)


def jsonable(obj):
    """Recursively convert numpy scalars / arrays / tuples / paths for json.dumps."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else str(obj)
    return obj


_jsonable = jsonable  # the name before version 2 of the config
