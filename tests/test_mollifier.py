"""The mollifier engine: exact moments, accuracy, boundaries, noise robustness, gradients."""

import math

import numpy as np
import pytest
import torch

from napari_mollifier.mollifier import (
    MollifierLayer,
    WidthSchedule,
    derivative_terms,
    kernel_weights,
    min_width,
    mollified_derivatives,
)
from napari_mollifier.mollifier.kernels import _eta_hat

BOX = 10.0
N = 128
H = BOX / N
ALL_2D = ("value", "dx", "dy", "dxx", "dyy", "dxy", "laplacian", "biharmonic")
LOW_ORDER_2D = ("value", "dx", "dy", "dxx", "dyy", "dxy", "laplacian")


def _transfer(kernel, width, k):
    return float(_eta_hat(kernel, 12, np.array([abs(k) * width]))[0])


def _periodic_field(kx, ky, phase=0.3):
    """u = sin(kx x + phase) cos(ky y) and its exact derivatives (dict name -> array)."""
    x = np.arange(N) * H
    xx, yy = np.meshgrid(x, x)  # rows = y, columns = x
    sx, cx = np.sin(kx * xx + phase), np.cos(kx * xx + phase)
    sy, cy = np.sin(ky * yy), np.cos(ky * yy)
    exact = {
        "value": sx * cy,
        "dx": kx * cx * cy,
        "dy": -ky * sx * sy,
        "dxx": -(kx**2) * sx * cy,
        "dyy": -(ky**2) * sx * cy,
        "dxy": -kx * ky * cx * sy,
    }
    exact["laplacian"] = exact["dxx"] + exact["dyy"]
    exact["biharmonic"] = (kx**2 + ky**2) ** 2 * sx * cy
    return exact


def _widths(kernel, derivatives, spacing=H):
    order = max(max(o) for name in derivatives for _, o in derivative_terms(name, 2))
    smallest = min_width(kernel, order, spacing)
    return [smallest * f for f in (1.0, 1.6, 2.5)]


@pytest.mark.parametrize("kernel", ["polynomial", "gaussian", "bump"])
@pytest.mark.parametrize("order", [0, 1, 2, 3, 4])
def test_discrete_moments_are_exact(kernel, order):
    spacing = 0.05
    width = min_width(kernel, order, spacing) * 1.05
    offsets, weights = kernel_weights(kernel, order, width, spacing)
    for q in range(order + 1):
        moment = float(np.sum(weights * (-offsets) ** q))
        target = math.factorial(order) if q == order else 0.0
        scale = math.factorial(order) / width ** (order - q) if q < order else target
        assert abs(moment - target) <= 1e-6 * scale, (q, moment)


@pytest.mark.parametrize(
    "kernel,derivatives",
    [("polynomial", ALL_2D), ("gaussian", ALL_2D), ("bump", LOW_ORDER_2D)],
)
@pytest.mark.parametrize("boundary", ["periodic", "reflect", "valid"])
def test_matches_analytically_mollified_field(kernel, derivatives, boundary):
    kx, ky = 2 * math.pi / BOX * 2, 2 * math.pi / BOX * 3
    exact = _periodic_field(kx, ky)
    u = torch.from_numpy(exact["value"])[None, None]
    for width in _widths(kernel, derivatives):
        if kernel == "bump" and width > BOX / 2 - H:
            continue
        layer = MollifierLayer(
            kernel=kernel,
            width=width,
            spacing=(H, H),
            derivatives=derivatives,
            boundary=boundary,
            dtype=torch.float64,
        )
        out = layer(u)
        attenuation = _transfer(kernel, width, kx) * _transfer(kernel, width, ky)
        ry, rx = layer.radius_pixels
        for name in derivatives:
            truth = exact[name] * attenuation
            if boundary == "valid":
                truth = truth[ry:-ry, rx:-rx]
                got = out[name][0, 0].numpy()
            elif boundary == "reflect":  # mirror images only matter within one radius
                truth = truth[ry:-ry, rx:-rx]
                got = out[name][0, 0].numpy()[ry:-ry, rx:-rx]
            else:
                got = out[name][0, 0].numpy()
            err = np.abs(got - truth).max() / np.abs(truth).max()
            assert err < 1e-4, (kernel, width, name, err)


def test_smoothing_bias_shrinks_quadratically_with_width():
    kx, ky = 2 * math.pi / BOX * 1, 2 * math.pi / BOX * 1
    exact = _periodic_field(kx, ky)
    u = torch.from_numpy(exact["value"])[None, None]
    errors = []
    for width in (3.2, 1.6, 0.8):
        spacing = H  # fixed grid: the bias is the mollifier's second moment, O(width^2)
        out = MollifierLayer(
            width=width,
            spacing=(spacing, spacing),
            boundary="periodic",
            derivatives=("laplacian", "biharmonic"),
            dtype=torch.float64,
        )(u)
        err = np.abs(out["biharmonic"][0, 0].numpy() - exact["biharmonic"]).max()
        errors.append(err / np.abs(exact["biharmonic"]).max())
    assert errors[0] > errors[1] > errors[2]
    for coarse, fine in zip(errors, errors[1:]):
        assert 3.0 < coarse / fine < 5.0, errors  # halving the width quarters the bias


def test_non_periodic_field_reflect_and_valid_interior():
    # incommensurate wave numbers: not periodic on the box, exact transfer holds in the interior
    kx, ky = 1.37, 0.91
    x = np.arange(N) * H
    xx, yy = np.meshgrid(x, x)
    u = np.cos(kx * xx + ky * yy) + 0.3 * xx - 0.02 * yy**2
    width = 0.8
    out_r = mollified_derivatives(u, width, (H, H), ("laplacian", "biharmonic"), boundary="reflect")
    out_v = mollified_derivatives(u, width, (H, H), ("laplacian", "biharmonic"), boundary="valid")
    att = float(_eta_hat("polynomial", 12, np.array([kx * width]))[0]) * float(
        _eta_hat("polynomial", 12, np.array([ky * width]))[0]
    )
    # the quadratic term is reproduced exactly (moment conditions): laplacian adds -0.04
    truth_lap = -(kx**2 + ky**2) * np.cos(kx * xx + ky * yy) * att - 0.04
    truth_bih = (kx**2 + ky**2) ** 2 * np.cos(kx * xx + ky * yy) * att
    r = int(width / H)
    inner = (slice(r, -r), slice(r, -r))
    for got, truth in (
        (out_r["laplacian"][inner], truth_lap[inner]),
        (out_r["biharmonic"][inner], truth_bih[inner]),
        (out_v["laplacian"], truth_lap[inner]),
        (out_v["biharmonic"], truth_bih[inner]),
    ):
        assert got.shape == truth.shape
        assert np.abs(got - truth).max() < 1e-4 * np.abs(truth).max()


def test_noise_mollified_biharmonic_beats_finite_differences():
    rng = np.random.default_rng(0)
    kx, ky = 2 * math.pi / BOX * 1, 2 * math.pi / BOX * 1
    exact = _periodic_field(kx, ky)
    noisy = exact["value"] + 0.01 * rng.standard_normal(exact["value"].shape)
    out = mollified_derivatives(noisy, 1.0, (H, H), ("biharmonic",), boundary="periodic")

    def lap(f):
        return (
            np.roll(f, 1, 0) + np.roll(f, -1, 0) + np.roll(f, 1, 1) + np.roll(f, -1, 1) - 4 * f
        ) / H**2

    fd = lap(lap(noisy))
    truth = exact["biharmonic"]
    err_moll = np.sqrt(np.mean((out["biharmonic"] - truth) ** 2))
    err_fd = np.sqrt(np.mean((fd - truth) ** 2))
    assert err_fd / err_moll >= 100, (err_fd, err_moll)


def test_one_dimensional_fourth_derivative():
    n, length = 512, 20.0
    h = length / n
    k = 2 * math.pi / length * 3
    x = np.arange(n) * h
    u = torch.from_numpy(np.sin(k * x))[None, None]
    layer = MollifierLayer(
        ndim=1,
        width=0.5,
        spacing=h,
        boundary="periodic",
        derivatives=("value", "dx", "dxx", "dxxx", "dxxxx"),
        dtype=torch.float64,
    )
    out = layer(u)
    att = float(_eta_hat("polynomial", 12, np.array([k * 0.5]))[0])
    truths = {
        "value": np.sin(k * x),
        "dx": k * np.cos(k * x),
        "dxx": -(k**2) * np.sin(k * x),
        "dxxx": -(k**3) * np.cos(k * x),
        "dxxxx": k**4 * np.sin(k * x),
    }
    for name, truth in truths.items():
        got = out[name][0, 0].numpy()
        assert np.abs(got - att * truth).max() < 1e-4 * np.abs(truth).max(), name


def test_direct_and_fft_paths_agree_and_dtypes():
    u = torch.randn(2, 3, 64, 70, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for boundary in ("reflect", "valid", "periodic"):
        kw = dict(width=0.6, spacing=(0.05, 0.05), boundary=boundary, dtype=torch.float64)
        a = MollifierLayer(method="direct", **kw)(u)
        b = MollifierLayer(method="fft", **kw)(u)
        for name in a:
            assert a[name].shape == b[name].shape
            scale = a[name].abs().max()
            assert (a[name] - b[name]).abs().max() <= 1e-10 * scale, name
    c = MollifierLayer(width=0.6, spacing=(0.05, 0.05), dtype=torch.float32)(u.float())
    d = MollifierLayer(width=0.6, spacing=(0.05, 0.05), dtype=torch.float64)(u)
    for name in c:
        assert c[name].dtype == torch.float32
        assert (c[name].double() - d[name]).abs().max() <= 1e-4 * d[name].abs().max()


def test_valid_boundary_crops_by_radius():
    layer = MollifierLayer(width=1.0, spacing=(0.05, 0.1), boundary="valid")
    ry, rx = layer.radius_pixels
    assert (ry, rx) == (19, 9)
    out = layer(torch.zeros(1, 1, 60, 30))
    assert out["value"].shape == (1, 1, 60 - 2 * ry, 30 - 2 * rx)


def test_too_narrow_width_is_refused_with_the_smallest_width():
    smallest = min_width("polynomial", 4, 0.05)
    with pytest.raises(ValueError, match="smallest width") as info:
        MollifierLayer(width=smallest * 0.8, spacing=(0.05, 0.05))
    assert f"{smallest:.4g}" in str(info.value)
    # the bump needs far more samples for 4th derivatives than the polynomial kernel
    assert min_width("bump", 4, 0.05) > 10 * smallest
    MollifierLayer(width=smallest * 0.8, spacing=(0.05, 0.05), derivatives=("value", "dx"))


def test_gradcheck_input_and_learnable_width():
    layer = MollifierLayer(
        width=8.5,
        spacing=(1.0, 1.0),
        derivatives=("value", "dx", "biharmonic"),
        dtype=torch.float64,
    )
    x = torch.randn(1, 2, 22, 20, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: tuple(layer(t).values()), (x,))
    learn = MollifierLayer(
        width=9.3,
        spacing=(1.0, 1.0),
        derivatives=("biharmonic",),
        learnable_width=True,
        dtype=torch.float64,
    )
    fixed = x.detach()
    assert torch.autograd.gradcheck(
        lambda lw: learn._kernel(0, 4, torch.float64, "cpu") * lw.exp() / lw.exp(),
        (learn.log_width,),
    )
    learn(fixed)["biharmonic"].pow(2).sum().backward()
    assert learn.log_width.grad is not None and torch.isfinite(learn.log_width.grad)


def test_width_schedule_and_set_width():
    schedule = WidthSchedule(1.0, 0.4, total_steps=100)
    widths = [schedule(s) for s in range(0, 101, 10)]
    assert widths[0] == pytest.approx(1.0) and widths[-1] == pytest.approx(0.4)
    assert all(a >= b for a, b in zip(widths, widths[1:]))
    layer = MollifierLayer(width=1.0, spacing=(0.05, 0.05))
    r_before = layer.radius_pixels
    layer.set_width(schedule(100))
    assert layer.width == pytest.approx(0.4) and layer.radius_pixels < r_before
    with pytest.raises(ValueError, match="too narrow"):
        layer.set_width(0.1)


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="unknown derivative"):
        MollifierLayer(derivatives=("dz",), spacing=(0.05, 0.05))
    with pytest.raises(ValueError, match="expects a"):
        MollifierLayer(width=0.5, spacing=(0.05, 0.05))(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="unknown mollifier kernel"):
        MollifierLayer(kernel="box", spacing=(0.05, 0.05))
    with pytest.raises(ValueError, match="too short"):
        MollifierLayer(width=1.0, spacing=(0.05, 0.05))(torch.zeros(1, 1, 10, 10))


def test_default_width_is_the_smallest_resolving_one_with_margin():
    layer = MollifierLayer(spacing=(0.05, 0.05))
    assert layer.width == pytest.approx(1.25 * min_width("polynomial", 4, 0.05))


def test_numpy_in_numpy_out_shapes():
    u = np.random.default_rng(0).standard_normal((3, 40, 50))
    out = mollified_derivatives(u, 0.5, (0.05, 0.05), ("value", "laplacian"))
    assert isinstance(out["value"], np.ndarray) and out["value"].shape == (3, 40, 50)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    u = torch.randn(1, 2, 64, 64, dtype=torch.float64)
    layer = MollifierLayer(width=0.6, spacing=(0.05, 0.05), dtype=torch.float64)
    cpu = layer(u)
    gpu = layer.to("cuda")(u.cuda())
    for name in cpu:
        assert torch.allclose(cpu[name], gpu[name].cpu(), rtol=1e-9, atol=1e-9)
