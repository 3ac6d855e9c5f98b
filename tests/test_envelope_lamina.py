"""Lamina affinity estimated per nucleus from the nucleoplasm equation (inverse/lamina.py)."""

from __future__ import annotations

import numpy as np
import pytest

from _envelope_cache import box_case, distance_to_wall, nucleus_case
from napari_mollifier.inverse import InferenceConfig, infer_rates
from napari_mollifier.inverse.lamina import estimate_lamina_affinity
from napari_mollifier.physics.chromatin import ChromatinFields
from napari_mollifier.physics.params import ModelParams

H = 0.002


def test_exact_on_the_simulation_grid_of_a_rectangle():
    sim = box_case(1.0, lamina=H).sim  # no noise, no block average: the weak form is exact
    fields = ChromatinFields.from_phases(
        sim.phi_w, sim.phi_d, sim.spacing, image_border="wall", params=ModelParams()
    )
    estimate = estimate_lamina_affinity(fields)
    assert estimate.value == pytest.approx(H, rel=0.02)
    assert estimate.spread < 0.02 * H and estimate.wall_pixels > 0


def test_rectangle_inverted_coarser_with_noise_within_10_percent():
    assert estimate_lamina_affinity(box_case(1.0, lamina=H).fields).value == pytest.approx(
        H, rel=0.1
    )
    assert abs(estimate_lamina_affinity(box_case(1.0).fields).value) < 0.02 * H


def test_curved_nucleus_bias_is_bounded_and_the_lad_band_stays_within_5_percent():
    case = nucleus_case(1.0, lamina=H)
    estimate = estimate_lamina_affinity(case.fields)
    assert 0.7 * H < estimate.value < H  # measured -22 % (docs/validation.md)
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
