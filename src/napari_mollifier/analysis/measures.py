"""Per-domain and per-nucleus measurements of the lab pipeline (all lengths in nm).

- domain radius ``sqrt(hull area / pi)`` (convex hull of the cluster's localisations; the
  analysis adds ``radius_corrected_nm``, this minus the localisation precision);
- domain spacing: mean distance from a domain's centre to the 5 nearest other domain centres
  (all domains, LADs included, are neighbours; the nucleus value averages interior domains);
- a domain is a LAD when one of its localisations lies within ``lad_band_nm`` (5 % of the
  nucleus radius by default) of the boundary, otherwise it is interior;
- LAD thickness: the boundary is cut into 50 segments of equal length; in each segment holding
  LAD localisations (assigned by their nearest boundary point, i.e. along the boundary normal)
  the LAD hull area divided by the segment length, averaged over those segments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_NEIGHBOURS = 5
DEFAULT_LAD_SEGMENTS = 50

DOMAIN_COLUMNS = (
    "domain",
    "x_nm",
    "y_nm",
    "n_localisations",
    "area_nm2",
    "radius_nm",
    "radius_corrected_nm",
    "distance_to_boundary_nm",
    "is_lad",
    "spacing_nm",
    "density_per_um2",
    "scaling_law_ratio",
)


def hull_area(points: np.ndarray) -> float:
    """Convex-hull area (nm^2) of (N, 2) points; 0 for fewer than 3 or collinear points."""
    from scipy.spatial import ConvexHull, QhullError

    if len(points) < 3:
        return 0.0
    try:
        return float(ConvexHull(points).volume)  # 2-D "volume" is the area
    except QhullError:
        return 0.0


def domain_table(
    xy_nm: np.ndarray,
    labels: np.ndarray,
    domain_distance_nm: np.ndarray,
    lad_band_nm: float,
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> pd.DataFrame:
    """One row per cluster label 0..K-1 (see :data:`DOMAIN_COLUMNS`).

    ``domain_distance_nm`` (K,) is each domain's least distance of a localisation to the
    nuclear boundary (:meth:`Boundary.group_min_distance`).
    """
    from .scaling import scaling_law_ratio

    k = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    if k == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=float) for c in DOMAIN_COLUMNS if c != "radius_corrected_nm"}
        )
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, np.arange(k + 1))
    rows = []
    for d in range(k):
        members = order[starts[d] : starts[d + 1]]
        pts = xy_nm[members]
        area = hull_area(pts)
        dist = float(domain_distance_nm[d])
        rows.append(
            (
                d,
                *pts.mean(axis=0),
                len(members),
                area,
                np.sqrt(area / np.pi),
                dist,
                dist <= lad_band_nm,
            )
        )
    table = pd.DataFrame(
        rows, columns=[c for c in DOMAIN_COLUMNS[:9] if c != "radius_corrected_nm"]
    )
    table["spacing_nm"] = nearest_centre_spacing(table[["x_nm", "y_nm"]].to_numpy(), neighbours)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["density_per_um2"] = 1e6 * table["n_localisations"] / table["area_nm2"]
    table["scaling_law_ratio"] = scaling_law_ratio(table["spacing_nm"], table["radius_nm"])
    return table


def nearest_centre_spacing(centres: np.ndarray, neighbours: int = DEFAULT_NEIGHBOURS) -> np.ndarray:
    """Mean distance from each centre to its ``neighbours`` nearest other centres.

    With fewer than ``neighbours + 1`` centres, the mean over all the others (NaN for one).
    """
    from scipy.spatial import cKDTree

    centres = np.asarray(centres, dtype=np.float64)
    n = len(centres)
    if n < 2:
        return np.full(n, np.nan)
    k = min(neighbours, n - 1)
    dist, _ = cKDTree(centres).query(centres, k=k + 1)
    return np.asarray(dist, dtype=np.float64).reshape(n, k + 1)[:, 1:].mean(axis=1)


def lad_thickness(
    xy_nm: np.ndarray,
    is_lad_loc: np.ndarray,
    nearest_vertex: np.ndarray,
    arc_length_nm: np.ndarray,
    perimeter_nm: float,
    segments: int = DEFAULT_LAD_SEGMENTS,
) -> tuple[float, float]:
    """Mean LAD thickness (nm) and the fraction of boundary segments holding LAD.

    ``nearest_vertex`` indexes each localisation's nearest boundary vertex, whose arc length
    (``arc_length_nm``) places it in one of ``segments`` equal segments of the perimeter.
    Returns ``(nan, 0.0)`` without LAD localisations.
    """
    idx = np.flatnonzero(is_lad_loc)
    if idx.size == 0:
        return float("nan"), 0.0
    seg_len = perimeter_nm / segments
    seg = np.minimum((arc_length_nm[nearest_vertex[idx]] / seg_len).astype(np.int64), segments - 1)
    thickness = []
    for s in np.unique(seg):
        thickness.append(hull_area(xy_nm[idx[seg == s]]) / seg_len)
    return float(np.mean(thickness)), float(len(thickness) / segments)
