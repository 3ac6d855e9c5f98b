"""The 1st- and 2nd-order benchmark problems: exact data, and recoverable with the engine."""

import sys
from pathlib import Path

import numpy as np
import pytest

from napari_mollifier.mollifier import mollified_derivatives

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _heat import heat_residual, make_heat_data  # noqa: E402
from _langevin import langevin_residual, make_langevin_data  # noqa: E402


def _fd_lap(u, h):
    return (u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]) / h**2


@pytest.mark.parametrize("form", ["nondivergence", "divergence"])
def test_heat_data_satisfy_the_pde(form):
    coarse = make_heat_data(n=64, form=form)
    fine = make_heat_data(n=256, form=form)
    errs = []
    for d in (coarse, fine):
        u, lam, h = d.u_clean, d.diffusivity, d.spacing
        grad_u = np.gradient(u, h)
        grad_lam = np.gradient(lam, h)
        inner = (slice(1, -1), slice(1, -1))
        res = heat_residual(
            lam[inner],
            _fd_lap(u, h),
            d.source[inner],
            [g[inner] for g in grad_lam] if form == "divergence" else None,
            [g[inner] for g in grad_u] if form == "divergence" else None,
        )
        errs.append(np.abs(res[2:-2, 2:-2]).max() / np.abs(d.source).max())
    # second-order finite differences: 4x finer grid -> ~16x smaller residual
    assert errs[1] < 1e-3 and errs[0] / errs[1] > 8, errs


def test_heat_diffusivity_recovered_with_mollifier_at_one_percent_noise():
    d = make_heat_data(n=128, noise=0.01, seed=3)
    h = d.spacing
    width = 0.2
    out = mollified_derivatives(d.u_noisy, width, (h, h), ("laplacian",), boundary="reflect")
    source = mollified_derivatives(d.source, width, (h, h), ("value",), boundary="reflect")["value"]
    r = int(width / h) + 1  # stay one kernel radius away from the reflected border
    recovered = -source[r:-r, r:-r] / out["laplacian"][r:-r, r:-r]
    truth = d.diffusivity[r:-r, r:-r]
    corr = np.corrcoef(recovered.ravel(), truth.ravel())[0, 1]
    assert corr > 0.99, corr


def test_langevin_forcing_recovered_with_mollifier():
    d = make_langevin_data(n=2048, noise=0.01, seed=1)
    clean_residual = langevin_residual(
        d.u_clean, np.gradient(d.u_clean, d.dt, edge_order=2), d.forcing
    )
    assert np.abs(clean_residual[2:-2]).max() < 1e-3
    out = mollified_derivatives(d.u_noisy, 0.06, (d.dt,), ("value", "dx"), boundary="reflect")
    recovered = out["dx"] - out["value"]
    r = int(0.06 / d.dt) + 1
    corr = np.corrcoef(recovered[r:-r], d.forcing[r:-r])[0, 1]
    naive = np.gradient(d.u_noisy, d.dt) - d.u_noisy
    corr_naive = np.corrcoef(naive[r:-r], d.forcing[r:-r])[0, 1]
    assert corr > 0.95 and corr > corr_naive + 0.2, (corr, corr_naive)


def test_bad_form_is_refused():
    with pytest.raises(ValueError, match="form must be"):
        make_heat_data(form="weak")
