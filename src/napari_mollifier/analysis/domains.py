"""Heterochromatin localisations (density threshold) and their clusters (DBSCAN).

The lab pipeline (MODEL.md, "The lab's independent estimate"): a localisation is
heterochromatin when its Voronoi density is above a threshold, the 75th percentile of the
densities (per nucleus, or pooled over all files of a folder: :func:`shared_threshold`);
heterochromatin localisations are clustered by DBSCAN (eps 30 nm, 3 points) and clusters of at
least 35 localisations are domains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Defaults of the lab pipeline.
DEFAULT_PERCENTILE = 75.0
DEFAULT_EPS_NM = 30.0
DEFAULT_MIN_SAMPLES = 3
DEFAULT_MIN_CLUSTER_SIZE = 35


THRESHOLD_METHODS = ("percentile", "otsu")


@dataclass(frozen=True)
class Threshold:
    """How the heterochromatin density threshold is chosen.

    ``density_per_um2`` (one absolute value, e.g. shared by a folder) wins when given;
    otherwise ``method`` "percentile" (the lab's: ``percentile`` of this nucleus' finite
    densities) or "otsu" (Otsu's threshold of log10 density: the valley between the
    euchromatin and heterochromatin modes, which follows the domain fraction of each nucleus;
    use it with a neighbourhood density, single cells are too noisy to be bimodal).
    """

    percentile: float = DEFAULT_PERCENTILE
    density_per_um2: float | None = None
    method: str = "percentile"

    def value(self, density_per_um2: np.ndarray) -> float:
        """The threshold (localisations per um^2) for these densities."""
        if self.density_per_um2 is not None:
            if not (np.isfinite(self.density_per_um2) and self.density_per_um2 > 0):
                raise ValueError(
                    f"density threshold must be a positive number, found {self.density_per_um2}"
                )
            return float(self.density_per_um2)
        if self.method not in THRESHOLD_METHODS:
            raise ValueError(
                f"threshold method must be one of {THRESHOLD_METHODS}, found {self.method!r}"
            )
        finite = density_per_um2[np.isfinite(density_per_um2) & (density_per_um2 > 0)]
        if finite.size == 0:
            raise ValueError("no finite Voronoi density: too few distinct localisations")
        if self.method == "otsu":
            from skimage.filters import threshold_otsu

            return float(10 ** threshold_otsu(np.log10(finite), nbins=512))
        if not 0 <= self.percentile < 100:
            raise ValueError(f"threshold percentile must be in [0, 100), found {self.percentile}")
        return float(np.percentile(finite, self.percentile))


def shared_threshold(densities, percentile: float = DEFAULT_PERCENTILE) -> float:
    """One threshold for a whole folder: the percentile of all nuclei's densities pooled.

    ``densities`` is an iterable of per-localisation density arrays (one per nucleus, e.g.
    from :func:`napari_mollifier.analysis.voronoi_density`); NaNs (hull cells) are ignored.
    Pass the result as ``analyse_domains(..., threshold_density_per_um2=value)``.
    """
    pooled = [np.asarray(d, dtype=np.float64) for d in densities]
    pooled = np.concatenate([d[np.isfinite(d)] for d in pooled]) if pooled else np.empty(0)
    if pooled.size == 0:
        raise ValueError("shared_threshold: no finite density in any nucleus")
    return float(np.percentile(pooled, percentile))


def cluster_localisations(
    xy_nm: np.ndarray,
    selected: np.ndarray,
    eps_nm: float = DEFAULT_EPS_NM,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
) -> np.ndarray:
    """DBSCAN of the ``selected`` localisations; one label per localisation of ``xy_nm``.

    Returns int64 labels: -1 for unselected, noise and clusters smaller than
    ``min_cluster_size``; 0 .. K-1 for the kept clusters, numbered by decreasing size.
    """
    if eps_nm <= 0 or min_samples < 1 or min_cluster_size < 1:
        raise ValueError(
            f"expected eps_nm > 0, min_samples >= 1, min_cluster_size >= 1; found "
            f"{eps_nm}, {min_samples}, {min_cluster_size}"
        )
    labels = np.full(len(xy_nm), -1, np.int64)
    idx = np.flatnonzero(selected)
    if len(idx) < max(min_samples, min_cluster_size):
        return labels
    raw = dbscan_labels(xy_nm[idx], eps_nm, min_samples)
    sizes = np.bincount(raw[raw >= 0]) if np.any(raw >= 0) else np.zeros(0, np.int64)
    keep = np.flatnonzero(sizes >= min_cluster_size)
    keep = keep[np.argsort(-sizes[keep], kind="stable")]
    remap = np.full(len(sizes) + 1, -1, np.int64)  # last slot: DBSCAN noise (-1)
    remap[keep] = np.arange(len(keep))
    labels[idx] = remap[raw]
    return labels


def dbscan_labels(xy_nm: np.ndarray, eps_nm: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels equal to scikit-learn's ``DBSCAN(eps, min_samples).fit_predict(xy)``.

    Core points have >= ``min_samples`` points (themselves included) within ``eps_nm``;
    clusters are the connected components of core points within ``eps_nm`` of each other,
    numbered by their lowest point index (scikit-learn's scan order); a border point joins the
    lowest-numbered cluster among its core neighbours (the first to reach it there); the rest
    is noise (-1). Vectorised KD-tree queries and a sparse graph on the points sorted in rows
    (neighbours near in memory) instead of scikit-learn's per-point neighbour lists: the same
    labels in about half the time (tests/test_analysis_domains.py compares them).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    from .density import _row_order, analysis_threads

    order = _row_order(xy_nm, 64)  # position p holds point order[p]
    pts = xy_nm[order]
    counts = cKDTree(pts).query_ball_point(
        pts, eps_nm, return_length=True, workers=analysis_threads()
    )
    labels = np.full(len(pts), -1, np.int64)
    core = np.flatnonzero(counts >= min_samples)
    if len(core) == 0:
        return labels
    core_tree = cKDTree(pts[core])
    pairs = core_tree.query_pairs(eps_nm, output_type="ndarray").astype(np.int32)
    graph = coo_matrix(
        (np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(len(core),) * 2
    )
    n_comp, comp = connected_components(graph, directed=False)
    first = np.full(n_comp, len(pts), np.int64)
    np.minimum.at(first, comp, order[core])  # each cluster's lowest original index
    rank = np.empty(n_comp, np.int64)
    rank[np.argsort(first)] = np.arange(n_comp)
    core_labels = rank[comp]
    labels[core] = core_labels
    border = np.flatnonzero(counts < min_samples)
    if len(border):
        near = cKDTree(pts[border]).sparse_distance_matrix(core_tree, eps_nm, output_type="ndarray")
        best = np.full(len(border), n_comp, np.int64)
        np.minimum.at(best, near["i"], core_labels[near["j"]])
        reached = best < n_comp
        labels[border[reached]] = best[reached]
    out = np.empty_like(labels)
    out[order] = labels
    return out
