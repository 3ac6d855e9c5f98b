"""The lab's scaling-law estimate of the rate ratio from domain geometry (MODEL.md).

``Gamma_ac ~ D / d^2`` and ``Gamma_me / Gamma_ac = 1 / ((d / R)^2 - 1)`` with ``d`` the domain
spacing and ``R`` the domain radius. These are SCALING LAWS (order-of-magnitude relations, a
factor ~2 in ``R`` is within their accuracy), not a calibrated estimator: use them as the
familiar cross-check number the lab reports, next to the model-based rate map. docs/analysis.md
gives their bias against simulated nuclei of known ratio.
"""

from __future__ import annotations

import numpy as np

#: Said next to every scaling-law number this package writes.
SCALING_LAW_NOTE = (
    "scaling law Gamma_me/Gamma_ac = 1/((d/R)^2 - 1) from domain spacing d and radius R "
    "(order of magnitude only; not the model-based estimate)"
)


def scaling_law_ratio(spacing_nm, radius_nm):
    """``1 / ((d / R)^2 - 1)``; NaN where ``d <= R`` (touching domains) or either is missing."""
    d = np.asarray(spacing_nm, dtype=np.float64)
    r = np.asarray(radius_nm, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (d / r) ** 2 - 1.0
        out = np.where((q > 0) & np.isfinite(q), 1.0 / q, np.nan)
    return out if out.ndim else float(out)


def gamma_ac_over_d(spacing_nm) -> float:
    """``Gamma_ac / D = 1 / d^2`` in um^-2 (multiply by the diffusivity D in um^2/s)."""
    d_um = np.asarray(spacing_nm, dtype=np.float64) / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / d_um**2


def scaling_law_map(centres_nm: np.ndarray, ratio: np.ndarray, grid_rc_nm: np.ndarray):
    """Per-pixel scaling-law ratio: the value of the nearest domain (Voronoi of the centres).

    ``centres_nm`` (K, 2) x, y; ``ratio`` (K,); ``grid_rc_nm`` (P, 2) x, y of the pixels.
    NaN when no domain has a finite ratio.
    """
    from scipy.spatial import cKDTree

    finite = np.isfinite(ratio)
    if not finite.any():
        return np.full(len(grid_rc_nm), np.nan)
    _, nearest = cKDTree(centres_nm[finite]).query(grid_rc_nm)
    return np.asarray(ratio)[finite][nearest]
