"""Simulated nuclei with known phi_h for the domain-analysis tests (cached per session).

The project's simulator (``physics.simulate_chromatin``) has a periodic box and no nuclear
envelope yet (the closed-domain / lamina simulator is being built elsewhere), so a "nucleus" is
a disk cut out of the periodic steady state (rolled by ``shift`` pixels to get other
configurations) and H2B localisations are drawn from its total chromatin ``1 - phi_w``
(``physics.sample_localisations``). Domains cut by the disk edge become "LADs" of this geometry
only; LAD thickness is therefore not validated here.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from napari_mollifier.physics import sample_localisations, simulate_chromatin

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
def simulation(rate_ratio: float, sim_seed: int = 0):
    import torch

    # one thread: the 256^2 FFTs are small, and two spinning threads on a busy 2-core machine
    # were measured ~10x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return simulate_chromatin(rate_ratio, L=L_BOX, n=N, dt=0.1, t_end=30.0, seed=sim_seed)
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
    table = sample_localisations(
        chromatin, sim.spacing, nm_per_unit=NM_PER_UNIT, density_per_um2=DENSITY_PER_UM2,
        precision_nm=PRECISION_NM, mask=mask, seed=seed,
    )  # fmt: skip
    table = table.rename(
        columns={"x [nm]": "x_nm", "y [nm]": "y_nm", "uncertainty_xy [nm]": "sigma_nm"}
    )
    return table[["x_nm", "y_nm", "sigma_nm", "frame"]], phi_h, mask
