"""Chromatin model functions, the forward simulator, random fields, synthetic STORM, fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _sim_cache import constant_simulation
from napari_mollifier.physics.chromatin import (
    ChromatinFields,
    FieldsError,
    g,
    mu_d,
    phase_fractions,
    pointwise_rate_ratio,
    spectral_laplacian,
    steady_state_residual,
)
from napari_mollifier.physics.params import CalibrationParams, ModelParams
from napari_mollifier.physics.random_fields import lognormal_rate_field
from napari_mollifier.physics.synthetic import (
    THUNDERSTORM_COLUMNS,
    sample_localisations,
    write_thunderstorm_csv,
)


def test_pure_functions_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    phi_h, phi_e, lap = rng.random((3, 8, 8)) * 0.5
    p = ModelParams()
    a = mu_d(phi_h, phi_e, lap, p)
    b = mu_d(*(torch.from_numpy(x) for x in (phi_h, phi_e, lap)), p)
    np.testing.assert_allclose(a, b.numpy(), rtol=1e-12)
    assert g(0.35) == pytest.approx(0.0)  # g vanishes at phi_max / 2
    assert g(0.7) == pytest.approx(0.0)
    h, e = phase_fractions(np.array(0.5), np.array(0.1))
    assert float(h) == pytest.approx(0.3) and float(e) == pytest.approx(0.2)
    res = steady_state_residual(torch.tensor(0.3), torch.tensor(0.2), torch.tensor(0.0), 1.5)
    assert float(res) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "ratio, phi_d_range, phi_w_range, area",
    [(1.0, (-0.21, 0.44), (0.05, 0.72), 0.37), (0.5, (-0.29, 0.35), None, 0.18)],
)
def test_simulator_reproduces_reference_steady_state(ratio, phi_d_range, phi_w_range, area):
    sim = constant_simulation(ratio)
    assert sim.max_rate < 0.2 and sim.rms_rate < 0.01  # close to steady state
    assert sim.phi_d.min() == pytest.approx(phi_d_range[0], abs=0.04)
    assert sim.phi_d.max() == pytest.approx(phi_d_range[1], abs=0.04)
    if phi_w_range is not None:
        assert sim.phi_w.min() == pytest.approx(phi_w_range[0], abs=0.03)
        assert sim.phi_w.max() == pytest.approx(phi_w_range[1], abs=0.03)
    assert sim.phi_w.mean() == pytest.approx(0.5, abs=1e-9)  # phi_w is conserved
    assert sim.domain_fraction() == pytest.approx(area, abs=0.08)
    # global balance <lambda phi_e> = <phi_h> of the steady state
    assert np.mean(ratio * sim.phi_e) == pytest.approx(np.mean(sim.phi_h), rel=5e-3)
    # spectral pointwise inversion of noise-free data recovers lambda
    lap_mu = spectral_laplacian(
        mu_d(sim.phi_h, sim.phi_e, spectral_laplacian(sim.phi_d, sim.spacing)), sim.spacing
    )
    lam = pointwise_rate_ratio(sim.phi_h, sim.phi_e, lap_mu)
    assert np.median(lam) == pytest.approx(ratio, rel=0.02)


def test_lognormal_field_statistics():
    lam = lognormal_rate_field(128, 10.0, mean=1.5, spread=0.3, correlation_length=2.0, seed=3)
    assert lam.shape == (128, 128) and lam.min() > 0
    assert lam.mean() == pytest.approx(1.5, rel=1e-12)
    assert np.log(lam).std() == pytest.approx(0.3, rel=1e-9)
    # smooth: neighbouring pixels almost equal (ell = 2 units = 25 pixels)
    assert np.abs(np.diff(np.log(lam), axis=1)).max() < 0.05
    assert not np.array_equal(lam, lognormal_rate_field(128, 10.0, 1.5, 0.3, 2.0, seed=4))


def test_synthetic_storm_density_and_csv(tmp_path):
    chromatin = np.full((64, 64), 0.5)
    chromatin[:, 32:] = 1.0  # right half twice as dense
    table = sample_localisations(
        chromatin, spacing=0.1, nm_per_unit=300.0, density_per_um2=2e4, precision_nm=15.0, seed=0
    )
    area_um2 = (64 * 30 / 1000) ** 2
    assert len(table) == pytest.approx(2e4 * area_um2, rel=0.03)
    right = (table["x [nm]"] > 32 * 30).sum()
    assert right / len(table) == pytest.approx(2 / 3, abs=0.02)
    path = write_thunderstorm_csv(tmp_path / "locs.csv", table)
    header = path.read_text().splitlines()[0]
    assert header == ",".join(f'"{c}"' for c in THUNDERSTORM_COLUMNS)
    from napari_mollifier.io import read_localisations

    locs = read_localisations(path)
    assert len(locs) == len(table)
    np.testing.assert_allclose(locs.table["x_nm"], table["x [nm]"], atol=0.051)


def test_fields_from_phases_and_density():
    rng = np.random.default_rng(0)
    phi_w = 0.5 + 0.05 * rng.standard_normal((40, 40))
    phi_d = 0.1 * rng.standard_normal((40, 40))
    f = ChromatinFields.from_phases(phi_w, phi_d, spacing=0.05)
    np.testing.assert_allclose(f.phi_h + f.phi_e + f.phi_w, 1.0)
    np.testing.assert_allclose(f.phi_d, phi_d)
    stack = ChromatinFields.from_density(
        np.stack([phi_w, phi_d]), pixel_size_nm=15.0, channel="phases"
    )
    assert stack.spacing == pytest.approx(15.0 / 300.0)
    np.testing.assert_allclose(stack.phi_d, phi_d)

    # a disc-shaped nucleus on an empty background: automatic mask and calibration
    yy, xx = np.mgrid[:120, :120]
    disc = (yy - 60) ** 2 + (xx - 60) ** 2 < 45**2
    density = np.where(disc, 50 + 30 * np.sin(xx / 3.0), 0.0) + rng.random((120, 120))
    cal = CalibrationParams()
    fields = ChromatinFields.from_density(density, pixel_size_nm=20.0, calibration=cal)
    assert fields.calibration["mask"] == "automatic"
    inter = (fields.mask & disc).sum() / (fields.mask | disc).sum()
    assert inter > 0.95
    m = fields.mask
    assert np.percentile(fields.phi_h[m], 1) == pytest.approx(cal.phi_h_low, abs=1e-6)
    assert np.percentile(fields.phi_h[m], 99) == pytest.approx(cal.phi_h_high, abs=1e-6)
    assert fields.phi_w[m].mean() == pytest.approx(0.5, abs=1e-9)
    assert fields.spacing == pytest.approx(20.0 / 300.0)
    assert fields.calibration["phi_e"] == pytest.approx(fields.phi_e[0, 0])

    class Duck:  # io.DensityImage-like
        data = density
        pixel_size_nm = 20.0
        origin_nm = (100.0, 200.0)

    duck = ChromatinFields.from_density(Duck())
    assert duck.origin_nm == (100.0, 200.0) and duck.pixel_size_nm == 20.0
    with pytest.raises(FieldsError, match="pixel_size_nm"):
        ChromatinFields.from_density(density)
    with pytest.raises(FieldsError, match="shape"):
        ChromatinFields.from_density(np.zeros((3, 4, 4, 4)), pixel_size_nm=10.0)


def test_mean_anchored_calibration():
    """anchor='mean': contrast from the percentiles, level from <phi_w> and the given phi_e."""
    rng = np.random.default_rng(1)
    density = 40 + 25 * np.sin(np.arange(64) / 2.0)[None, :] + 5 * rng.random((64, 64))
    mask = np.ones((64, 64), bool)
    plain = ChromatinFields.from_density(density, pixel_size_nm=20.0, mask=mask)
    cal = CalibrationParams(phi_e=0.2, anchor="mean")
    anchored = ChromatinFields.from_density(density, pixel_size_nm=20.0, mask=mask, calibration=cal)
    assert anchored.phi_w.mean() == pytest.approx(0.5, abs=1e-6)
    assert anchored.phi_h.mean() == pytest.approx(1 - 0.5 - 0.2, abs=1e-6)
    np.testing.assert_allclose(anchored.phi_e, 0.2)
    # same contrast as the percentile map where nothing is clipped
    inner = (plain.phi_h > 0.01) & (anchored.phi_h > 0.01) & (anchored.phi_h < 0.69)
    shift = anchored.phi_h[inner] - plain.phi_h[inner]
    assert np.ptp(shift) < 1e-9
    assert anchored.calibration["calibration.anchor"] == "mean"
    with pytest.raises(ValueError, match="needs phi_e"):
        CalibrationParams(anchor="mean")
    with pytest.raises(ValueError, match="anchor"):
        CalibrationParams(anchor="median")


def test_render_synthetic_density_covers_the_same_box():
    from napari_mollifier.physics.synthetic import render_synthetic_density

    chromatin = np.full((64, 64), 0.05)
    chromatin[8:24, 40:56] = 1.0  # a bright block: rows 8-23, columns 40-55
    image = render_synthetic_density(
        chromatin, 0.1, nm_per_unit=200.0, shape=(32, 32), density_per_um2=2e4,
        precision_nm=5.0, seed=1,
    )  # fmt: skip
    assert image.data.shape == (32, 32)
    assert image.pixel_size_nm == pytest.approx(40.0)  # 64 * 20 nm box on 32 pixels
    assert image.origin_nm == pytest.approx((10.0, 10.0))  # centre of the 2x2 block [0:2, 0:2]
    block = image.data[4:12, 20:28]  # the same block on the rendered grid
    rest = np.delete(np.delete(image.data, np.s_[3:13], axis=0), np.s_[19:29], axis=1)
    assert block.mean() > 10 * rest.mean()
    with pytest.raises(ValueError, match="square pixels"):
        render_synthetic_density(chromatin, 0.1, shape=(32, 16))
