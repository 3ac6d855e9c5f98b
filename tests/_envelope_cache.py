"""Cached closed-domain simulations for the whole-nucleus (envelope) validation tests.

Simulated at 128^2 and inverted at 64^2 (block average by 2) with 0.5 % white noise on
``phi_w`` and ``phi_d``: no inverse crime, CI-sized (2-8 s per simulation on 2 cores).
The curved nucleus is defined on the inversion grid and refined by 2 for the simulation, so
that the envelope of the data lies on the faces of the inversion grid's mask (a segmented
envelope within a fraction of a pixel; see docs/validation.md for what a misplaced mask costs).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from napari_mollifier.physics.chromatin import ChromatinFields
from napari_mollifier.physics.domains import ellipse_mask
from napari_mollifier.physics.params import ModelParams
from napari_mollifier.physics.random_fields import lognormal_rate_field
from napari_mollifier.physics.simulate import downsample, simulate_chromatin

N_SIM, FACTOR, NOISE = 128, 2, 0.005
BOX_L = 5.0  # rectangle with walls
NUCLEUS_L = 6.0  # field of the curved nucleus
NUCLEUS_SEMI_AXES = (0.34 * NUCLEUS_L, 0.4 * NUCLEUS_L)


@dataclass
class Case:
    fields: ChromatinFields
    truth: np.ndarray  # rate ratio on the inversion grid
    mask: np.ndarray  # nucleus on the inversion grid
    sim: object


def _rate(ratio: float, ell: float, L: float):
    if not ell:
        return ratio
    return lognormal_rate_field(N_SIM, L, mean=ratio, spread=0.35, correlation_length=ell, seed=1)


def _invert_grid(sim, mask, image_border: str, lamina: float) -> Case:
    rng = np.random.default_rng(0)
    shape = mask.shape
    phi_w = downsample(sim.phi_w, FACTOR) + NOISE * rng.standard_normal(shape)
    phi_d = downsample(sim.phi_d, FACTOR) + NOISE * rng.standard_normal(shape)
    lam = np.broadcast_to(sim.rate_ratio, sim.phi_w.shape)
    fields = ChromatinFields.from_phases(
        phi_w,
        phi_d,
        sim.spacing * FACTOR,
        mask=mask,
        params=ModelParams(lamina_affinity=lamina),
        image_border=image_border,
    )
    return Case(fields, downsample(lam, FACTOR), mask, sim)


@cache
def box_case(ratio: float = 1.0, ell: float = 0.0, lamina: float = 0.0) -> Case:
    """Rectangle with no-flux walls (image_border "wall")."""
    sim = simulate_chromatin(
        _rate(ratio, ell, BOX_L),
        L=BOX_L,
        n=N_SIM,
        dt=0.1,
        t_end=60.0,
        seed=1,
        domain="box",
        params=ModelParams(lamina_affinity=lamina),
    )
    n = N_SIM // FACTOR
    return _invert_grid(sim, np.ones((n, n), bool), "wall", lamina)


@cache
def nucleus_case(ratio: float = 1.0, ell: float = 0.0, lamina: float = 0.0) -> Case:
    """Elliptic nucleus with no-flux walls inside an open image."""
    n = N_SIM // FACTOR
    coarse = ellipse_mask((n, n), NUCLEUS_L / n, NUCLEUS_SEMI_AXES)
    fine = np.kron(coarse, np.ones((FACTOR, FACTOR), bool))
    sim = simulate_chromatin(
        _rate(ratio, ell, NUCLEUS_L),
        L=NUCLEUS_L,
        n=N_SIM,
        dt=0.1,
        t_end=60.0,
        seed=1,
        domain=fine,
        params=ModelParams(lamina_affinity=lamina),
    )
    return _invert_grid(sim, coarse, "open", lamina)


def distance_to_wall(mask: np.ndarray, spacing: float, image_border: str) -> np.ndarray:
    """Distance (model units) of each mask pixel centre to the nearest wall."""
    from scipy import ndimage

    if image_border == "periodic":
        return np.full(mask.shape, np.inf)
    padded = np.pad(mask, 1, constant_values=image_border == "open")
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1] * spacing
