"""Issue 14: the direct estimator maps the whole nucleus, up to the no-flux envelope.

Targets of the issue on small closed-domain simulations (tests/_envelope_cache.py): coverage,
mean |relative error| overall and in the band along the wall, Pearson r for smooth maps, the
lamina affinity given or ignored, and the periodic box fully covered.
"""

from __future__ import annotations

import numpy as np
import pytest

from _envelope_cache import box_case, distance_to_wall, nucleus_case
from napari_mollifier.inverse import InferenceConfig, infer_rates
from napari_mollifier.physics.chromatin import ChromatinFields
from napari_mollifier.physics.params import ModelParams
from napari_mollifier.physics.simulate import downsample, simulate_chromatin


def _run(case, lamina: float = 0.0, **config):
    model = ModelParams(lamina_affinity=lamina)
    return infer_rates(case.fields, InferenceConfig(model=model, **config))


def _errors(result, case, band_width):
    mapped = np.isfinite(result.ratio) & case.mask
    dist = distance_to_wall(case.mask, case.fields.spacing, case.fields.image_border)
    band = mapped & (dist < band_width)
    err = np.abs(result.ratio / case.truth - 1)
    return mapped, band, err


def _pearson(a, b):
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize("ratio", [0.7, 1.0, 1.3])
def test_rectangle_with_walls_constant_ratio(ratio):
    case = box_case(ratio)
    result = _run(case)
    side = case.mask.shape[0] * case.fields.spacing
    mapped, band, err = _errors(result, case, 0.1 * side)  # outer band: 10 % of the side
    assert mapped.mean() >= 0.95
    assert err[mapped].mean() <= 0.02
    assert band.sum() > 0.2 * mapped.sum() and err[band].mean() <= 0.03
    meta = result.metadata
    assert meta["image_border"] == "wall" and "envelope" in meta["edge_handling"]


@pytest.mark.parametrize("ell, r_all, r_band", [(2.0, 0.95, 0.9), (1.0, 0.85, None)])
def test_rectangle_with_walls_smooth_map(ell, r_all, r_band):
    case = box_case(1.0, ell)
    result = _run(case)
    side = case.mask.shape[0] * case.fields.spacing
    mapped, band, _ = _errors(result, case, 0.1 * side)
    assert mapped.mean() >= 0.95
    assert _pearson(result.ratio[mapped], case.truth[mapped]) >= r_all
    if r_band is not None:
        assert _pearson(result.ratio[band], case.truth[band]) >= r_band


def test_curved_nucleus_mapped_up_to_the_envelope():
    case = nucleus_case(1.0)
    result = _run(case)
    radius = result.metadata["mollifier_radius_pixels"] * case.fields.spacing
    mapped, band, err = _errors(result, case, 2 * radius)
    assert mapped.sum() / case.mask.sum() >= 0.95
    assert err[mapped].mean() <= 0.02 and err[band].mean() <= 0.03
    # the uncertainty says where the map leans on the wall conditions
    assert result.diagnostics["reflected_weight_max"] > 0.3
    assert np.isfinite(result.uncertainty[mapped]).all()


def test_lamina_affinity_given_removes_the_lad_band_bias():
    h = 0.002
    case = nucleus_case(1.0, lamina=h)
    given, ignored = _run(case, lamina=h), _run(case, lamina=0.0)
    radius = given.metadata["mollifier_radius_pixels"] * case.fields.spacing
    mapped, _, err_given = _errors(given, case, radius)
    lad = mapped & (distance_to_wall(case.mask, case.fields.spacing, "open") < 0.3)
    err_ignored = np.abs(ignored.ratio / case.truth - 1)
    assert mapped.sum() / case.mask.sum() >= 0.95
    assert abs(np.mean(given.ratio[lad] / case.truth[lad]) - 1) <= 0.05
    assert err_given[lad].mean() < err_ignored[lad].mean()
    assert given.metadata["lamina_affinity"] == h and ignored.metadata["lamina_affinity"] == 0


def test_periodic_box_is_covered_entirely():
    sim = simulate_chromatin(1.0, L=5.0, n=64, dt=0.1, t_end=10.0, seed=2)
    fields = ChromatinFields.from_phases(
        downsample(sim.phi_w, 2), downsample(sim.phi_d, 2), 2 * sim.spacing, image_border="periodic"
    )
    result = infer_rates(fields, InferenceConfig())
    assert np.isfinite(result.ratio).all() and result.valid_mask.all()
    # "open": the same fields are mapped only a kernel radius inside the image border
    fields.image_border = "open"
    open_result = infer_rates(fields, InferenceConfig())
    assert not open_result.valid_mask[0].any() and open_result.valid_mask.mean() < 0.9


def test_optical_path_on_the_curved_nucleus_with_blinking_and_background():
    from napari_mollifier.physics.params import CalibrationParams
    from napari_mollifier.physics.synthetic import render_synthetic_density

    case = nucleus_case(1.0, 2.0)
    sim, mask = case.sim, case.mask
    blinking = dict(labelling_density_per_um2=1e4, mean_blinks=5.0, background_fraction=0.03)
    image = render_synthetic_density(
        1.0 - sim.phi_w,
        sim.spacing,
        nm_per_unit=300.0,
        shape=mask.shape,
        mask=sim.mask,
        blinking=blinking,
        seed=0,
    )
    # the calibration an informed user would enter: the true phi_h range and mean phi_e
    phi_h = downsample(sim.phi_h, 2)[mask]
    low, high = np.percentile(phi_h, [1, 99])
    phi_e = float(downsample(sim.phi_e, 2)[mask].mean())
    calibration = CalibrationParams(phi_h_low=low, phi_h_high=high, phi_e=phi_e, anchor="mean")
    fields = ChromatinFields.from_density(image, mask=mask, calibration=calibration)
    result = infer_rates(fields, InferenceConfig(calibration=calibration))
    mapped = np.isfinite(result.ratio) & mask
    assert mapped.sum() / mask.sum() >= 0.95
    assert _pearson(result.ratio[mapped], case.truth[mapped]) >= 0.9
