"""Realistic synthetic STORM: labelled fluorophores that blink, background, per-localisation
precision (MODEL.md, "Realistic STORM data").

H2B labels all nucleosomes, so labelled fluorophores are an inhomogeneous Poisson process with
intensity proportional to the total chromatin ``1 - phi_w`` inside the nucleus, at a chosen
labelling density. Each fluorophore blinks a geometric number of times (``K >= 1``, mean
``mean_blinks``); each blink is one localisation with its own photon count and precision,
jittered around the fluorophore's position. A fraction of all localisations is background,
uniform over the whole field of view (inside and outside the nucleus). Seeded.
"""

from __future__ import annotations

import numpy as np

from .synthetic import THUNDERSTORM_COLUMNS


def blinking_localisations(
    chromatin: np.ndarray,
    spacing: float,
    *,
    nm_per_unit: float = 300.0,
    labelling_density_per_um2: float = 5e3,
    mean_blinks: float = 5.0,
    background_fraction: float = 0.03,
    precision_range_nm: tuple[float, float] = (10.0, 25.0),
    mask: np.ndarray | None = None,
    origin_nm: tuple[float, float] = (0.0, 0.0),
    n_frames: int = 20000,
    mean_photons: float = 3000.0,
    seed: int | None = 0,
):
    """Localisations of blinking fluorophores drawn from a chromatin map, with background.

    Parameters
    ----------
    chromatin : ndarray (H, W)
        Total chromatin ``1 - phi_w`` (>= 0) on a grid of ``spacing`` model units.
    spacing, nm_per_unit : float
        Grid spacing (model units) and nm per model unit (pixel side ``spacing * nm_per_unit``).
    labelling_density_per_um2 : float
        Mean density of labelled fluorophores inside the nucleus (per um^2).
    mean_blinks : float
        Mean of the geometric number of localisations per fluorophore (>= 1; 3-10 is typical).
    background_fraction : float
        Fraction (0 <= f < 1) of all localisations that are background, uniform over the grid.
    precision_range_nm : (low, high)
        Per-localisation precision (std per axis, nm): ``sqrt(low high) sqrt(<N>/N)`` for a
        log-normal photon count N, clipped to ``[low, high]``.
    mask : ndarray (H, W) bool, optional
        Nucleus; no fluorophores outside it (background still falls there).
    origin_nm : (y, x)
        World position of the centre of grid pixel [0, 0].
    n_frames, mean_photons : int, float
        Frame range and mean photon count.
    seed : int or None

    Returns
    -------
    (table, info)
        ``table``: pandas DataFrame with the ThunderSTORM columns plus ``fluorophore`` (its id,
        -1 for background), sorted by frame. ``info``: counts (fluorophores, signal and
        background localisations, background inside the mask), measured mean blinks and
        background fraction, and every setting.
    """
    import pandas as pd

    chromatin = np.asarray(chromatin, dtype=np.float64)
    lo, hi = (float(v) for v in precision_range_nm)
    if chromatin.ndim != 2 or not np.all(np.isfinite(chromatin)) or chromatin.min() < 0:
        raise ValueError("blinking_localisations: chromatin must be a finite, non-negative (H, W)")
    if not (spacing > 0 and nm_per_unit > 0 and labelling_density_per_um2 > 0):
        raise ValueError(
            "blinking_localisations: spacing, nm_per_unit, labelling_density_per_um2 must be > 0"
        )
    if not mean_blinks >= 1:
        raise ValueError(f"blinking_localisations: mean_blinks must be >= 1, found {mean_blinks}")
    if not 0 <= background_fraction < 1:
        raise ValueError(
            f"blinking_localisations: background_fraction must be in [0, 1), found "
            f"{background_fraction}"
        )
    if not 0 < lo <= hi:
        raise ValueError(f"blinking_localisations: precision range {precision_range_nm} invalid")
    rng = np.random.default_rng(seed)
    inside = chromatin > 0 if mask is None else np.asarray(mask, bool)
    intensity = np.where(inside, chromatin, 0.0)
    if not intensity.any():
        raise ValueError("blinking_localisations: the chromatin map has no positive intensity")
    pixel_nm = spacing * nm_per_unit
    pixel_um2 = (pixel_nm / 1000.0) ** 2
    expected = intensity / intensity[inside].mean() * labelling_density_per_um2 * pixel_um2
    counts = rng.poisson(expected)
    rows, cols = np.nonzero(counts)
    reps = counts[rows, cols]
    rows, cols = np.repeat(rows, reps), np.repeat(cols, reps)
    n_fluo = rows.size
    fy = origin_nm[0] + (rows + rng.random(n_fluo) - 0.5) * pixel_nm
    fx = origin_nm[1] + (cols + rng.random(n_fluo) - 0.5) * pixel_nm
    blinks = rng.geometric(1.0 / float(mean_blinks), size=n_fluo)
    owner = np.repeat(np.arange(n_fluo), blinks)
    n_signal = owner.size
    # blinks of one fluorophore come in a burst of frames after its first activation
    first = rng.integers(1, n_frames + 1, size=n_fluo)
    gaps = rng.geometric(1.0 / 20.0, size=n_signal)
    starts = np.cumsum(blinks) - blinks
    burst = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[starts] - gaps[starts], blinks)
    frame_signal = np.minimum(first[owner] + burst - 1, n_frames)

    n_bg = int(round(background_fraction / (1 - background_fraction) * n_signal))
    h, w = chromatin.shape
    by = origin_nm[0] + (rng.random(n_bg) * h - 0.5) * pixel_nm
    bx = origin_nm[1] + (rng.random(n_bg) * w - 0.5) * pixel_nm
    n = n_signal + n_bg
    photons = mean_photons * np.exp(0.5 * rng.standard_normal(n) - 0.125)
    precision = np.clip(np.sqrt(lo * hi) * np.sqrt(mean_photons / photons), lo, hi)
    y = np.concatenate([fy[owner], by]) + precision * rng.standard_normal(n)
    x = np.concatenate([fx[owner], bx]) + precision * rng.standard_normal(n)
    frame = np.concatenate([frame_signal, rng.integers(1, n_frames + 1, size=n_bg)])
    fluorophore = np.concatenate([owner, np.full(n_bg, -1)])
    order = np.argsort(frame, kind="stable")
    table = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "frame": frame[order],
            "x [nm]": x[order],
            "y [nm]": y[order],
            "sigma [nm]": 130.0 * (1 + 0.05 * rng.standard_normal(n)),
            "intensity [photon]": photons[order],
            "offset [photon]": 100.0 + 5.0 * rng.standard_normal(n),
            "bkgstd [photon]": 10.0 + rng.random(n),
            "chi2": 1.0 + 0.1 * rng.random(n),
            "uncertainty_xy [nm]": precision[order],
            "fluorophore": fluorophore[order],
        },
        columns=list(THUNDERSTORM_COLUMNS) + ["fluorophore"],
    )
    bg_rows = np.clip(np.floor((by - origin_nm[0]) / pixel_nm + 0.5).astype(int), 0, h - 1)
    bg_cols = np.clip(np.floor((bx - origin_nm[1]) / pixel_nm + 0.5).astype(int), 0, w - 1)
    info = {
        "n_fluorophores": int(n_fluo),
        "n_signal": int(n_signal),
        "n_background": int(n_bg),
        "n_background_inside_mask": int(inside[bg_rows, bg_cols].sum()),
        "mean_blinks_measured": float(blinks.mean()) if n_fluo else float("nan"),
        "background_fraction_measured": n_bg / n if n else float("nan"),
        "labelling_density_per_um2": float(labelling_density_per_um2),
        "mean_blinks": float(mean_blinks),
        "background_fraction": float(background_fraction),
        "precision_range_nm": [lo, hi],
        "nm_per_unit": float(nm_per_unit),
        "seed": seed,
    }
    return table, info
