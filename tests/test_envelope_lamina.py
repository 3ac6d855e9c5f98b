"""Lamina affinity estimated per nucleus from the nucleoplasm equation (inverse/lamina.py)."""

from __future__ import annotations

import numpy as np
import pytest

from _envelope_cache import box_case, distance_to_wall, nucleus_case
from napari_mollifier.inverse import InferenceConfig, infer_rates
from napari_mollifier.inverse.lamina import estimate_lamina_affinity, subpixel_variance
from napari_mollifier.physics.chromatin import ChromatinFields
from napari_mollifier.physics.params import ModelParams

H = 0.002


def test_exact_on_the_simulation_grid_of_a_rectangle():
    sim = box_case(1.0, lamina=H).sim  # point values of the simulator's own scheme
    fields = ChromatinFields.from_phases(
        sim.phi_w, sim.phi_d, sim.spacing, image_border="wall", params=ModelParams()
    )
    estimate = estimate_lamina_affinity(fields, pixel_average=False)
    assert estimate.value == pytest.approx(H, rel=0.005)
    assert estimate.spread < 0.005 * H and estimate.wall_pixels == 4 * (sim.phi_w.shape[0] - 1)


def test_subpixel_variance_of_a_linear_field_and_its_reflection_at_the_wall():
    spacing, slope = 0.1, 2.0
    phi = slope * np.arange(8)[:, None] * spacing * np.ones((8, 6))
    mask = np.zeros((8, 6), bool)
    mask[1:7, :] = True  # walls above and below; the open border left and right
    var = subpixel_variance(phi, mask, spacing, "open")
    linear = (slope * spacing) ** 2 / 12
    assert np.allclose(var[2:6], linear)
    assert np.allclose(var[[1, 6]], linear / 4)  # reflected: half the central difference
    assert np.all(var[~mask] == 0)


def test_rectangle_inverted_coarser_with_noise_within_10_percent():
    assert estimate_lamina_affinity(box_case(1.0, lamina=H).fields).value == pytest.approx(
        H, rel=0.1
    )
    assert abs(estimate_lamina_affinity(box_case(1.0).fields).value) < 0.02 * H


def test_curved_nucleus_within_10_percent_and_the_lad_band_within_5_percent():
    case = nucleus_case(1.0, lamina=H)
    estimate = estimate_lamina_affinity(case.fields)
    assert estimate.value == pytest.approx(H, rel=0.1)  # measured -8.0 % (docs/validation.md)
    assert abs(estimate_lamina_affinity(nucleus_case(1.0).fields).value) < 0.1 * H
    config = InferenceConfig(method="direct", model=ModelParams(lamina_affinity=estimate.value))
    result = infer_rates(case.fields, config)
    mapped = np.isfinite(result.ratio) & case.mask
    band = mapped & (distance_to_wall(case.mask, case.fields.spacing, "open") < 0.3)
    assert np.abs(result.ratio[band] / case.truth[band] - 1).mean() <= 0.05


def test_a_periodic_box_has_no_wall():
    sim = box_case(1.0).sim
    fields = ChromatinFields.from_phases(sim.phi_w, sim.phi_d, sim.spacing, image_border="periodic")
    with pytest.raises(ValueError, match="no wall"):
        estimate_lamina_affinity(fields)


def test_inference_can_estimate_the_affinity_itself_and_says_so():
    case = nucleus_case(1.0, lamina=H)
    config = InferenceConfig(method="direct", estimate_lamina_affinity=True)
    result = infer_rates(case.fields, config)
    expected = estimate_lamina_affinity(case.fields).value
    assert result.metadata["lamina_affinity"] == pytest.approx(expected)
    assert result.metadata["lamina_affinity_source"].startswith("estimated")
    assert len(result.metadata["lamina_affinity_per_width"]) == 3
    mapped = np.isfinite(result.ratio) & case.mask
    band = mapped & (distance_to_wall(case.mask, case.fields.spacing, "open") < 0.3)
    assert np.abs(result.ratio[band] / case.truth[band] - 1).mean() <= 0.05
    given = infer_rates(case.fields, InferenceConfig(method="direct"))
    assert given.metadata["lamina_affinity_source"].startswith("default 0")


def test_estimating_without_a_wall_names_the_problem():
    sim = box_case(1.0).sim
    fields = ChromatinFields.from_phases(sim.phi_w, sim.phi_d, sim.spacing, image_border="periodic")
    with pytest.raises(ValueError, match="estimate_lamina_affinity is on.*no wall"):
        infer_rates(fields, InferenceConfig(method="direct", estimate_lamina_affinity=True))


def test_an_estimate_from_a_single_channel_density_carries_the_caveat():
    from napari_mollifier.inverse.api import SINGLE_CHANNEL_CAVEAT
    from napari_mollifier.io.types import DensityImage

    case = nucleus_case(1.0, lamina=H)
    intensity = np.where(case.mask, 1.0 - case.fields.phi_w, 0.0)  # H2B: all chromatin
    pixel_nm = case.fields.spacing * ModelParams().nm_per_unit
    fields = ChromatinFields.from_density(DensityImage(intensity, pixel_nm), mask=case.mask)
    result = infer_rates(fields, InferenceConfig(method="direct", estimate_lamina_affinity=True))
    assert SINGLE_CHANNEL_CAVEAT in result.metadata["lamina_affinity_source"]
