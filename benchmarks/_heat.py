"""Second-order benchmark problem: steady heat conduction with a varying diffusivity.

    0 = lambda(x, y) lap u + m(x, y)                         (non-divergence form)
    0 = div(lambda grad u) + m = lambda lap u + grad lambda . grad u + m   (divergence form)

Given a noisy temperature field ``u`` and the known source ``m``, recover ``lambda(x, y) > 0``.
Data are manufactured: ``u`` and ``lambda`` are chosen analytically and ``m`` follows exactly, so
no solver error enters the benchmark. ``u`` has a laplacian bounded away from zero so that
``lambda`` is identifiable everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class HeatData:
    """Manufactured steady heat problem on an ``n x n`` grid of a square box.

    Attributes
    ----------
    x, y : ndarray (n, n)
        Coordinates (model units), rows = y, columns = x.
    u_clean, u_noisy : ndarray (n, n)
        Temperature field without / with noise.
    diffusivity : ndarray (n, n)
        True ``lambda(x, y)``.
    source : ndarray (n, n)
        ``m(x, y)`` consistent with ``form``.
    spacing : float
    form : {"nondivergence", "divergence"}
    noise : float
        Noise standard deviation relative to ``std(u_clean)``.
    """

    x: np.ndarray
    y: np.ndarray
    u_clean: np.ndarray
    u_noisy: np.ndarray
    diffusivity: np.ndarray
    source: np.ndarray
    spacing: float
    form: str
    noise: float


def heat_residual(diffusivity, laplacian_u, source, grad_diffusivity=None, grad_u=None):
    """``lambda lap u (+ grad lambda . grad u) + m`` (numpy or torch).

    Pass ``grad_diffusivity`` and ``grad_u`` as ``(d/dy, d/dx)`` pairs for the divergence form.
    """
    residual = diffusivity * laplacian_u + source
    if grad_diffusivity is not None and grad_u is not None:
        residual = residual + grad_diffusivity[0] * grad_u[0] + grad_diffusivity[1] * grad_u[1]
    return residual


def make_heat_data(
    n: int = 128,
    box: float = 1.0,
    noise: float = 0.0,
    form: str = "nondivergence",
    seed: int = 0,
) -> HeatData:
    """Manufactured fields: ``u = -(r^2)/4 + 0.01 sin sin``, ``lambda = exp(smooth random)``."""
    if form not in ("nondivergence", "divergence"):
        raise ValueError(f"form must be 'nondivergence' or 'divergence', found {form!r}")
    rng = np.random.default_rng(seed)
    spacing = box / n
    axis = (np.arange(n) + 0.5) * spacing
    x, y = np.meshgrid(axis, axis)
    k = 2 * np.pi / box
    xc, yc = x - box / 2, y - box / 2
    a = 0.01  # keeps lap u in [-1.8, -0.2]: never zero, so lambda is identifiable
    u = -(xc**2 + yc**2) / 4 + a * np.sin(k * x) * np.sin(k * y)
    lap_u = -1.0 - 2 * a * k**2 * np.sin(k * x) * np.sin(k * y) / 1.0
    u_x = -xc / 2 + a * k * np.cos(k * x) * np.sin(k * y)
    u_y = -yc / 2 + a * k * np.sin(k * x) * np.cos(k * y)
    # log-diffusivity: a few random smooth modes, spread ~0.3
    c = rng.normal(0.0, 0.3, 4)
    p = rng.uniform(0, 2 * np.pi, 4)
    log_lam = (
        c[0] * np.sin(k * x + p[0])
        + c[1] * np.cos(k * y + p[1])
        + c[2] * np.sin(k * (x + y) + p[2])
        + c[3] * np.cos(k * (x - y) + p[3])
    )
    lam = np.exp(log_lam)
    lam_x = lam * (
        c[0] * k * np.cos(k * x + p[0])
        + c[2] * k * np.cos(k * (x + y) + p[2])
        - c[3] * k * np.sin(k * (x - y) + p[3])
    )
    lam_y = lam * (
        -c[1] * k * np.sin(k * y + p[1])
        + c[2] * k * np.cos(k * (x + y) + p[2])
        + c[3] * k * np.sin(k * (x - y) + p[3])
    )
    source = -lam * lap_u
    if form == "divergence":
        source = source - (lam_x * u_x + lam_y * u_y)
    u_noisy = u + noise * float(np.std(u)) * rng.standard_normal(u.shape)
    return HeatData(x, y, u, u_noisy, lam, source, spacing, form, noise)
