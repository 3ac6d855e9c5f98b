"""Issue 14 for the PINN: residual centres over the whole nucleus, data extended across the
no-flux envelope, the lamina wall term. Fast: coverage and the wall term on short runs; slow:
the accuracy targets with the default training."""

from __future__ import annotations

import numpy as np
import pytest

from _envelope_cache import box_case, distance_to_wall, nucleus_case
from napari_mollifier.inverse import InferenceConfig, infer_rates
from napari_mollifier.inverse.pinn import PinnOptions
from napari_mollifier.physics.params import ModelParams


def _config(lamina=0.0, **pinn):
    options = dict(steps=6, ensemble_size=1, patch_size=16)
    options.update(pinn)
    return InferenceConfig(
        method="pinn",
        device="cpu",
        model=ModelParams(lamina_affinity=lamina),
        pinn=PinnOptions(**options),
    )


#: the default training (steps, members, patch) for the accuracy targets
DEFAULT_TRAINING = {
    key: getattr(PinnOptions(), key) for key in ("steps", "ensemble_size", "patch_size")
}


def test_pinn_maps_the_whole_curved_nucleus():
    case = nucleus_case(1.0)
    result = infer_rates(case.fields, _config())
    mapped = np.isfinite(result.ratio) & case.mask
    assert mapped.sum() / case.mask.sum() >= 0.95
    assert np.array_equal(result.valid_mask, mapped)
    err = np.abs(result.ratio / case.truth - 1)
    assert np.median(err[mapped]) < 0.1  # 6 steps: close to the (whole-mask) warm start


def test_pinn_lamina_wall_term_enters_the_residual():
    from napari_mollifier.inverse.pinn.problem import PinnProblem
    from napari_mollifier.inverse.pinn.warm_start import warm_start
    from napari_mollifier.inverse.prepared import prepare_fields

    case = nucleus_case(1.0, lamina=0.002)
    config = _config(lamina=0.002)
    prepared = prepare_fields(case.fields, config)
    warm = warm_start(prepared, config)
    problem = PinnProblem(prepared, warm, config, config.pinn, "cpu")
    wall = problem.wall(0, 0, *case.mask.shape).numpy()
    assert np.isfinite(wall).all() and np.abs(wall[case.mask]).max() > 0
    # linear in h, and absent on a neutral wall (h comes with the prepared fields' model)
    for h, factor in ((0.004, 2.0), (0.0, None)):
        other = _config(lamina=h)
        again = PinnProblem(prepare_fields(case.fields, other), warm, other, other.pinn, "cpu")
        term = again.wall(0, 0, *case.mask.shape)
        if factor is None:
            assert term is None
        else:
            np.testing.assert_allclose(term.numpy(), factor * wall, rtol=1e-5, atol=1e-9)
    assert problem.centres_np.sum() / case.mask.sum() >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "ratio"),
    [("rectangle", 0.7), ("rectangle", 1.0), ("rectangle", 1.3), ("ellipse", 1.0)],
)
def test_pinn_whole_nucleus_accuracy(kind, ratio):
    """The issue's targets at the default training: rectangle <= 2 % over all mapped pixels and
    <= 3 % in the outer band; curved nucleus <= 3 % in the band of two kernel widths (which
    covers this small ellipse entirely; measured 2.1 %, docs/validation.md)."""
    case = box_case(ratio) if kind == "rectangle" else nucleus_case(ratio)
    result = infer_rates(case.fields, _config(**DEFAULT_TRAINING))
    mapped = np.isfinite(result.ratio) & case.mask
    spacing = case.fields.spacing
    dist = distance_to_wall(case.mask, spacing, case.fields.image_border)
    band_width = (
        0.1 * case.mask.shape[0] * spacing
        if kind == "rectangle"
        else 2 * result.metadata["mollifier_width"]
    )
    band = mapped & (dist < band_width)
    err = np.abs(result.ratio / case.truth - 1)
    assert mapped.sum() / case.mask.sum() >= 0.95
    assert err[band].mean() <= 0.03
    if kind == "rectangle":
        assert err[mapped].mean() <= 0.02


@pytest.mark.slow
def test_pinn_lad_band_with_the_affinity_given():
    """LADs (h 0.002) with h given: the band's ratio within 5 % of the truth."""
    case = nucleus_case(1.0, lamina=0.002)
    config = _config(lamina=0.002, **DEFAULT_TRAINING)
    result = infer_rates(case.fields, config)
    mapped = np.isfinite(result.ratio) & case.mask
    dist = distance_to_wall(case.mask, case.fields.spacing, case.fields.image_border)
    band = mapped & (dist < 0.3)  # model units: the LAD layer
    assert mapped.sum() / case.mask.sum() >= 0.95
    assert np.abs(result.ratio[band] / case.truth[band] - 1).mean() <= 0.05
