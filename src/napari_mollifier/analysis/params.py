"""All thresholds of the domain analysis in one dataclass (keywords of ``analyse_domains``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .boundary import (
    DEFAULT_BOUNDARY_SMOOTHING_NM,
    DEFAULT_GRID_NM,
    DEFAULT_MASK_LEVEL,
    DEFAULT_MASK_SMOOTHING_NM,
)
from .domains import (
    DEFAULT_EPS_NM,
    DEFAULT_MIN_CLUSTER_SIZE,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_PERCENTILE,
)
from .measures import DEFAULT_LAD_SEGMENTS, DEFAULT_NEIGHBOURS


@dataclass(frozen=True)
class DomainParams:
    """Parameters of :func:`napari_mollifier.analysis.analyse_domains` (lab defaults).

    Attributes
    ----------
    threshold_percentile : float
        Heterochromatin = Voronoi density above this percentile of the nucleus' densities.
    threshold_density_per_um2 : float or None
        One absolute threshold (localisations per um^2) instead, e.g. shared by a folder
        (:func:`napari_mollifier.analysis.shared_threshold`); wins over the percentile.
    threshold_method : {"percentile", "otsu"}
        Automatic threshold when no absolute one is given (see ``domains.Threshold``).
    density_neighbours : int
        0 (the lab's): each localisation's own Voronoi-cell density; k > 0: the density over
        its cell and its k nearest neighbours' cells (less noisy; see docs/analysis.md).
    eps_nm, min_samples : float, int
        DBSCAN neighbourhood radius (nm) and core-point count (the point itself included).
    min_cluster_size : int
        Clusters with fewer localisations are dropped.
    lad_band_fraction : float
        A domain within ``lad_band_fraction * nucleus radius`` of the boundary is a LAD.
    neighbours : int
        Spacing = mean distance to this many nearest domain centres.
    lad_segments : int
        Boundary segments of the LAD-thickness measurement.
    grid_nm, mask_smoothing_nm, mask_level, boundary_smoothing_nm : float
        Nuclear outline (see :mod:`napari_mollifier.analysis.boundary`); ``grid_nm`` is also
        the pixel of the cluster label image.
    precision_nm : float or None
        Localisation precision subtracted from the hull radius for
        ``radius_corrected_nm`` (the hull of jittered points overshoots by about this much);
        None: the median ``sigma_nm`` of the table when it has one, else 0.
    min_localisations : int
        Fewer distinct localisations than this are refused (no meaningful density).
    deduplicate : bool
        Drop exact duplicate positions first (as the lab pipeline does).
    """

    threshold_percentile: float = DEFAULT_PERCENTILE
    threshold_density_per_um2: float | None = None
    threshold_method: str = "percentile"
    density_neighbours: int = 0
    eps_nm: float = DEFAULT_EPS_NM
    min_samples: int = DEFAULT_MIN_SAMPLES
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE
    lad_band_fraction: float = 0.05
    neighbours: int = DEFAULT_NEIGHBOURS
    lad_segments: int = DEFAULT_LAD_SEGMENTS
    grid_nm: float = DEFAULT_GRID_NM
    mask_smoothing_nm: float = DEFAULT_MASK_SMOOTHING_NM
    mask_level: float = DEFAULT_MASK_LEVEL
    boundary_smoothing_nm: float = DEFAULT_BOUNDARY_SMOOTHING_NM
    precision_nm: float | None = None
    min_localisations: int = 500
    deduplicate: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> DomainParams:
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(
                f"unknown domain-analysis parameter(s) {sorted(unknown)}; "
                f"expected some of {sorted(names)}"
            )
        return cls(**data)
