"""Data types returned by :mod:`napari_mollifier.io`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: Canonical localisation columns, in order; all lengths in nm.
CANONICAL_COLUMNS = (
    "x_nm",
    "y_nm",
    "z_nm",
    "frame",
    "sigma_nm",
    "photons",
    "background",
    "channel",
)


@dataclass
class Localisations:
    """A localisation table in nanometres.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per localisation; columns ``x_nm``, ``y_nm`` (float64, nm) always, and where
        the file has them ``z_nm`` (float64, nm), ``frame`` (int64, as numbered in the file),
        ``sigma_nm`` (float32, lateral localisation precision in nm), ``photons``,
        ``background`` (float32) and ``channel`` (int32; names in ``metadata["channel_names"]``
        when the file stores names).
    metadata : dict
        ``format``, ``file``, ``original_columns`` (canonical -> name in the file),
        ``pixel_size_nm`` (used for px -> nm, or None), ``pixel_size_source``,
        ``n_rows_read``, ``n_dropped_nonfinite`` and format-specific extras.
    path : Path or None
    """

    table: pd.DataFrame
    metadata: dict = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def xy_nm(self) -> np.ndarray:
        """(N, 2) float64 array of (x_nm, y_nm)."""
        return self.table[["x_nm", "y_nm"]].to_numpy(dtype=np.float64)


@dataclass
class DensityImage:
    """An image on a regular grid with a physical pixel size.

    Attributes
    ----------
    data : ndarray
        (H, W) float32/float64, or (C, H, W) for multi-channel images
        (``metadata["axes"] == "CYX"``). Rendered densities are localisations per pixel.
    pixel_size_nm : float
        Side of a (square) pixel in nm.
    origin_nm : (float, float)
        World coordinate (y, x) in nm of the CENTRE of pixel [0, 0]. With napari
        ``scale=(px, px)`` and ``translate=origin_nm`` the image overlays a Points layer at
        (y_nm, x_nm) exactly.
    metadata : dict
        Render method, sigma policy, source format, axes, channel names, ...
    path : Path or None
    """

    data: np.ndarray
    pixel_size_nm: float
    origin_nm: tuple[float, float] = (0.0, 0.0)
    metadata: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def pixel_to_nm(self, row: float, col: float) -> tuple[float, float]:
        """(row, col) pixel index -> (y_nm, x_nm) world coordinate of that pixel's centre."""
        return (
            self.origin_nm[0] + row * self.pixel_size_nm,
            self.origin_nm[1] + col * self.pixel_size_nm,
        )
