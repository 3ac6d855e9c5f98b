"""Synthetic STORM data from simulated chromatin fields.

An H2B label marks every nucleosome, so localisations are drawn from an inhomogeneous Poisson
process with intensity proportional to the total chromatin ``1 - phi_w``, scaled to a chosen
mean density (localisations per um^2), jittered by a localisation precision, with frame numbers
and photon counts, and written in the ThunderSTORM CSV layout (FORMATS.md). The length scale
``nm_per_unit`` (nm per model unit) is explicit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

THUNDERSTORM_COLUMNS = (
    "id",
    "frame",
    "x [nm]",
    "y [nm]",
    "sigma [nm]",
    "intensity [photon]",
    "offset [photon]",
    "bkgstd [photon]",
    "chi2",
    "uncertainty_xy [nm]",
)


def sample_localisations(
    chromatin: np.ndarray,
    spacing: float,
    nm_per_unit: float = 300.0,
    density_per_um2: float = 3e4,
    precision_nm: float = 15.0,
    n_frames: int = 20000,
    mean_photons: float = 3000.0,
    mask: np.ndarray | None = None,
    origin_nm: tuple[float, float] = (0.0, 0.0),
    seed: int | None = 0,
):
    """Draw a localisation table from a chromatin density map.

    Parameters
    ----------
    chromatin : ndarray (H, W)
        Total chromatin fraction ``1 - phi_w`` (>= 0) on a grid of ``spacing`` model units.
    spacing : float
        Grid spacing in model units.
    nm_per_unit : float
        Nanometres per model unit (pixel side ``spacing * nm_per_unit`` nm).
    density_per_um2 : float
        Mean localisation density inside ``mask`` (localisations per um^2; real H2B STORM
        gives 10^4 .. 10^5).
    precision_nm : float
        Standard deviation of the Gaussian localisation error (per axis, nm).
    n_frames : int
        Frames are drawn uniformly in ``1 .. n_frames``.
    mean_photons : float
        Mean photon count (log-normal spread); ``sigma`` of the fit follows
        ``precision ~ psf / sqrt(photons)`` around ``precision_nm``.
    mask : ndarray (H, W) bool, optional
        Where chromatin exists (nucleus); zero intensity outside.
    origin_nm : (y, x)
        World position of the centre of grid pixel [0, 0].
    seed : int or None

    Returns
    -------
    pandas.DataFrame with the ThunderSTORM columns (nm, photons).
    """
    import pandas as pd

    chromatin = np.asarray(chromatin, dtype=np.float64)
    if chromatin.ndim != 2 or not np.all(np.isfinite(chromatin)) or chromatin.min() < 0:
        raise ValueError("chromatin must be a finite, non-negative (H, W) map")
    if not (spacing > 0 and nm_per_unit > 0 and density_per_um2 > 0 and precision_nm >= 0):
        raise ValueError("spacing, nm_per_unit, density_per_um2 must be > 0, precision >= 0")
    rng = np.random.default_rng(seed)
    intensity = chromatin if mask is None else np.where(mask, chromatin, 0.0)
    pixel_nm = spacing * nm_per_unit
    pixel_um2 = (pixel_nm / 1000.0) ** 2
    inside = intensity > 0 if mask is None else np.asarray(mask, bool)
    mean_inside = float(intensity[inside].mean()) if inside.any() else 0.0
    if mean_inside <= 0:
        raise ValueError("chromatin map has no positive intensity")
    expected = intensity / mean_inside * density_per_um2 * pixel_um2  # per pixel
    counts = rng.poisson(expected)
    rows, cols = np.nonzero(counts)
    reps = counts[rows, cols]
    rows = np.repeat(rows, reps)
    cols = np.repeat(cols, reps)
    n = rows.size
    # uniform position inside the pixel, then the localisation error
    y = origin_nm[0] + (rows + rng.random(n) - 0.5) * pixel_nm
    x = origin_nm[1] + (cols + rng.random(n) - 0.5) * pixel_nm
    photons = mean_photons * np.exp(0.4 * rng.standard_normal(n) - 0.08)
    uncertainty = precision_nm * np.sqrt(mean_photons / photons)
    x = x + uncertainty * rng.standard_normal(n)
    y = y + uncertainty * rng.standard_normal(n)
    order = rng.permutation(n)
    frame = np.sort(rng.integers(1, n_frames + 1, size=n))
    table = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "frame": frame,
            "x [nm]": x[order],
            "y [nm]": y[order],
            "sigma [nm]": 130.0 * (1 + 0.05 * rng.standard_normal(n)),
            "intensity [photon]": photons[order],
            "offset [photon]": 100.0 + 5.0 * rng.standard_normal(n),
            "bkgstd [photon]": 10.0 + rng.random(n),
            "chi2": 1.0 + 0.1 * rng.random(n),
            "uncertainty_xy [nm]": uncertainty[order],
        },
        columns=list(THUNDERSTORM_COLUMNS),
    )
    return table


def write_thunderstorm_csv(path, table, decimals: int = 1) -> Path:
    """Write a localisation table in ThunderSTORM CSV layout (quoted header, comma separated).

    ``table`` must have the :data:`THUNDERSTORM_COLUMNS`; floats keep ``decimals`` digits.
    """
    path = Path(path)
    missing = [c for c in THUNDERSTORM_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: table lacks ThunderSTORM columns {missing}")
    header = ",".join(f'"{c}"' for c in THUNDERSTORM_COLUMNS)
    body = table[list(THUNDERSTORM_COLUMNS)].to_csv(
        index=False, header=False, float_format=f"%.{decimals}f", lineterminator="\n"
    )
    path.write_text(header + "\n" + body)
    return path


#: ThunderSTORM column -> canonical column of :class:`napari_mollifier.io.Localisations`
_CANONICAL = {"x [nm]": "x_nm", "y [nm]": "y_nm", "uncertainty_xy [nm]": "sigma_nm"}


def render_synthetic_density(
    chromatin: np.ndarray,
    spacing: float,
    *,
    nm_per_unit: float = 300.0,
    shape: tuple[int, int] | None = None,
    density_per_um2: float = 3e4,
    precision_nm: float = 15.0,
    mask: np.ndarray | None = None,
    method: str = "gaussian",
    seed: int | None = 0,
    blinking: dict | None = None,
):
    """The optical path in one call: localisations drawn from a map, rendered on a grid.

    Draws a localisation table with :func:`sample_localisations` from ``chromatin`` (on a grid of
    ``spacing`` model units) and renders it with :func:`napari_mollifier.io.render_density` onto
    ``shape`` pixels covering the same box, so that rendered pixel [0, 0] and map pixel [0, 0]
    share their top-left corner. Coordinates: map pixel [0, 0] is centred at 0 nm.

    Parameters
    ----------
    chromatin, spacing, nm_per_unit, density_per_um2, precision_nm, mask, seed
        As in :func:`sample_localisations`.
    shape : (H, W), optional
        Rendered grid; the box is divided evenly (pixel size ``box_nm / W``, square pixels
        required). Default: the map's own grid.
    method : str
        Rendering method of :func:`napari_mollifier.io.render_density`.
    blinking : dict or None
        None: Poisson localisations (:func:`sample_localisations`). A dict: blinking
        fluorophores with background (:func:`napari_mollifier.physics.storm.
        blinking_localisations`), the dict holding its keyword arguments
        (``labelling_density_per_um2``, ``mean_blinks``, ``background_fraction``,
        ``precision_range_nm``); ``density_per_um2`` and ``precision_nm`` are then unused.

    Returns
    -------
    napari_mollifier.io.DensityImage
    """
    from ..io import Localisations, render_density

    chromatin = np.asarray(chromatin, dtype=np.float64)
    shape = tuple(chromatin.shape) if shape is None else (int(shape[0]), int(shape[1]))
    map_pixel_nm = spacing * nm_per_unit
    pixel_nm = chromatin.shape[1] * map_pixel_nm / shape[1]
    if not np.isclose(chromatin.shape[0] * map_pixel_nm / shape[0], pixel_nm, rtol=1e-9):
        raise ValueError(
            f"render_synthetic_density: shape {shape} does not give square pixels on a "
            f"{chromatin.shape} map"
        )
    if blinking is not None:
        from .storm import blinking_localisations

        table, _ = blinking_localisations(
            chromatin, spacing, nm_per_unit=nm_per_unit, mask=mask, seed=seed, **blinking
        )
        table = table.drop(columns=["fluorophore"])
    else:
        table = sample_localisations(
            chromatin,
            spacing,
            nm_per_unit=nm_per_unit,
            density_per_um2=density_per_um2,
            precision_nm=precision_nm,
            mask=mask,
            seed=seed,
        )
    locs = Localisations(table.rename(columns=_CANONICAL))
    origin = -0.5 * map_pixel_nm + 0.5 * pixel_nm  # centre of rendered pixel [0, 0]
    return render_density(
        locs, pixel_size_nm=pixel_nm, method=method, origin_nm=(origin, origin), shape=shape
    )
