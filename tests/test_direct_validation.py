"""Direct weak-form estimator: validation on simulated steady states (256^2 -> 128^2)."""

from __future__ import annotations

import numpy as np
import pytest

from _sim_cache import (
    L_BOX,
    OPTICAL_NM_PER_UNIT,
    constant_simulation,
    lognormal_simulation,
    optical_path_case,
    pearson,
)
from napari_mollifier.inverse import InferenceConfig, RateMaps, infer_rates
from napari_mollifier.physics.chromatin import ChromatinFields
from napari_mollifier.physics.simulate import downsample

N_INV = 128


def _fields(sim, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    phi_w = downsample(sim.phi_w, 2) + noise * rng.standard_normal((N_INV, N_INV))
    phi_d = downsample(sim.phi_d, 2) + noise * rng.standard_normal((N_INV, N_INV))
    return ChromatinFields.from_phases(phi_w, phi_d, spacing=L_BOX / N_INV)


@pytest.mark.parametrize("noise, r_min", [(0.0, 0.95), (0.01, 0.9), (0.05, 0.9)])
def test_lognormal_map_recovered(noise, r_min):
    sim = lognormal_simulation()
    truth = downsample(sim.rate_ratio, 2)
    result = infer_rates(_fields(sim, noise), InferenceConfig(method="direct"))
    assert isinstance(result, RateMaps)
    v = result.valid_mask
    assert v.mean() > 0.2
    assert np.all(np.isnan(result.ratio[~v])) and np.all(np.isfinite(result.ratio[v]))
    assert pearson(result.ratio[v], truth[v]) >= r_min
    assert result.ratio[v].mean() == pytest.approx(truth[v].mean(), rel=0.05)
    width = result.metadata["mollifier_width"]
    assert result.diagnostics["min_width_4th_order"] <= width
    assert result.uncertainty is not None and np.all(np.isfinite(result.uncertainty[v]))
    d = result.diagnostics
    assert d["global_balance_lambda_phi_e"] == pytest.approx(d["global_balance_phi_h"], rel=0.05)
    assert result.full_metadata()["mollifier_width"] == width


@pytest.mark.parametrize("ratio", [0.5, 1.0, 1.5])
def test_constant_maps_mean_within_two_percent(ratio):
    result = infer_rates(_fields(constant_simulation(ratio), 0.01), InferenceConfig())
    v = result.valid_mask
    assert np.nanmean(result.ratio) == pytest.approx(ratio, rel=0.02)
    assert np.nanstd(result.ratio) < 0.1 * ratio
    assert v.sum() > 0


def test_optical_path():
    """Localisations -> rendered density -> from_density -> direct estimator."""
    image, calibration, truth = optical_path_case(N_INV)
    # calibration assumption: the contrast of phi_h (its 1st..99th percentile range) and the
    # euchromatin fraction phi_e are known; the level follows from <phi_w> = 0.5 ("mean" anchor)
    config = InferenceConfig(calibration=calibration)
    fields = ChromatinFields.from_density(
        image,
        mask=np.ones((N_INV, N_INV), bool),
        params=config.model,
        calibration=config.calibration,
    )
    assert fields.phi_w.mean() == pytest.approx(0.5, abs=1e-6)
    result = infer_rates(fields, config)
    v = result.valid_mask
    assert pearson(result.ratio[v], truth[v]) >= 0.8
    assert result.ratio[v].mean() == pytest.approx(truth[v].mean(), rel=0.10)
    assert result.pixel_size_nm == pytest.approx(L_BOX * OPTICAL_NM_PER_UNIT / N_INV)
    assert result.metadata["calibration"]["phi_h_mean_mask"] > 0


def test_automatic_width_on_512():
    """A 512^2 image with the automatic width scans the ladder and maps the interior (its speed
    is measured by benchmarks/pinn.py --speed, not here)."""
    rng = np.random.default_rng(0)
    phi_w = 0.5 + 0.1 * rng.standard_normal((512, 512))
    phi_d = 0.1 * rng.standard_normal((512, 512))
    fields = ChromatinFields.from_phases(phi_w, phi_d, spacing=0.04)
    result = infer_rates(fields, InferenceConfig())
    assert result.ratio.shape == (512, 512)
    assert len(result.diagnostics["width_ladder"]) >= 3
    assert result.valid_mask.mean() > 0.5


def test_mask_edge_does_not_leak():
    sim = constant_simulation(1.0)
    base = _fields(sim)
    yy, xx = np.mgrid[:N_INV, :N_INV]
    disc = (yy - 64) ** 2 + (xx - 64) ** 2 < 55**2
    phi_w = np.where(disc, base.phi_w, 1.0)  # no chromatin outside the nucleus
    phi_d = np.where(disc, base.phi_d, 0.0)
    fields = ChromatinFields.from_phases(phi_w, phi_d, L_BOX / N_INV, mask=disc)
    result = infer_rates(fields, InferenceConfig(mollifier_width=1.0))
    v = result.valid_mask
    assert not np.any(v & ~disc) and v.sum() > 500
    assert np.nanmean(result.ratio) == pytest.approx(1.0, rel=0.03)
    with pytest.raises(ValueError, match="too narrow"):
        infer_rates(fields, InferenceConfig(mollifier_width=0.1))
