"""Cached forward simulations shared by the physics and direct-estimator tests.

Simulating at 256^2 is the expensive part of the validation (~10 s each on a 2-core box), so
every simulation is computed once per test session (module-level cache) and reused.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from napari_mollifier.physics.random_fields import lognormal_rate_field
from napari_mollifier.physics.simulate import simulate_chromatin

#: Validation settings: 256^2 simulation, inverted at 128^2 (no inverse crime).
N_SIM = 256
L_BOX = 10.0
DT = 0.1
T_END = 30.0


@cache
def constant_simulation(rate_ratio: float):
    """Steady state for a constant ratio (cached)."""
    return simulate_chromatin(rate_ratio, L=L_BOX, n=N_SIM, dt=DT, t_end=T_END, seed=0)


@cache
def lognormal_simulation(seed: int = 1):
    """Steady state for a smooth log-normal ratio map (mean 1, log-spread 0.35, ell = 2)."""
    lam = lognormal_rate_field(
        N_SIM, L_BOX, mean=1.0, spread=0.35, correlation_length=2.0, seed=seed
    )
    return simulate_chromatin(lam, L=L_BOX, n=N_SIM, dt=DT, t_end=T_END, seed=0)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


#: nm per model unit of the optical-path tests
OPTICAL_NM_PER_UNIT = 300.0


@cache
def optical_path_case(n: int = 128):
    """The full optical path on :func:`lognormal_simulation`: (image, calibration, truth).

    Localisations (5e4 / um^2, 15 nm precision) rendered on ``n`` x ``n`` pixels over the
    simulation box; the calibration a perfectly informed user would enter (the 1st..99th
    percentile range of the true phi_h, the true mean phi_e, "mean" level); the true ratio on
    the rendered grid.
    """
    from napari_mollifier.physics.simulate import downsample
    from napari_mollifier.physics.synthetic import render_synthetic_density

    sim = lognormal_simulation()
    image = render_synthetic_density(
        1.0 - sim.phi_w, sim.spacing, nm_per_unit=OPTICAL_NM_PER_UNIT, shape=(n, n),
        density_per_um2=5e4, precision_nm=15.0, seed=0,
    )  # fmt: skip
    factor = N_SIM // n
    lo, hi = np.percentile(downsample(sim.phi_h, factor), [1, 99])
    calibration = {
        "phi_h_low": float(lo),
        "phi_h_high": float(hi),
        "phi_e": float(sim.phi_e.mean()),
        "anchor": "mean",
    }
    return image, calibration, downsample(sim.rate_ratio, factor)
