"""The engine's functional form: derivatives of ``eta * u`` by separable convolutions.

``d^k (eta * u) = (d^k eta) * u``: kernels are tensor products ``eta(y, x) = k(y) k(x)``, so
every mixed derivative is a sequence of 1D convolutions (one per axis) and the laplacian /
biharmonic are short sums of such terms. :func:`mollified_derivatives` is the entry point;
:class:`~napari_mollifier.mollifier.layer.MollifierLayer` wraps the same functions with kernels
kept as buffers (and a learnable width).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .kernels import (
    DEFAULT_EXPONENT,
    DEFAULT_KERNEL,
    DEFAULT_RTOL,
    MAX_ORDER,
    check_kernel,
    kernel_weights,
    min_width,
)

BOUNDARIES = ("valid", "reflect", "periodic")
_AXIS_LETTERS = {1: "x", 2: "yx"}  # letters of the axes in array order (..., H, W)
#: Kernels at least this many taps long are applied by FFT when ``method="auto"``.
#: Measured with benchmarks/fft_crossover.py on a 2-core CPU (docs/benchmarks.md): FFT is faster
#: from 9 taps with 1 thread; with 2 threads from 7-11 taps on 128-256 px images, while for
#: 64 px float64 images conv1d stays faster up to 25 taps (both under 0.11 ms there).
FFT_MIN_TAPS = 11
METHODS = ("auto", "direct", "fft")

Terms = dict[str, list[tuple[float, tuple[int, ...]]]]


def derivative_terms(name: str, ndim: int) -> list[tuple[float, tuple[int, ...]]]:
    """Decompose a derivative name into ``[(coefficient, orders per axis), ...]``.

    Axis orders follow array order: for ``ndim=2`` ``(order_y, order_x)`` (rows, columns).
    Names: ``"value"``, ``"laplacian"``, ``"biharmonic"``, and ``"d"`` followed by axis letters
    (``"dx"``, ``"dyy"``, ``"dxxyy"``, ...; 1D uses ``x`` only, up to ``"dxxxx"``).
    """
    if ndim not in _AXIS_LETTERS:
        raise ValueError(f"ndim must be 1 or 2, found {ndim}")
    letters = _AXIS_LETTERS[ndim]
    unit = [tuple(2 if i == j else 0 for i in range(ndim)) for j in range(ndim)]
    if name == "value":
        return [(1.0, (0,) * ndim)]
    if name == "laplacian":
        return [(1.0, u) for u in unit]
    if name == "biharmonic":
        merged: dict[tuple[int, ...], float] = {}
        for i in range(ndim):
            for j in range(ndim):
                orders = tuple(unit[i][a] + unit[j][a] for a in range(ndim))
                merged[orders] = merged.get(orders, 0.0) + 1.0
        return [(c, o) for o, c in merged.items()]
    match = re.fullmatch(rf"d([{letters}]+)", name)
    if match is None:
        raise ValueError(
            f"unknown derivative {name!r}: expected 'value', 'laplacian', 'biharmonic' or "
            f"'d' + axis letters from {letters!r} (e.g. 'dx', 'dxx', 'dxxxx')"
        )
    orders = tuple(match.group(1).count(letter) for letter in letters)
    if sum(orders) > MAX_ORDER or max(orders) > MAX_ORDER:
        raise ValueError(f"derivative {name!r} exceeds the supported order {MAX_ORDER}")
    return [(1.0, orders)]


def max_orders(terms: Terms, ndim: int) -> tuple[int, ...]:
    """Highest derivative order needed along each axis (decides the resolution needed)."""
    return tuple(max(o[a] for t in terms.values() for _, o in t) for a in range(ndim))


def smallest_width(kernel, orders, spacing, rtol=DEFAULT_RTOL, exponent=DEFAULT_EXPONENT):
    """Smallest width resolving ``orders`` (per axis) on grid ``spacing`` (per axis)."""
    return max(min_width(kernel, o, h, rtol, exponent) for o, h in zip(orders, spacing))


def check_width(width, smallest, kernel: str, order: int, spacing, rtol=DEFAULT_RTOL) -> None:
    """ValueError naming the smallest acceptable width when ``width`` is below it."""
    if not width > 0 or not math.isfinite(width):
        raise ValueError(f"mollifier width must be a positive number, found {width!r}")
    if width < smallest * (1 - 1e-9):
        raise ValueError(
            f"mollifier width {width:.4g} is too narrow for order-{order} derivatives with the "
            f"{kernel!r} kernel at spacing {min(spacing):.4g}: the smallest width that resolves "
            f"them (relative error <= {rtol:g}) is {smallest:.4g} "
            f"({smallest / min(spacing):.1f} grid spacings). Use a wider mollifier, a finer grid, "
            "or the 'polynomial' / 'gaussian' kernel."
        )


def mollify(
    u: torch.Tensor,
    kernels: Callable[[int, int], torch.Tensor],
    terms: Terms,
    ndim: int,
    boundary: str = "reflect",
    method: str = "auto",
) -> dict[str, torch.Tensor]:
    """``{name: sum of coef * (d^orders eta) * u}`` for u (B, C, *spatial).

    ``kernels(axis, order)`` gives the 1D kernel (true convolution taps) along ``axis``.
    Passes go along the last axis first, reusing partial results between derivatives.
    """
    needed = {o for t in terms.values() for _, o in t}
    cache: dict = {}
    for orders in sorted(needed):
        cache[orders] = _separable(u, orders, cache, kernels, ndim, boundary, method)
    out = {}
    for name, name_terms in terms.items():
        total = None
        for coef, orders in name_terms:
            term = cache[orders] if coef == 1.0 else coef * cache[orders]
            total = term if total is None else total + term
        out[name] = total
    return out


def _separable(u, orders, cache, kernels, ndim, boundary, method):
    # partial key: orders along the trailing axes already applied, leading axes pending
    partial = u
    for axis in reversed(range(ndim)):
        key = ("partial", axis) + tuple(orders[axis:])
        if key in cache:
            partial = cache[key]
            continue
        partial = conv_axis(partial, kernels(axis, orders[axis]), axis + 2, boundary, method)
        cache[key] = partial
    return partial


def conv_axis(x, kernel, dim: int, boundary: str = "reflect", method: str = "auto"):
    """Convolve (true convolution) along tensor dimension ``dim`` with boundary handling."""
    taps = kernel.numel()
    radius = taps // 2
    length = x.shape[dim]
    moved = x.movedim(dim, -1)
    lead = moved.shape[:-1]
    flat = _pad(moved.reshape(-1, 1, length), radius, length, boundary)
    use_fft = method == "fft" or (method == "auto" and taps >= FFT_MIN_TAPS)
    if use_fft:
        result = fft_conv_valid(flat, kernel)
    else:
        result = F.conv1d(flat, kernel.flip(0).view(1, 1, -1))
    return result.reshape(*lead, result.shape[-1]).movedim(-1, dim)


def _pad(flat, radius: int, length: int, boundary: str):
    if boundary == "reflect":
        if radius >= length:
            raise ValueError(
                f"image axis of {length} pixels is too short for a mollifier radius of "
                f"{radius} pixels with reflect boundary; use a smaller width or a larger image"
            )
        return F.pad(flat, (radius, radius), mode="reflect")
    if boundary == "periodic":
        if radius > length:
            raise ValueError(
                f"periodic axis of {length} pixels is shorter than the mollifier radius "
                f"({radius} pixels)"
            )
        return F.pad(flat, (radius, radius), mode="circular")
    if length <= 2 * radius:
        raise ValueError(
            f"image axis of {length} pixels leaves no valid output for a mollifier radius "
            f"of {radius} pixels"
        )
    return flat


def fft_conv_valid(flat: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid part of the linear convolution of (N, 1, L) rows with a (K,) kernel, by FFT."""
    length, taps = flat.shape[-1], kernel.numel()
    n_fft = good_fft_size(length + taps - 1)
    spectrum = torch.fft.rfft(flat, n=n_fft) * torch.fft.rfft(kernel, n=n_fft)
    full = torch.fft.irfft(spectrum, n=n_fft)
    return full[..., taps - 1 : length]


def good_fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast sizes for pocketfft / cuFFT)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def mollified_derivatives(
    u,
    width: float,
    spacing: float | Sequence[float],
    derivatives: Sequence[str] = ("value", "laplacian", "biharmonic"),
    *,
    kernel: str = DEFAULT_KERNEL,
    boundary: str = "reflect",
    method: str = "auto",
    rtol: float = DEFAULT_RTOL,
    exponent: int = DEFAULT_EXPONENT,
) -> dict:
    """Derivatives of the mollified field ``eta * u`` (the functional form of the engine).

    ``u`` may be a numpy array or a torch tensor of shape (H, W), (C, H, W) or (B, C, H, W) in
    2D (spatial dims = ``len(spacing)`` if spacing is a sequence, else 2), (L,) ... in 1D.
    numpy in -> float64 numpy out of the same leading shape; torch in -> torch out. ``width``
    is the support radius (sigma for "gaussian") in the units of ``spacing``.
    """
    ndim = len(spacing) if isinstance(spacing, Sequence) else 2
    spacing = (
        tuple(float(h) for h in spacing)
        if isinstance(spacing, Sequence)
        else (float(spacing),) * ndim
    )
    _check_arguments(kernel, exponent, boundary, method, spacing, ndim)
    is_numpy = isinstance(u, np.ndarray)
    tensor = torch.from_numpy(np.asarray(u, dtype=np.float64)) if is_numpy else u
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    extra = tensor.dim() - ndim
    if extra < 0 or extra > 2:
        raise ValueError(
            f"expected {ndim} spatial dims plus up to 2 leading dims, "
            f"found shape {tuple(tensor.shape)}"
        )
    terms = {name: derivative_terms(name, ndim) for name in derivatives}
    orders = max_orders(terms, ndim)
    smallest = smallest_width(kernel, orders, spacing, rtol, exponent)
    check_width(float(width), smallest, kernel, max(orders), spacing, rtol)
    taps: dict[tuple[int, int], torch.Tensor] = {}

    def kernels(axis: int, order: int) -> torch.Tensor:
        if (axis, order) not in taps:
            _, w = kernel_weights(kernel, order, float(width), spacing[axis], exponent)
            taps[axis, order] = torch.as_tensor(w, dtype=tensor.dtype, device=tensor.device)
        return taps[axis, order]

    lead = tensor.shape[:extra]
    batched = tensor.reshape((-1, 1) + tuple(tensor.shape[extra:])) if extra < 2 else tensor
    out = mollify(batched, kernels, terms, ndim, boundary, method)
    result = {}
    for name, value in out.items():
        value = value.reshape(tuple(lead) + tuple(value.shape[2:])) if extra < 2 else value
        result[name] = value.detach().cpu().numpy() if is_numpy else value
    return result


def _check_arguments(kernel, exponent, boundary, method, spacing, ndim) -> None:
    check_kernel(kernel, exponent)
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, found {boundary!r}")
    if method not in METHODS:
        raise ValueError(f"method must be 'auto', 'direct' or 'fft', found {method!r}")
    if len(spacing) != ndim or min(spacing) <= 0:
        raise ValueError(f"spacing must be {ndim} positive numbers, found {spacing}")
