"""The result of a domain analysis: per-nucleus summary, per-domain table, geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .boundary import Boundary

#: Per-nucleus summary keys, in the order they are written (summary.csv, widget).
SUMMARY_KEYS = (
    "n_localisations",
    "n_duplicates_removed",
    "nucleus_area_um2",
    "nucleus_radius_nm",
    "localisation_density_per_um2",
    "threshold_density_per_um2",
    "n_heterochromatin",
    "n_domains",
    "n_interior_domains",
    "n_lad_domains",
    "domain_radius_nm",
    "domain_radius_median_nm",
    "domain_radius_corrected_nm",
    "precision_nm",
    "spacing_nm",
    "spacing_median_nm",
    "lad_thickness_nm",
    "lad_coverage",
    "lad_fraction",
    "scaling_law_ratio",
    "scaling_law_gamma_ac_over_D_per_um2",
)


class AnalysisError(ValueError):
    """Domain analysis impossible for this input; the message names the source and why."""


@dataclass
class DomainReport:
    """What :func:`napari_mollifier.analysis.analyse_domains` returns.

    Attributes
    ----------
    source : str
        File path, or a description of the table analysed.
    summary : dict
        Per-nucleus values (:data:`SUMMARY_KEYS`, lengths in nm, densities per um^2) plus
        ``scaling_law_note`` (the scaling-law number is a scaling law, not a fit).
    domains : pandas.DataFrame
        One row per domain (``measures.DOMAIN_COLUMNS``); ``x_nm``, ``y_nm`` the centre.
    xy_nm : ndarray (N, 2)
        Distinct localisations analysed (x, y nm).
    density_per_um2 : ndarray (N,)
        Voronoi density of each (NaN on the convex hull).
    labels : ndarray (N,) int64
        Domain index of each localisation, -1 for none.
    boundary : Boundary
        Nuclear outline, its grid and mask.
    lad_inner_nm : ndarray (K, 2)
        Inner edge of the LAD band (the outline moved inward by the band width), x, y nm.
    params : dict
        The :class:`DomainParams` used.
    """

    source: str
    summary: dict
    domains: pd.DataFrame
    xy_nm: np.ndarray
    density_per_um2: np.ndarray
    labels: np.ndarray
    boundary: Boundary
    lad_inner_nm: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def pixel_nm(self) -> float:
        return self.boundary.grid.pixel_nm

    @property
    def origin_nm(self) -> tuple[float, float]:
        """(y, x) nm centre of pixel [0, 0] of :meth:`label_image` (``io.DensityImage``)."""
        return self.boundary.grid.origin_nm

    def label_image(self) -> np.ndarray:
        """(H, W) int32 on the boundary grid: domain index + 1 where its localisations fall."""
        grid = self.boundary.grid
        image = np.zeros(grid.counts.shape, np.int32)
        hit = self.labels >= 0
        row, col = grid.pixel_of(self.xy_nm[hit])
        image[row, col] = self.labels[hit] + 1
        return image

    def density_image(self) -> np.ndarray:
        """(H, W) float32 log10 of the mean Voronoi density per pixel (the lab's picture)."""
        grid = self.boundary.grid
        finite = np.isfinite(self.density_per_um2)
        row, col = grid.pixel_of(self.xy_nm[finite])
        total = np.zeros(grid.counts.shape)
        count = np.zeros(grid.counts.shape)
        np.add.at(total, (row, col), np.log10(self.density_per_um2[finite]))
        np.add.at(count, (row, col), 1.0)
        with np.errstate(invalid="ignore"):
            return (total / count).astype(np.float32)

    def scaling_law_image(self) -> np.ndarray:
        """(H, W) float32 scaling-law ratio map on the grid: inside the nucleus mask, each pixel
        takes the per-domain value (own R and spacing) of its nearest domain; NaN outside.

        A scaling law, like the per-nucleus value (``summary["scaling_law_note"]``).
        """
        from .scaling import scaling_law_map

        grid = self.boundary.grid
        image = np.full(grid.counts.shape, np.nan, np.float32)
        rows, cols = np.nonzero(self.boundary.mask)
        if len(self.domains) == 0 or rows.size == 0:
            return image
        pixels = np.column_stack(
            [grid.origin_nm[1] + cols * grid.pixel_nm, grid.origin_nm[0] + rows * grid.pixel_nm]
        )
        centres = self.domains[["x_nm", "y_nm"]].to_numpy(np.float64)
        ratio = self.domains["scaling_law_ratio"].to_numpy(np.float64)
        image[rows, cols] = scaling_law_map(centres, ratio, pixels)
        return image

    def write_domains_csv(self, path) -> Path:
        """Per-domain table as CSV (lengths nm, densities per um^2)."""
        path = Path(path)
        self.domains.to_csv(path, index=False, float_format="%.6g")
        return path

    def summary_row(self) -> dict:
        """The summary with the source, for one row of a table of nuclei."""
        return {"source": self.source, **self.summary}
