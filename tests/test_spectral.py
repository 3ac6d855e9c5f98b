"""The spectral stack (one transform, any width) against the separable boundary engine."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mollifier.mollifier import boundary_derivatives, min_width
from napari_mollifier.mollifier.kernels import (
    KERNEL_NAMES,
    MIN_WIDTH_PIXELS_TABLE,
    scan_min_width_pixels,
)
from napari_mollifier.mollifier.spectral import SpectralStack

SPACING = 0.1


def _fields(shape, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]] * SPACING
    smooth = np.stack([np.sin(0.7 * x) * np.cos(0.5 * y), np.cos(0.3 * x + 0.2 * y)])
    return smooth + 0.05 * rng.standard_normal((2,) + shape)


def _ellipse(shape):
    y, x = np.mgrid[: shape[0], : shape[1]]
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    return ((y - cy) / (0.33 * shape[0])) ** 2 + ((x - cx) / (0.3 * shape[1])) ** 2 <= 1


@pytest.mark.parametrize(
    "mask_kind, border",
    [("full", "periodic"), ("full", "wall"), ("full", "open"), ("ellipse", "open")],
)
def test_matches_the_separable_engine_at_every_width(mask_kind, border):
    shape = (96, 88)
    stack = _fields(shape)
    mask = np.ones(shape, bool) if mask_kind == "full" else _ellipse(shape)
    w0 = 1.02 * min_width("polynomial", 4, SPACING)
    widths = [w0, 1.3 * w0, 1.7 * w0]
    spectral = SpectralStack(stack, mask, SPACING, max(widths), border)
    for width in widths:
        ref, valid, weight = boundary_derivatives(stack, mask, width, SPACING, border)
        np.testing.assert_array_equal(spectral.valid(width), valid)
        for name in ("value", "laplacian", "biharmonic"):
            for channel in (0, 1):
                got = spectral.combine(width, {channel: {name: 1.0}})
                scale = np.abs(ref[name][channel][valid]).max()
                err = np.abs(got - ref[name][channel])[valid].max() / scale
                assert err < 1e-10, (name, channel, width, err)
        np.testing.assert_allclose(spectral.reflected_weight(width), weight, atol=1e-12)


def test_combinations_are_linear_and_other_fields_share_the_walls():
    shape = (64, 64)
    stack, mask = _fields(shape), _ellipse(shape)
    width = 1.1 * min_width("polynomial", 4, SPACING)
    spectral = SpectralStack(stack, mask, SPACING, width, "open")
    combined = spectral.combine(
        width, {0: {"value": 2.0, "laplacian": -0.5}, 1: {"biharmonic": 3.0}}
    )
    parts = (
        2 * spectral.combine(width, {0: {"value": 1.0}})
        - 0.5 * spectral.combine(width, {0: {"laplacian": 1.0}})
        + 3 * spectral.combine(width, {1: {"biharmonic": 1.0}})
    )
    np.testing.assert_allclose(combined, parts, atol=1e-10 * np.abs(parts).max())
    other = spectral.transform(stack[1])
    np.testing.assert_allclose(
        other.combine(width, {0: {"value": 1.0}}), spectral.combine(width, {1: {"value": 1.0}})
    )


def test_refuses_widths_beyond_its_extension_and_below_resolution():
    shape = (48, 48)
    width = 1.1 * min_width("polynomial", 4, SPACING)
    spectral = SpectralStack(_fields(shape), np.ones(shape, bool), SPACING, width, "periodic")
    with pytest.raises(ValueError, match="extended for at most"):
        spectral.combine(2 * width, {0: {"value": 1.0}})
    with pytest.raises(ValueError, match="too narrow"):
        spectral.combine(0.5 * min_width("polynomial", 4, SPACING), {0: {"biharmonic": 1.0}})
    with pytest.raises(ValueError, match="even derivatives"):
        spectral.combine(width, {0: {"dx": 1.0}})


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_min_width_table_is_the_scan(kernel):
    for order, tabled in enumerate(MIN_WIDTH_PIXELS_TABLE[kernel]):
        assert scan_min_width_pixels(kernel, order, 1e-3, 12) == tabled


def test_window_sums_give_the_chessboard_distance_rule():
    """valid(): a support is all known exactly when the chessboard distance to the nearest
    unknown pixel exceeds the radius (the summed-area table against scipy's transform)."""
    from scipy import ndimage

    from napari_mollifier.mollifier.boundary import unknown_table, window_sums

    rng = np.random.default_rng(4)
    known = ndimage.binary_opening(rng.random((70, 90)) > 0.03, iterations=1)
    known[:3] = False  # unknown rows at the padded edge, as an open border gives
    big, shape = 9, (70 - 18, 90 - 18)
    table = unknown_table(known)
    distance = ndimage.distance_transform_cdt(known, metric="chessboard")
    for r in (0, 1, 4, 9):
        expected = distance[big : big + shape[0], big : big + shape[1]] > r
        np.testing.assert_array_equal(window_sums(table, big, r, shape) == 0, expected)
