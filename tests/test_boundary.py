"""Boundary semantics (image_border) and mollified derivatives up to no-flux walls."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import j0, jn_zeros

from napari_mollifier.mollifier import min_width, mollified_derivatives
from napari_mollifier.mollifier.boundary import (
    boundary_derivatives,
    extend_fields,
    wall_line_density,
)
from napari_mollifier.physics.chromatin import ChromatinFields, FieldsError

H = 0.05  # grid spacing, model units


def _grid(n):
    c = (np.arange(n) + 0.5) * H
    return np.meshgrid(c, c, indexing="ij")


def test_image_border_is_stored_and_checked():
    phi_w = np.full((16, 16), 0.5)
    phi_d = np.zeros((16, 16))
    assert ChromatinFields.from_phases(phi_w, phi_d, 0.1).image_border == "open"
    f = ChromatinFields.from_phases(phi_w, phi_d, 0.1, image_border="wall")
    assert f.image_border == "wall" and f.calibration["image_border"] == "wall"
    density = np.random.default_rng(0).random((32, 32)) + 1
    g = ChromatinFields.from_density(density, 20.0, image_border="periodic")
    assert g.image_border == "periodic" and g.calibration["image_border"] == "periodic"
    stack = np.stack([phi_w, phi_d])
    two = ChromatinFields.from_density(stack, 20.0, image_border="wall", channel="phases")
    assert two.image_border == "wall"
    with pytest.raises(FieldsError, match=r"image_border: expected one of .*'mirror'"):
        ChromatinFields.from_phases(phi_w, phi_d, 0.1, image_border="mirror")
    with pytest.raises(FieldsError, match="image_border"):
        ChromatinFields.from_density(density, 20.0, image_border=None)


def test_straight_walls_mirror_exactly():
    # cosines with zero normal derivative on the cell faces of the border: every odd normal
    # derivative vanishes there, so the mirror image is the field's own continuation
    n = 96
    y, x = _grid(n)
    ky, kx = 3 * np.pi / (n * H), 2 * np.pi / (n * H)
    u = np.cos(ky * y) * np.cos(kx * x)
    width = 1.5 * min_width("polynomial", 4, H)
    out, valid, weight = boundary_derivatives(u, np.ones((n, n), bool), width, H, "wall")
    k2 = ky**2 + kx**2
    value = out["value"][0]
    assert valid.all()
    assert np.abs(out["laplacian"][0] + k2 * value).max() < 1e-8 * k2
    assert np.abs(out["biharmonic"][0] - k2**2 * value).max() < 1e-6 * k2**2
    assert 0.35 < weight[0, n // 2] < 0.5 and weight[n // 2, n // 2] == 0
    # "open" keeps the kernel-radius rim unmapped, "periodic" maps everything
    _, valid_open, _ = boundary_derivatives(u, np.ones((n, n), bool), width, H, "open")
    r = extend_fields(u, np.ones((n, n), bool), 5, "open").radius
    assert not valid_open[0].any() and valid_open[n // 2, n // 2] and r == 5
    _, valid_per, _ = boundary_derivatives(u, np.ones((n, n), bool), width, H, "periodic")
    assert valid_per.all()


@pytest.mark.parametrize("radius", [1.9, 1.2])
def test_curved_wall_of_a_disk(radius):
    # J0(k r) with J0'(k R) = 0: zero normal derivative and zero normal flux of its laplacian
    # on the circle (lap u = -k^2 u). Compare the mollified derivatives of the extended field
    # with -k^2 (resp. k^4) times its mollified value; inside, away from the wall, they agree
    # to the kernel's resolution, within two kernel radii of the wall to the tolerances below
    # (the curvature and the staircase outline of the mask; measured, docs/mollifier.md).
    n = 128
    y, x = _grid(n)
    r = np.hypot(y - n * H / 2, x - n * H / 2)
    mask = r < radius
    k = jn_zeros(1, 3 if radius > 1.5 else 2)[-1] / radius
    u = j0(k * r)
    width = 1.5 * min_width("polynomial", 4, H)
    out, valid, _ = boundary_derivatives(u, mask, width, H, "open")
    assert valid[mask].mean() == 1.0
    value = out["value"][0]
    err_lap = np.abs(out["laplacian"][0] + k**2 * value) / k**2
    err_bih = np.abs(out["biharmonic"][0] - k**4 * value) / k**4
    band = valid & (r > radius - 2 * width)
    inner = valid & ~band
    if inner.any():
        assert err_lap[inner].max() < 1e-5 and err_bih[inner].max() < 1e-5
    assert err_lap[band].mean() < 0.003 and err_lap[band].max() < 0.03
    assert err_bih[band].mean() < 0.015 and err_bih[band].max() < 0.15
    # without the reflection (fields outside set to the mask mean) the band is far off
    naive = np.where(mask, u, u[mask].mean())
    plain = mollified_derivatives(naive, width, (H, H), ("value", "laplacian"))
    err_plain = np.abs(plain["laplacian"] + k**2 * plain["value"]) / k**2
    assert err_plain[band].mean() > 10 * err_lap[band].mean()


def test_mirror_point_outside_a_thin_mask_is_unknown():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 18:21] = True  # 3 pixels thick: a wide kernel has no mirror for far pixels
    ext = extend_fields(np.ones((1, 40, 40)), mask, 8, "wall")
    r = ext.radius  # extended arrays are offset by the radius
    assert ext.known[r + 20, r + 22] and ext.known[r + 20, r + 16]  # mirror inside the strip
    assert not ext.known[r + 20, r + 26] and not ext.known[r + 20, r + 12]  # beyond it
    _, valid, _ = boundary_derivatives(np.ones((40, 40)), mask, 8 * H, H, "open")
    assert not valid[mask].all()


def test_wall_line_density_counts_wall_faces():
    mask = np.zeros((6, 6), bool)
    mask[:3, :3] = True
    wall = wall_line_density(mask, 0.5, "wall") * 0.5
    assert wall[0, 0] == 2 and wall[2, 2] == 2 and wall[1, 1] == 0 and wall[4, 4] == 0
    assert wall_line_density(mask, 0.5, "open")[0, 0] == 0  # the open border is no wall
    assert wall_line_density(np.ones((4, 4), bool), 1.0, "periodic").sum() == 0
    with pytest.raises(ValueError, match="image_border"):
        boundary_derivatives(np.ones((8, 8)), np.ones((8, 8), bool), 0.5, H, "closed")


def test_extension_operator_is_the_same_gather_in_numpy_and_torch():
    import torch

    from napari_mollifier.mollifier.boundary import extension_operator

    y, x = _grid(40)
    mask = np.hypot(y - 1.0, x - 1.0) < 0.8
    u = np.random.default_rng(1).standard_normal((2, 40, 40))
    op = extension_operator(mask, 6, "open")
    np.testing.assert_allclose(op.weight.sum(axis=1), 1.0)
    assert op.rows.size == (~np.pad(mask, 6, mode="edge")).sum()
    ext = op.apply(u)
    t = torch.tensor(u, requires_grad=True)
    ext_t = op.apply(t)
    np.testing.assert_allclose(ext_t.detach().numpy(), ext, atol=1e-12)
    ext_t.sum().backward()  # differentiable: a network output can be extended
    assert t.grad[:, ~mask].abs().max() == 0 and t.grad[:, mask].min() >= 1
    assert np.array_equal(ext[:, 6:-6, 6:-6][:, mask], u[:, mask])  # inside untouched
