"""First-order benchmark problem: a scalar trajectory driven by a time-varying forcing.

    du/dt = u + lambda(t),   t in [0, T]

Given a noisy trajectory ``u(t)``, recover the forcing ``lambda(t) = du/dt - u``. The data are
exact (integrating factor, no time-stepping error) so recovery errors are the estimator's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LangevinData:
    """Samples of one trajectory.

    Attributes
    ----------
    t : ndarray (N,)
        Times (model units), uniform spacing ``dt``.
    u_clean, u_noisy : ndarray (N,)
        Exact and noisy trajectory.
    forcing : ndarray (N,)
        True ``lambda(t)``.
    dt : float
    noise : float
        Noise standard deviation relative to ``std(u_clean)``.
    """

    t: np.ndarray
    u_clean: np.ndarray
    u_noisy: np.ndarray
    forcing: np.ndarray
    dt: float
    noise: float


def langevin_residual(u, du_dt, forcing):
    """``du/dt - u - lambda`` (numpy or torch, any matching shapes)."""
    return du_dt - u - forcing


def make_langevin_data(
    n: int = 1024,
    duration: float = 2.0,
    noise: float = 0.0,
    n_modes: int = 4,
    u0: float = 0.5,
    seed: int = 0,
) -> LangevinData:
    """A smooth random forcing (a few sines) and the exact trajectory it drives.

    ``u(t) = e^t (u0 + integral_0^t e^-s lambda(s) ds)``; the integral is computed with
    high-order quadrature on a 16x finer grid. ``noise`` is relative to ``std(u)``.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, duration, n)
    freqs = rng.uniform(1.0, 4.0, n_modes) * 2 * np.pi / duration
    amps = rng.normal(0.0, 1.0, n_modes) / np.arange(1, n_modes + 1)
    phases = rng.uniform(0, 2 * np.pi, n_modes)

    def forcing(tt):
        return np.sum(amps[:, None] * np.sin(freqs[:, None] * tt[None, :] + phases[:, None]), 0)

    fine = np.linspace(0.0, duration, 16 * (n - 1) + 1)
    integrand = np.exp(-fine) * forcing(fine)
    # cumulative Simpson on pairs of fine intervals, sampled at the coarse times
    h = fine[1] - fine[0]
    cumulative = np.concatenate([[0.0], np.cumsum((integrand[:-1] + integrand[1:]) * h / 2)])
    u_clean = np.exp(t) * (u0 + cumulative[::16])
    scale = noise * float(np.std(u_clean))
    u_noisy = u_clean + scale * rng.standard_normal(n)
    return LangevinData(t, u_clean, u_noisy, forcing(t), float(t[1] - t[0]), noise)
