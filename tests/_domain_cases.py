"""Simulated nuclei with known phi_h for the domain-analysis tests (cached per session).

Two kinds of nucleus, both 256^2 and sampled as H2B localisations from the total chromatin
``1 - phi_w`` (``physics.sample_localisations``):

- :func:`nucleus`: a disk cut out of the periodic steady state (rolled by ``shift`` pixels to
  get other configurations). Domains cut by the disk edge are "LADs" of this geometry only.
- :func:`lamina_nucleus`: a closed disk nucleus (the envelope is a no-flux wall) with a lamina
  affinity, so heterochromatin lines the envelope as in a real nucleus: the LAD thickness case.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from napari_mollifier.physics import sample_localisations, simulate_chromatin
from napari_mollifier.physics.params import ModelParams

N = 256
L_BOX = 10.0
NM_PER_UNIT = 300.0
PIXEL_NM = L_BOX / N * NM_PER_UNIT
#: lower than the simulator's default 3e4: DBSCAN's eps 30 nm (lab default) percolates the
#: heterochromatin at 3e4 / um^2 (measured: one cluster); 5e3 keeps domains apart
DENSITY_PER_UM2 = 5e3
PRECISION_NM = 15.0
#: the density settings the validation uses (docs/analysis.md): neighbourhood density + Otsu
VALIDATED = {"density_neighbours": 12, "threshold_method": "otsu"}


@cache
def simulation(rate_ratio: float, sim_seed: int = 0, lamina: float = 0.0):
    """Periodic box without ``lamina``; a closed disk nucleus (:func:`disk`) with it."""
    import torch

    closed = {"domain": disk(), "params": ModelParams(lamina_affinity=lamina)} if lamina else {}
    # one thread: the 256^2 FFTs are small, and two spinning threads on a busy 2-core machine
    # were measured ~10x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return simulate_chromatin(
            rate_ratio, L=L_BOX, n=N, dt=0.1, t_end=30.0, seed=sim_seed, **closed
        )
    finally:
        torch.set_num_threads(threads)


def disk(radius_fraction: float = 0.45) -> np.ndarray:
    yy, xx = np.mgrid[0:N, 0:N]
    c = (N - 1) / 2
    return np.hypot(yy - c, xx - c) < radius_fraction * N


@cache
def nucleus(
    rate_ratio: float,
    shift: int = 0,
    radius_fraction: float = 0.45,
    seed: int = 1,
    sim_seed: int = 0,
):
    """(localisation DataFrame with x_nm, y_nm, sigma_nm; phi_h; mask), cached."""
    sim = simulation(rate_ratio, sim_seed)
    chromatin = np.roll(1.0 - sim.phi_w, (shift, 2 * shift), axis=(0, 1))
    phi_h = np.roll(sim.phi_h, (shift, 2 * shift), axis=(0, 1))
    mask = disk(radius_fraction)
    return _localisations(chromatin, sim.spacing, mask, seed), phi_h, mask


@cache
def lamina_nucleus(rate_ratio: float, lamina: float, seed: int = 1):
    """(localisations, phi_h, mask) of the closed disk nucleus with lamina affinity ``lamina``."""
    sim = simulation(rate_ratio, 0, lamina)
    mask = disk()
    return _localisations(1.0 - sim.phi_w, sim.spacing, mask, seed), sim.phi_h, mask


def _localisations(chromatin, spacing, mask, seed):
    table = sample_localisations(
        chromatin, spacing, nm_per_unit=NM_PER_UNIT, density_per_um2=DENSITY_PER_UM2,
        precision_nm=PRECISION_NM, mask=mask, seed=seed,
    )  # fmt: skip
    table = table.rename(
        columns={"x [nm]": "x_nm", "y [nm]": "y_nm", "uncertainty_xy [nm]": "sigma_nm"}
    )
    return table[["x_nm", "y_nm", "sigma_nm", "frame"]]
