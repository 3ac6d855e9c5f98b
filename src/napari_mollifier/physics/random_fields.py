"""Smooth random fields on periodic grids: ground-truth rate-ratio maps for validation.

A rate-ratio map ``lambda(x) = Gamma_me / Gamma_ac`` must be positive and vary slowly compared
with the heterochromatin domain spacing (~1 model unit) to be identifiable from one image
(MODEL.md). A log-normal field ``lambda = m exp(s G) / <exp(s G)>`` with ``G`` a smooth Gaussian
random field of unit variance and Gaussian covariance ``exp(-r^2 / (2 ell^2))`` is the natural
choice: positive, smooth, with a chosen mean ``m``, log-spread ``s`` and correlation length
``ell``.
"""

from __future__ import annotations

import numpy as np


def gaussian_random_field(
    shape: tuple[int, int],
    spacing: float,
    correlation_length: float,
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Zero-mean, unit-variance periodic Gaussian random field with Gaussian covariance.

    White noise is filtered in Fourier space by ``exp(-k^2 ell^2 / 4)``, the square root of the
    spectrum of the covariance ``exp(-r^2 / (2 ell^2))`` (a Gaussian filter of sigma
    ``ell / sqrt(2)``), then the sample is shifted and scaled to mean 0 and std 1 exactly.

    Parameters
    ----------
    shape : (int, int)
        Grid size (rows, columns).
    spacing : float
        Grid spacing (model units per pixel).
    correlation_length : float
        ``ell`` in model units (0 gives white noise).
    seed : int, Generator or None

    Returns
    -------
    ndarray (rows, columns) float64
    """
    if len(shape) != 2 or min(shape) < 2:
        raise ValueError(f"shape must be two sizes >= 2, found {shape!r}")
    if not spacing > 0 or correlation_length < 0:
        raise ValueError(
            f"spacing must be > 0 and correlation_length >= 0, found {spacing!r}, "
            f"{correlation_length!r}"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    white = rng.standard_normal(shape)
    ky = 2 * np.pi * np.fft.fftfreq(shape[0], d=spacing)
    kx = 2 * np.pi * np.fft.rfftfreq(shape[1], d=spacing)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    field = np.fft.irfft2(np.fft.rfft2(white) * np.exp(-k2 * correlation_length**2 / 4), s=shape)
    field -= field.mean()
    std = field.std()
    if std == 0:  # pragma: no cover - only for degenerate 1-pixel-correlation grids
        return field
    return field / std


def lognormal_rate_field(
    n: int = 256,
    L: float = 10.0,
    mean: float = 1.0,
    spread: float = 0.3,
    correlation_length: float = 2.0,
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Smooth positive rate-ratio map ``lambda(x)`` on the periodic ``L x L`` box.

    ``lambda = mean * exp(spread * G) / <exp(spread * G)>``: its spatial mean is ``mean`` exactly
    and ``std(log lambda) = spread``.

    Parameters
    ----------
    n : int
        Pixels per side.
    L : float
        Box side in model units (pixel spacing ``L / n``).
    mean : float
        Spatial mean of lambda (> 0).
    spread : float
        Standard deviation of ``log lambda`` (0 gives a constant map).
    correlation_length : float
        Correlation length of ``log lambda`` in model units; keep it >= 1-2 domain spacings
        (~1 unit) for lambda to be identifiable.
    seed : int, Generator or None

    Returns
    -------
    ndarray (n, n) float64
    """
    if not mean > 0 or spread < 0:
        raise ValueError(f"mean must be > 0 and spread >= 0, found {mean!r}, {spread!r}")
    if spread == 0:
        return np.full((n, n), float(mean))
    g = gaussian_random_field((n, n), L / n, correlation_length, seed)
    field = np.exp(spread * g)
    return mean * field / field.mean()
