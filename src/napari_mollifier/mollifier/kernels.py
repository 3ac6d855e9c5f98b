"""Analytic mollifier kernels, their exact derivatives, and moment-corrected grid weights.

A 1D profile ``f(s)`` on the scaled coordinate ``s = x / width`` defines the kernel
``k(x) = f(x / width) / (Z * width)`` with ``Z = integral f``; its m-th derivative is
``k^(m)(x) = f^(m)(x / width) / (Z * width^(m + 1))``. Profiles:

- ``"bump"``: the Friedrichs bump ``exp(-1 / (1 - s^2))`` on ``|s| < 1`` (C-infinity, compact).
  Its derivatives are ``P_m(s) (1 - s^2)^(-2m) f(s)`` with polynomials from the exact recursion
  ``P_{m+1} = P_m' q^2 + 4 m s q P_m - 2 s P_m`` (``q = 1 - s^2``).
- ``"polynomial"``: ``(1 - s^2)^p`` on ``|s| < 1`` (``p >= 6``, default 12), a polynomial.
- ``"gaussian"``: ``exp(-s^2 / 2)`` truncated at ``|s| = 6`` (``width`` is sigma); derivatives
  ``(-1)^m He_m(s) f(s)`` with the probabilists' Hermite polynomials.

Sampling: the weight of grid offset ``y_j = j h`` is ``h * k^(m)(y_j)`` (trapezoid quadrature,
the cell weight), then corrected by the smallest kernel-shaped change that makes the discrete
moments exact: ``sum_j w_j (-y_j)^q = m! * [q == m]`` for ``q <= m`` (so a polynomial of degree
``m`` is differentiated exactly).

Resolution: a sampled kernel derivative is only right if the grid resolves it. The relative
operator-norm error ``max_w |T_disc(w) - T_cont(w)| / max_w |T_cont(w)|`` of its transfer
function against the continuous one (``T_cont = (i w)^m eta_hat(w)``) is measured over all grid
frequencies; :func:`min_width` returns the smallest width (in units of the spacing) at which it
stays below ``rtol``. The bump's high derivatives peak sharply near the edge of the support and
need a very wide kernel in pixels (see docs/mollifier.md for the table).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from numpy.polynomial import hermite_e
from numpy.polynomial import polynomial as npoly

from ..choices import KERNELS as KERNEL_NAMES

DEFAULT_KERNEL = "polynomial"
DEFAULT_EXPONENT = 12
GAUSSIAN_TRUNCATION = 6.0
MAX_ORDER = 4
DEFAULT_RTOL = 1e-3

#: :func:`min_width_pixels` at the default rtol and exponent, orders 0..4 (the scan takes
#: ~1 s per kernel on a laptop CPU and does not depend on the data; tests/test_mollifier.py
#: recomputes the table).
MIN_WIDTH_PIXELS_TABLE = {
    "bump": (
        10.498580430771712, 27.432474462439103, 59.03775179743506, 97.77564956593996,
        141.36532801959783,
    ),
    "polynomial": (
        5.204207282835543, 6.197224155483332, 6.568679586712221, 7.524311757436845,
        7.822051965275194,
    ),
    "gaussian": (
        1.1831359702514737, 1.3421772800000003, 1.4504999345389942, 1.5374414530582052,
        1.5982786634941506,
    ),
}  # fmt: skip


def check_kernel(kernel: str, exponent: int) -> None:
    """ValueError for an unknown kernel or a polynomial exponent that is not smooth enough."""
    if kernel not in KERNEL_NAMES:
        raise ValueError(f"unknown mollifier kernel {kernel!r}: expected one of {KERNEL_NAMES}")
    if kernel == "polynomial" and (int(exponent) != exponent or exponent < 6):
        raise ValueError(
            f"polynomial kernel exponent must be an integer >= 6 (smooth up to the 4th "
            f"derivative at the support edge), found {exponent!r}"
        )


def support_radius(kernel: str, width: float) -> float:
    """Radius of the kernel's support in the units of ``width``."""
    return GAUSSIAN_TRUNCATION * width if kernel == "gaussian" else width


@cache
def _bump_polynomials(max_order: int) -> tuple[np.ndarray, ...]:
    q = np.array([1.0, 0.0, -1.0])
    s = np.array([0.0, 1.0])
    polys = [np.array([1.0])]
    for n in range(max_order):
        p_n = polys[-1]
        term = npoly.polymul(npoly.polyder(p_n), npoly.polymul(q, q))
        term = npoly.polyadd(term, 4 * n * npoly.polymul(npoly.polymul(s, q), p_n))
        term = npoly.polyadd(term, -2 * npoly.polymul(s, p_n))
        polys.append(term)
    return tuple(polys)


@cache
def _polynomial_coefficients(exponent: int, order: int) -> np.ndarray:
    coef = npoly.polypow([1.0, 0.0, -1.0], exponent)
    for _ in range(order):
        coef = npoly.polyder(coef)
    return coef


def _horner(coef, s):
    """Evaluate a power-series polynomial (lowest degree first) on numpy or torch ``s``."""
    out = s * 0 + float(coef[-1])
    for c in coef[-2::-1]:
        out = out * s + float(c)
    return out


def profile_derivative(kernel: str, order: int, s, exponent: int = DEFAULT_EXPONENT):
    """``f^(order)(s)`` of the unnormalised profile; works on numpy arrays and torch tensors."""
    xp = _namespace(s)
    inside = xp.abs(s) < (GAUSSIAN_TRUNCATION if kernel == "gaussian" else 1.0)
    if kernel == "gaussian":
        he = np.zeros(order + 1)
        he[order] = 1.0
        herm = hermite_e.herme2poly(he)
        value = (-1) ** order * _horner(herm, s) * xp.exp(-0.5 * s * s)
    elif kernel == "polynomial":
        value = _horner(_polynomial_coefficients(int(exponent), order), s)
    elif kernel == "bump":
        # evaluate only inside the support: exp(-1/q) underflows harmlessly, 1/q does not
        s_in = xp.where(inside, s, s * 0)
        q = 1.0 - s_in * s_in
        poly = _horner(_bump_polynomials(MAX_ORDER)[order], s_in)
        value = poly * q ** (-2 * order) * xp.exp(-1.0 / q)
    else:
        raise ValueError(f"unknown mollifier kernel {kernel!r}: expected one of {KERNEL_NAMES}")
    return xp.where(inside, value, value * 0)


def _namespace(x):
    if isinstance(x, (np.ndarray, np.generic, int, float)):
        return np
    import torch

    return torch


@cache
def profile_integral(kernel: str, exponent: int = DEFAULT_EXPONENT) -> float:
    """``Z = integral f(s) ds`` (exact for polynomial and Gaussian, Gauss-Legendre for bump)."""
    if kernel == "gaussian":
        return math.sqrt(2 * math.pi) * math.erf(GAUSSIAN_TRUNCATION / math.sqrt(2))
    if kernel == "polynomial":
        antider = npoly.polyint(_polynomial_coefficients(int(exponent), 0))
        return float(npoly.polyval(1.0, antider) - npoly.polyval(-1.0, antider))
    nodes, weights = np.polynomial.legendre.leggauss(400)
    return float(np.sum(weights * profile_derivative("bump", 0, nodes)))


def radius_pixels(kernel: str, width: float, spacing: float) -> int:
    """Kernel radius in grid steps: the most ``j`` with ``j * spacing`` inside the open support
    (``width`` and ``spacing`` in the same units)."""
    return int(math.floor(support_radius(kernel, float(width)) / spacing * (1 - 1e-12)))


def grid_offsets(kernel: str, width: float, spacing: float) -> np.ndarray:
    """Offsets ``j * spacing`` (same units as width) covering the open support."""
    radius = radius_pixels(kernel, width, spacing)
    return np.arange(-radius, radius + 1) * spacing


def kernel_weights(
    kernel: str,
    order: int,
    width,
    spacing: float,
    exponent: int = DEFAULT_EXPONENT,
    correct_moments: bool = True,
):
    """Offsets and float64 weights of the sampled ``order``-th kernel derivative.

    Returns ``(offsets, weights)``, both shape (2R + 1,). Applying them as a convolution,
    ``out(x) = sum_j weights[j] * u(x - offsets[j])``, gives ``d^order (eta * u)``. ``width``
    is a number (numpy out) or a 0-d float64 torch tensor (torch out, differentiable in the
    width: the learnable-width layer samples its kernels here).
    """
    check_kernel(kernel, exponent)
    xp = _namespace(width)
    radius = radius_pixels(kernel, float(width), spacing)
    if xp is np:
        offsets = np.arange(-radius, radius + 1) * spacing
    else:
        offsets = xp.arange(-radius, radius + 1, dtype=width.dtype, device=width.device) * spacing
    s = offsets / width
    z = profile_integral(kernel, exponent)
    weights = spacing * profile_derivative(kernel, order, s, exponent) / (z * width ** (order + 1))
    if correct_moments:
        envelope = abs(profile_derivative(kernel, 0, s, exponent))
        weights = _moment_correct(weights, s, envelope, order, width)
    return offsets, weights


def _moment_correct(weights, s, envelope, order, width):
    """Smallest envelope-shaped change giving exact moments (numpy or torch, differentiable)."""
    xp = _namespace(weights)
    powers = list(range(order % 2, order + 1, 2))  # the other parity vanishes by symmetry
    if xp is np:
        basis = np.stack([(-s) ** q for q in powers], axis=1)
        target = np.array([math.factorial(order) if q == order else 0.0 for q in powers])
        target = target / width**order
        gram = basis.T @ (envelope[:, None] * basis)
        coef = np.linalg.lstsq(gram, target - basis.T @ weights, rcond=None)[0]
        return weights + envelope * (basis @ coef)
    basis = xp.stack([(-s) ** q for q in powers], dim=1)
    target = (
        xp.tensor(
            [math.factorial(order) if q == order else 0.0 for q in powers],
            dtype=weights.dtype,
            device=weights.device,
        )
        / width**order
    )
    gram = basis.T @ (envelope[:, None] * basis)
    coef = xp.linalg.solve(gram, target - basis.T @ weights)
    return weights + envelope * (basis @ coef)


# --- resolution check ---------------------------------------------------------------------
def _eta_hat(kernel: str, exponent: int, nu: np.ndarray) -> np.ndarray:
    """Continuous ``integral f(s) cos(nu s) ds / Z`` at the points ``nu`` (Gauss-Legendre)."""
    half = support_radius(kernel, 1.0)
    n_nodes = int(max(200, 2 * float(np.max(nu)) * half / math.pi + 120))
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    s = nodes * half
    f = profile_derivative(kernel, 0, s, exponent) * weights * half
    return (np.cos(np.outer(nu, s)) @ f) / profile_integral(kernel, exponent)


def transfer_error(
    kernel: str, order: int, width_pixels: float, exponent: int = DEFAULT_EXPONENT
) -> float:
    """Relative operator-norm error of the sampled ``order``-th derivative kernel.

    ``max_w |T_disc(w) - T_cont(w)| / max_w |T_cont(w)|`` over grid frequencies ``0..pi``, for a
    kernel of width ``width_pixels`` on a unit grid.
    """
    offsets, weights = kernel_weights(kernel, order, width_pixels, 1.0, exponent)
    if offsets.size < order + 2:
        return math.inf
    omega = np.linspace(0.0, math.pi, 512)
    t_cont = (1j * omega) ** order * _eta_hat(kernel, int(exponent), omega * width_pixels)
    t_disc = np.exp(-1j * np.outer(omega, offsets)) @ weights
    scale = np.max(np.abs(t_cont))
    return float(np.max(np.abs(t_disc - t_cont)) / scale) if scale > 0 else math.inf


@cache
def min_width_pixels(
    kernel: str, order: int, rtol: float = DEFAULT_RTOL, exponent: int = DEFAULT_EXPONENT
) -> float:
    """Smallest width, in grid spacings, from which on the sampled derivative stays within rtol.

    Scans widths from the top down (coarse, then fine between the first failure and the last
    success) so that a lucky narrow width below a failing one is never accepted.
    """
    check_kernel(kernel, exponent)
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"derivative order must be 0..{MAX_ORDER}, found {order}")
    if (rtol, exponent) == (DEFAULT_RTOL, DEFAULT_EXPONENT) and kernel in MIN_WIDTH_PIXELS_TABLE:
        return MIN_WIDTH_PIXELS_TABLE[kernel][order]
    return scan_min_width_pixels(kernel, order, rtol, exponent)


def scan_min_width_pixels(kernel: str, order: int, rtol: float, exponent: int) -> float:
    """The scan behind :func:`min_width_pixels` (top down: coarse, then fine)."""
    top = {"bump": 600.0, "polynomial": 60.0, "gaussian": 10.0}[kernel]

    def ok(w: float) -> bool:
        return transfer_error(kernel, order, w, exponent) <= rtol

    if not ok(top):
        return math.inf
    upper = top
    lower = top
    while lower > 0.5:
        candidate = lower / 1.25
        if not ok(candidate):
            break
        lower = candidate
    else:
        return lower
    upper, failing = lower, lower / 1.25
    accepted = upper
    for w in np.geomspace(upper, failing, 24)[1:-1]:
        if not ok(float(w)):
            break
        accepted = float(w)
    return accepted


def min_width(
    kernel: str,
    order: int,
    spacing: float,
    rtol: float = DEFAULT_RTOL,
    exponent: int = DEFAULT_EXPONENT,
) -> float:
    """Smallest accepted width (units of ``spacing``) for derivatives of ``order``."""
    return min_width_pixels(kernel, int(order), float(rtol), int(exponent)) * float(spacing)
