"""``analyse_domains``: localisations -> density -> domains -> boundary -> measurements."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .boundary import BoundaryError, find_boundary
from .density import neighbourhood_density, unique_localisations, voronoi_cell_areas
from .domains import Threshold, cluster_localisations
from .measures import domain_table, lad_thickness
from .params import DomainParams
from .report import AnalysisError, DomainReport
from .scaling import SCALING_LAW_NOTE, gamma_ac_over_d, scaling_law_ratio

#: Steps reported by :func:`iter_analyse_domains` (for progress bars).
STEPS = ("read", "density", "threshold", "clusters", "boundary", "measures")


def _median_sigma(table: pd.DataFrame) -> float | None:
    if "sigma_nm" not in table.columns:
        return None
    sigma = table["sigma_nm"].to_numpy(dtype=np.float64)
    sigma = sigma[np.isfinite(sigma)]
    return float(np.median(sigma)) if sigma.size else None


def load_xy(source) -> tuple[np.ndarray, str, float | None]:
    """(N, 2) x, y nm, a name and the median precision ``sigma_nm`` (or None) of ``source``:
    a path, ``io.Localisations``, a DataFrame with ``x_nm`` / ``y_nm`` columns, or an (N, 2)
    array of x, y nm."""
    from ..io import Localisations, read_localisations

    if isinstance(source, (str, Path)):
        locs = read_localisations(source)
        return locs.xy_nm, str(source), _median_sigma(locs.table)
    if isinstance(source, Localisations):
        name = str(source.path or source.metadata.get("file") or "localisation table")
        return source.xy_nm, name, _median_sigma(source.table)
    if isinstance(source, pd.DataFrame):
        missing = [c for c in ("x_nm", "y_nm") if c not in source.columns]
        if missing:
            raise AnalysisError(
                f"localisation table: no {', '.join(missing)} column; found columns "
                f"{', '.join(map(str, source.columns))}"
            )
        xy = source[["x_nm", "y_nm"]].to_numpy(dtype=np.float64)
        return xy, "localisation table", _median_sigma(source)
    array = np.asarray(source, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise AnalysisError(f"localisations: expected an (N, 2) x, y nm array, found {array.shape}")
    return array, "localisation array", None


def analyse_domains(source, params: DomainParams | None = None, **keywords) -> DomainReport:
    """Heterochromatin domains, LADs and the lab's measurements of one nucleus.

    Parameters
    ----------
    source : path, io.Localisations, DataFrame (x_nm, y_nm) or (N, 2) array (x, y nm)
        One nucleus' localisations (a file is read by ``io.read_localisations``).
    params : DomainParams, optional
        All thresholds; any :class:`DomainParams` field may also be given as a keyword
        (``eps_nm=30``, ``min_samples=3``, ``min_cluster_size=35``, ``lad_band_fraction=0.05``,
        ``threshold_percentile=75`` or ``threshold_density_per_um2=...``).

    Returns
    -------
    DomainReport

    Raises
    ------
    AnalysisError
        Too few localisations, no closed nuclear boundary, or no domain; the message names the
        source and what was found. ``io.FormatError`` for unreadable files.
    """
    gen = iter_analyse_domains(source, params, **keywords)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def iter_analyse_domains(
    source, params: DomainParams | None = None, **keywords
) -> Iterator[tuple[int, int, str]]:
    """:func:`analyse_domains` as a generator yielding ``(step, len(STEPS), name)`` before each
    step (a napari worker can report progress and stop between steps); returns the report."""
    p = DomainParams.from_dict({**(params.to_dict() if params else {}), **keywords})
    total = len(STEPS)
    yield 0, total, "read"
    xy, name, sigma = load_xy(source)
    precision = p.precision_nm if p.precision_nm is not None else (sigma or 0.0)
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    removed = 0
    if p.deduplicate:
        xy, removed = unique_localisations(xy)
    if len(xy) < max(p.min_localisations, 3):
        raise AnalysisError(
            f"{name}: too few localisations for a domain analysis: found {len(xy)} distinct, "
            f"expected at least {p.min_localisations}"
        )
    yield 1, total, "density"
    cells = voronoi_cell_areas(xy)
    density = 1e6 / cells
    yield 2, total, "threshold"
    local = neighbourhood_density(xy, cells, p.density_neighbours)
    try:
        rule = Threshold(p.threshold_percentile, p.threshold_density_per_um2, p.threshold_method)
        threshold = rule.value(local)
    except ValueError as err:
        raise AnalysisError(f"{name}: {err}") from None
    selected = np.isfinite(local) & (local > threshold)
    yield 3, total, "clusters"
    labels = cluster_localisations(xy, selected, p.eps_nm, p.min_samples, p.min_cluster_size)
    if labels.max(initial=-1) < 0:
        raise AnalysisError(
            f"{name}: no heterochromatin domain found: {int(selected.sum())} of {len(xy)} "
            f"localisations are above the density threshold {threshold:.4g} /um^2, and no "
            f"DBSCAN cluster (eps {p.eps_nm} nm, {p.min_samples} points) has >= "
            f"{p.min_cluster_size} localisations"
        )
    yield 4, total, "boundary"
    try:
        boundary = find_boundary(
            xy, p.grid_nm, p.mask_smoothing_nm, p.mask_level, p.boundary_smoothing_nm
        )
    except BoundaryError as err:
        raise AnalysisError(f"{name}: {err}") from None
    yield 5, total, "measures"
    found = (xy, removed, density, threshold, selected, labels, precision)
    return _measure(name, found, boundary, p)


def _measure(name, found, boundary, p):
    """The per-domain table and per-nucleus summary (see :mod:`.measures`)."""
    xy, removed, density, threshold, selected, labels, precision = found
    radius_nuc = boundary.radius_nm
    band = p.lad_band_fraction * radius_nuc
    clustered = labels >= 0
    n_domains = int(labels.max(initial=-1)) + 1
    domain_distance = boundary.group_min_distance(xy, labels, n_domains)
    domains = domain_table(xy, labels, domain_distance, band, p.neighbours)
    domains.insert(6, "radius_corrected_nm", np.maximum(domains["radius_nm"] - precision, 0.0))
    lad_ids = domains.loc[domains["is_lad"], "domain"].to_numpy(np.int64)
    is_lad_loc = clustered & np.isin(labels, lad_ids)
    nearest = np.zeros(len(xy), np.int64)  # nearest outline vertex, needed for LADs only
    nearest[is_lad_loc] = boundary.distance(xy[is_lad_loc])[1]
    thickness, coverage = lad_thickness(
        xy, is_lad_loc, nearest, boundary.arc_length(), boundary.length_nm, p.lad_segments
    )
    interior = domains[~domains["is_lad"]]
    radius = float(interior["radius_nm"].mean()) if len(interior) else float("nan")
    spacing = float(interior["spacing_nm"].mean()) if len(interior) else float("nan")
    area_um2 = boundary.area_nm2 / 1e6
    summary = {
        "n_localisations": int(len(xy)),
        "n_duplicates_removed": removed,
        "nucleus_area_um2": area_um2,
        "nucleus_radius_nm": radius_nuc,
        "localisation_density_per_um2": len(xy) / area_um2,
        "threshold_density_per_um2": float(threshold),
        "n_heterochromatin": int(selected.sum()),
        "n_domains": int(len(domains)),
        "n_interior_domains": int(len(interior)),
        "n_lad_domains": int(len(lad_ids)),
        "domain_radius_nm": radius,
        "domain_radius_median_nm": (
            float(interior["radius_nm"].median()) if len(interior) else float("nan")
        ),
        "domain_radius_corrected_nm": (
            float(interior["radius_corrected_nm"].median()) if len(interior) else float("nan")
        ),
        "precision_nm": float(precision),
        "spacing_nm": spacing,
        "spacing_median_nm": (
            float(interior["spacing_nm"].median()) if len(interior) else float("nan")
        ),
        "lad_thickness_nm": thickness,
        "lad_coverage": coverage,
        "lad_fraction": float(is_lad_loc.sum() / clustered.sum()),
        "scaling_law_ratio": scaling_law_ratio(spacing, radius),
        "scaling_law_gamma_ac_over_D_per_um2": float(gamma_ac_over_d(spacing)),
        "scaling_law_note": SCALING_LAW_NOTE,
    }
    return DomainReport(
        source=name,
        summary=summary,
        domains=domains,
        xy_nm=xy,
        density_per_um2=density,
        labels=labels,
        boundary=boundary,
        lad_inner_nm=boundary.offset_inward(band),
        params=p.to_dict(),
    )
