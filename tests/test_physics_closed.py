"""Closed-domain simulator: no-flux walls on a rectangle and on nucleus masks, lamina affinity."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from napari_mollifier.physics.closed import _cosine_operators
from napari_mollifier.physics.domains import (
    ellipse_mask,
    kidney_mask,
    masked_laplacian,
    wall_faces,
)
from napari_mollifier.physics.params import ModelParams
from napari_mollifier.physics.simulate import simulate_chromatin

N, L = 48, 3.0  # spacing 0.0625 model units: small and quick


@cache
def _ellipse_run(lamina: float = 0.0):
    mask = ellipse_mask((N, N), L / N, (1.2, 1.35))
    params = ModelParams(lamina_affinity=lamina)
    return simulate_chromatin(1.0, L=L, n=N, dt=0.1, t_end=12.0, domain=mask, params=params)


def test_cosine_transform_is_the_masked_laplacian_on_a_rectangle():
    lap, _ = masked_laplacian(np.ones((12, 9), bool), 0.1)
    apply_lap, solve_d, _ = _cosine_operators((12, 9), 0.1, 0.1, 9e-4, 2.0, 2.0)
    u = np.random.default_rng(0).standard_normal((12 * 9, 2))
    np.testing.assert_allclose(apply_lap(u), lap @ u, atol=1e-9)
    # the implicit solve inverts I + dt(l^2 L^2 - S L + c)
    lhs = u[:, 0] + 0.1 * (9e-4 * (lap @ (lap @ u[:, 0])) - 2.0 * (lap @ u[:, 0]) + 2.0 * u[:, 0])
    np.testing.assert_allclose(solve_d(lhs), u[:, 0], atol=1e-9)
    assert abs((lap @ u).sum(axis=0)).max() < 1e-9  # zero row sums: nothing leaves


def test_masked_laplacian_has_no_flux_across_the_mask_outline():
    mask = kidney_mask((40, 40), 0.1, 1.5, seed=3)
    lap, index = masked_laplacian(mask, 0.1)
    ones = np.ones(lap.shape[0])
    assert np.abs(lap @ ones).max() < 1e-9  # constants are steady: zero-flux walls
    assert (lap - lap.T).nnz == 0
    faces = wall_faces(mask)
    assert faces[~mask].sum() == 0 and faces[mask].max() <= 4
    # an interior cell has no wall face, a rim cell has at least one
    assert faces[20, 20] == 0 and faces[mask].sum() > 0
    assert index[~mask].max() == -1


def test_box_with_walls_conserves_mass_and_reports_steady_state():
    sim = simulate_chromatin(1.0, L=L, n=N, dt=0.1, t_end=10.0, domain="box", seed=1)
    cons = sim.conservation
    assert sim.domain == "box" and sim.mask.all()
    assert cons["mean_drift_phi_w"] < 1e-6
    assert cons["mean_drift_phi_d_minus_reactions"] < 1e-6
    assert cons["wall_flux"] < 1e-9
    assert sim.phi_w.mean() == pytest.approx(0.5, abs=1e-6)
    # phase separation happened, and the reported distance from steady state is the true one
    assert sim.phi_d.max() - sim.phi_d.min() > 0.4
    more = simulate_chromatin(
        1.0, L=L, n=N, dt=0.1, t_end=0.1, domain="box", initial=(sim.phi_w, sim.phi_d)
    )
    rate = max(np.abs(more.phi_w - sim.phi_w).max(), np.abs(more.phi_d - sim.phi_d).max()) / 0.1
    assert more.max_rate == pytest.approx(rate, rel=1e-9)
    assert sim.history[-1][1] == pytest.approx(sim.max_rate)


def test_curved_nucleus_no_flux_and_outside_is_nucleoplasm():
    sim = _ellipse_run()
    cons = sim.conservation
    assert sim.domain == "mask"
    assert cons["mean_drift_phi_w"] < 1e-6 and cons["wall_flux"] < 1e-9
    assert cons["mean_drift_phi_d_minus_reactions"] < 1e-6
    assert np.all(sim.phi_w[~sim.mask] == 1.0) and np.all(sim.phi_d[~sim.mask] == 0.0)
    assert sim.phi_w[sim.mask].mean() == pytest.approx(0.5, abs=1e-6)
    # the global reaction balance of a steady state, <lambda phi_e> = <phi_h> over the nucleus
    inside = sim.mask
    assert np.mean(sim.phi_e[inside]) == pytest.approx(np.mean(sim.phi_h[inside]), rel=0.02)
    assert sim.report()["domain"] == "mask" and "conservation" in sim.report()


def test_lamina_affinity_grows_a_heterochromatin_layer_along_the_wall():
    neutral, lads = _ellipse_run(0.0), _ellipse_run(0.004)
    rim = wall_faces(lads.mask) > 0
    for sim in (neutral, lads):
        assert sim.conservation["wall_flux"] < 1e-9
    assert lads.conservation["lamina_affinity"] == 0.004
    assert lads.phi_h[rim].mean() > 0.55  # close to phi_max all along the envelope
    assert lads.phi_h[rim].mean() > neutral.phi_h[rim].mean() + 0.15
    assert np.mean(lads.phi_h[rim] > 0.45) > 0.95


def test_closed_domain_input_errors():
    with pytest.raises(ValueError, match="periodic box has no wall"):
        simulate_chromatin(1.0, L=L, n=16, t_end=0.1, params=ModelParams(lamina_affinity=0.1))
    with pytest.raises(ValueError, match="domain"):
        simulate_chromatin(1.0, L=L, n=16, t_end=0.1, domain="disc")
    with pytest.raises(ValueError, match="only 0 cells"):
        simulate_chromatin(1.0, L=L, n=16, t_end=0.1, domain=np.zeros((16, 16), bool))
    with pytest.raises(ValueError, match="domain mask of shape"):
        simulate_chromatin(1.0, L=L, n=16, t_end=0.1, domain=np.ones((8, 8), bool))
