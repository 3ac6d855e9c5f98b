"""The same measurements on a known field (validation reference, no localisations involved).

Domains of a simulated ``phi_h`` map are its connected regions above a threshold (default: the
midpoint of its range, the usual interface of a phase-separated field) inside the nucleus mask;
equivalent radius ``sqrt(area / pi)`` from the pixel count, centre = centroid, spacing = mean
distance to the 5 nearest centres (all domains are neighbours), LAD = a domain within
``lad_band_fraction`` of the nucleus radius of the mask edge; radius and spacing are then
averaged over interior domains, like :func:`napari_mollifier.analysis.analyse_domains`.
Coordinates: pixel [0, 0] centred at ``origin_nm`` (y, x), as ``physics.sample_localisations``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .measures import DEFAULT_NEIGHBOURS, nearest_centre_spacing


def field_domains(
    phi_h: np.ndarray,
    pixel_nm: float,
    mask: np.ndarray | None = None,
    threshold: float | None = None,
    lad_band_fraction: float = 0.05,
    neighbours: int = DEFAULT_NEIGHBOURS,
    origin_nm: tuple[float, float] = (0.0, 0.0),
) -> tuple[dict, pd.DataFrame]:
    """Domain measurements of a ``phi_h`` field: ``(summary, per-domain table)``.

    ``summary``: ``n_domains``, ``n_interior_domains``, ``domain_radius_nm`` (mean),
    ``domain_radius_median_nm``, ``spacing_nm`` (mean), ``spacing_median_nm``,
    ``nucleus_radius_nm`` (from the mask area), ``threshold``.
    """
    from scipy import ndimage

    phi_h = np.asarray(phi_h, dtype=np.float64)
    mask = np.ones(phi_h.shape, bool) if mask is None else np.asarray(mask, bool)
    if threshold is None:
        threshold = 0.5 * (float(phi_h[mask].min()) + float(phi_h[mask].max()))
    labels, k = ndimage.label((phi_h > threshold) & mask)
    index = np.arange(1, k + 1)
    ones = np.ones(phi_h.shape)
    area = ndimage.sum(ones, labels, index) * pixel_nm**2
    centre = np.array(ndimage.center_of_mass(ones, labels, index)).reshape(-1, 2) * pixel_nm
    radius_nuc = float(np.sqrt(mask.sum() * pixel_nm**2 / np.pi))
    # distance (nm) of each pixel to the outside of the mask
    edge = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1] * pixel_nm
    min_edge = ndimage.minimum(edge, labels, index) if k else np.zeros(0)
    table = pd.DataFrame(
        {
            "x_nm": centre[:, 1] + origin_nm[1],
            "y_nm": centre[:, 0] + origin_nm[0],
            "area_nm2": area,
            "radius_nm": np.sqrt(area / np.pi),
            "is_lad": np.asarray(min_edge) <= lad_band_fraction * radius_nuc + pixel_nm,
        }
    )
    table["spacing_nm"] = nearest_centre_spacing(table[["x_nm", "y_nm"]].to_numpy(), neighbours)
    interior = table[~table["is_lad"]]
    summary = {
        "n_domains": int(k),
        "n_interior_domains": int(len(interior)),
        "domain_radius_nm": float(interior["radius_nm"].mean()),
        "domain_radius_median_nm": float(interior["radius_nm"].median()),
        "spacing_nm": float(interior["spacing_nm"].mean()),
        "spacing_median_nm": float(interior["spacing_nm"].median()),
        "nucleus_radius_nm": radius_nuc,
        "threshold": float(threshold),
    }
    return summary, table
