"""MollifierLayer: derivatives of a mollified field by one convolution with kernel derivatives.

``d^k (eta * u) = (d^k eta) * u``: instead of differentiating a network's output recursively,
convolve it once with analytic derivatives of a smooth compact kernel ``eta``. Kernels are
tensor products ``eta(y, x) = k(y) k(x)``, so every mixed derivative is separable and the
laplacian / biharmonic are short sums of separable terms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .kernels import (
    DEFAULT_EXPONENT,
    DEFAULT_KERNEL,
    DEFAULT_RTOL,
    MAX_ORDER,
    _check_kernel,
    _moment_correct,
    kernel_weights,
    min_width,
    profile_derivative,
    profile_integral,
    support_radius,
)

BOUNDARIES = ("valid", "reflect", "periodic")
_AXIS_LETTERS = {1: "x", 2: "yx"}  # letters of the axes in array order (..., H, W)
#: Kernels at least this many taps long are applied by FFT when ``method="auto"``.
#: Measured with benchmarks/fft_crossover.py on a 2-core CPU (docs/benchmarks.md): FFT is faster
#: from 9 taps with 1 thread; with 2 threads from 7-11 taps on 128-256 px images, while for
#: 64 px float64 images conv1d stays faster up to 25 taps (both under 0.11 ms there).
FFT_MIN_TAPS = 11


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
        terms = []
        for i in range(ndim):
            for j in range(ndim):
                orders = tuple(unit[i][a] + unit[j][a] for a in range(ndim))
                terms.append((1.0, orders))
        merged: dict[tuple[int, ...], float] = {}
        for c, o in terms:
            merged[o] = merged.get(o, 0.0) + c
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


class WidthSchedule:
    """Geometric (or linear) shrink of the mollifier width over training: wide first, then narrow.

    ``schedule(step)`` returns the width for a step; hold ``start`` for ``hold_fraction`` of
    the steps, then move to ``end`` by ``final_fraction`` of the steps and keep it.
    """

    def __init__(
        self,
        start: float,
        end: float,
        total_steps: int,
        hold_fraction: float = 0.1,
        final_fraction: float = 0.7,
        kind: str = "geometric",
    ):
        if start <= 0 or end <= 0 or total_steps <= 0:
            raise ValueError("WidthSchedule needs positive start, end and total_steps")
        if kind not in ("geometric", "linear"):
            raise ValueError(f"schedule kind must be 'geometric' or 'linear', found {kind!r}")
        self.start, self.end, self.total_steps = float(start), float(end), int(total_steps)
        self.hold_fraction, self.final_fraction, self.kind = hold_fraction, final_fraction, kind

    def __call__(self, step: int) -> float:
        t0 = self.hold_fraction * self.total_steps
        t1 = max(self.final_fraction * self.total_steps, t0 + 1)
        t = min(max((step - t0) / (t1 - t0), 0.0), 1.0)
        if self.kind == "geometric":
            return self.start * (self.end / self.start) ** t
        return self.start + (self.end - self.start) * t


class MollifierLayer(nn.Module):
    """Values and derivatives of the mollified field ``eta * u`` on a regular grid.

    Parameters
    ----------
    ndim : {1, 2}
        Spatial dimensions. Input is (B, C, L) for 1D and (B, C, H, W) for 2D.
    kernel : {"polynomial", "gaussian", "bump"}
        Profile (see :mod:`napari_mollifier.mollifier.kernels`). "polynomial" (``(1-s^2)^12``)
        is the default: accurate derivatives up to 4th order from ~8 pixels of support radius.
    width : float or None
        Support radius ("bump", "polynomial") or sigma ("gaussian"), in the units of ``spacing``.
        None picks 1.25 x the smallest width that resolves the requested derivatives.
    spacing : float or sequence of float
        Grid spacing per spatial axis in array order, ``(dy, dx)`` in 2D.
    derivatives : sequence of str
        Names to compute (see :func:`derivative_terms`).
    boundary : {"reflect", "valid", "periodic"}
        "reflect" mirrors the field at the border (odd derivatives vanish on it), "periodic"
        wraps around, "valid" returns only the ``radius_pixels`` -cropped interior.
    method : {"auto", "direct", "fft"}
        Separable direct convolution or FFT convolution (same result to float tolerance);
        "auto" uses FFT for kernels of at least ``FFT_MIN_TAPS`` taps.
    learnable_width : bool
        Make the width a trainable parameter (kept at or above the smallest accepted width).
    rtol : float
        Resolution tolerance of the sampled kernel derivatives (see ``kernels.min_width``);
        narrower widths are refused with a message that names the smallest acceptable width.
    exponent : int
        Exponent ``p`` of the polynomial kernel.
    dtype : torch.dtype
        Storage dtype of the kernel buffers (they follow ``.to()``; inputs of another dtype
        get kernels cast to theirs).

    Shapes
    ------
    ``layer(u)`` with u (B, C, H, W) returns a dict ``name -> (B, C, H', W')`` tensor, with
    ``H' = H, W' = W`` except for ``boundary="valid"`` (``H - 2 R_y``, ``W - 2 R_x``). Channels
    are processed independently (depthwise).
    """

    def __init__(
        self,
        ndim: int = 2,
        kernel: str = DEFAULT_KERNEL,
        width: float | None = None,
        spacing: float | Sequence[float] = 1.0,
        derivatives: Sequence[str] = (
            "value",
            "dx",
            "dy",
            "dxx",
            "dyy",
            "dxy",
            "laplacian",
            "biharmonic",
        ),
        boundary: str = "reflect",
        method: str = "auto",
        learnable_width: bool = False,
        rtol: float = DEFAULT_RTOL,
        exponent: int = DEFAULT_EXPONENT,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        _check_kernel(kernel, exponent)
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, found {boundary!r}")
        if method not in ("auto", "direct", "fft"):
            raise ValueError(f"method must be 'auto', 'direct' or 'fft', found {method!r}")
        if isinstance(spacing, (int, float)):
            spacing = (float(spacing),) * ndim
        spacing = tuple(float(h) for h in spacing)
        if len(spacing) != ndim or min(spacing) <= 0:
            raise ValueError(f"spacing must be {ndim} positive numbers, found {spacing}")
        if ndim == 1 and isinstance(derivatives, Sequence) and "dy" in derivatives:
            raise ValueError("1D layers only have 'x' derivatives")
        self.ndim, self.kernel, self.boundary, self.method = ndim, kernel, boundary, method
        self.spacing, self.rtol, self.exponent = spacing, float(rtol), int(exponent)
        self.derivatives = tuple(derivatives)
        if not self.derivatives:
            raise ValueError("derivatives must name at least one output")
        self.terms = {name: derivative_terms(name, ndim) for name in self.derivatives}
        # highest order needed along each axis decides the resolution requirement
        self.max_order = tuple(
            max(o[a] for terms in self.terms.values() for _, o in terms) for a in range(ndim)
        )
        self.learnable_width = learnable_width
        if width is None:
            width = 1.25 * self.min_width()
        self._check_width(float(width))
        if learnable_width:
            self.log_width = nn.Parameter(torch.tensor(math.log(width), dtype=torch.float64))
        else:
            self.register_buffer("_width", torch.tensor(float(width), dtype=torch.float64))
        self._dtype = dtype
        self._build_buffers(float(width))

    # --- width handling ------------------------------------------------------------------
    def min_width(self) -> float:
        """Smallest width this layer accepts (max over axes of the per-order minimum)."""
        return max(
            min_width(self.kernel, self.max_order[a], self.spacing[a], self.rtol, self.exponent)
            for a in range(self.ndim)
        )

    def _check_width(self, width: float) -> None:
        if not width > 0 or not math.isfinite(width):
            raise ValueError(f"mollifier width must be a positive number, found {width!r}")
        smallest = self.min_width()
        if width < smallest * (1 - 1e-9):
            order = max(self.max_order)
            raise ValueError(
                f"mollifier width {width:.4g} is too narrow for order-{order} derivatives with the "
                f"{self.kernel!r} kernel at spacing {min(self.spacing):.4g}: the smallest width "
                f"that resolves them (relative error <= {self.rtol:g}) is {smallest:.4g} "
                f"({smallest / min(self.spacing):.1f} grid spacings). Use a wider mollifier, a "
                f"finer grid, or the 'polynomial' / 'gaussian' kernel."
            )

    @property
    def width(self) -> float:
        """Current width (units of spacing)."""
        if self.learnable_width:
            return max(float(self.log_width.detach().exp()), self.min_width())
        return float(self._width)

    def set_width(self, width: float) -> None:
        """Change the width (e.g. from a :class:`WidthSchedule`); refuses too-narrow widths."""
        width = float(width)
        self._check_width(width)
        if self.learnable_width:
            with torch.no_grad():
                self.log_width.fill_(math.log(width))
        else:
            self._width.fill_(width)
            self._build_buffers(width)

    @property
    def radius_pixels(self) -> tuple[int, ...]:
        """Kernel radius in pixels per axis (what "valid" crops from each side)."""
        w = self.width
        return tuple(
            int(math.floor(support_radius(self.kernel, w) / h * (1 - 1e-12))) for h in self.spacing
        )

    def _build_buffers(self, width: float) -> None:
        """Fixed-width kernels: computed once in float64, stored as buffers."""
        self._fixed = {}
        if self.learnable_width:
            return
        for axis in range(self.ndim):
            for order in range(self.max_order[axis] + 1):
                _, w = kernel_weights(self.kernel, order, width, self.spacing[axis], self.exponent)
                name = f"_k{axis}_{order}"
                tensor = torch.as_tensor(w, dtype=self._dtype)
                if hasattr(self, name):
                    setattr(self, name, tensor.to(getattr(self, name).device))
                else:
                    self.register_buffer(name, tensor, persistent=False)

    def _kernel(self, axis: int, order: int, dtype, device) -> torch.Tensor:
        if not self.learnable_width:
            return getattr(self, f"_k{axis}_{order}").to(dtype=dtype, device=device)
        # differentiable in the width: sample the analytic derivative at the current width
        min_w = torch.tensor(self.min_width(), dtype=torch.float64, device=self.log_width.device)
        width = torch.maximum(self.log_width.exp(), min_w)
        h = self.spacing[axis]
        radius = int(
            math.floor(support_radius(self.kernel, float(width.detach())) / h * (1 - 1e-12))
        )
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=width.device) * h
        s = offsets / width
        z = profile_integral(self.kernel, self.exponent)
        weights = (
            h
            * profile_derivative(self.kernel, order, s, self.exponent)
            / (z * width ** (order + 1))
        )
        envelope = profile_derivative(self.kernel, 0, s, self.exponent).abs()
        weights = _moment_correct(weights, s, envelope, order, width)
        return weights.to(dtype=dtype, device=device)

    # --- forward -------------------------------------------------------------------------
    def forward(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        expected = 2 + self.ndim
        if u.dim() != expected:
            shape = "(B, C, L)" if self.ndim == 1 else "(B, C, H, W)"
            raise ValueError(
                f"MollifierLayer(ndim={self.ndim}) expects a {shape} tensor, "
                f"found shape {tuple(u.shape)}"
            )
        if not u.is_floating_point():
            u = u.to(self._dtype)
        needed = {o for terms in self.terms.values() for _, o in terms}
        cache: dict[tuple[int, ...], torch.Tensor] = {}
        # pass along the last axis first, then along the others, reusing partial results
        for orders in sorted(needed):
            cache[orders] = self._separable(u, orders, cache)
        out = {}
        for name, terms in self.terms.items():
            total = None
            for coef, orders in terms:
                term = cache[orders] if coef == 1.0 else coef * cache[orders]
                total = term if total is None else total + term
            out[name] = total
        return out

    def _separable(self, u, orders, cache):
        # partial key: orders along the trailing axes already applied, leading axes pending
        partial = u
        for axis in reversed(range(self.ndim)):
            key = ("partial", axis) + tuple(orders[axis:])
            if key in cache:
                partial = cache[key]
                continue
            kernel = self._kernel(axis, orders[axis], u.dtype, u.device)
            partial = self._conv_axis(partial, kernel, axis + 2)
            cache[key] = partial
        return partial

    def _conv_axis(self, x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
        """Convolve (true convolution) along tensor dimension ``dim`` with boundary handling."""
        taps = kernel.numel()
        radius = taps // 2
        length = x.shape[dim]
        moved = x.movedim(dim, -1)
        lead = moved.shape[:-1]
        flat = moved.reshape(-1, 1, length)
        if self.boundary == "reflect":
            if radius >= length:
                raise ValueError(
                    f"image axis of {length} pixels is too short for a mollifier radius of "
                    f"{radius} pixels with reflect boundary; use a smaller width or a larger image"
                )
            flat = F.pad(flat, (radius, radius), mode="reflect")
        elif self.boundary == "periodic":
            if radius > length:
                raise ValueError(
                    f"periodic axis of {length} pixels is shorter than the mollifier radius "
                    f"({radius} pixels)"
                )
            flat = F.pad(flat, (radius, radius), mode="circular")
        elif length <= 2 * radius:
            raise ValueError(
                f"image axis of {length} pixels leaves no valid output for a mollifier radius "
                f"of {radius} pixels"
            )
        use_fft = self.method == "fft" or (self.method == "auto" and taps >= FFT_MIN_TAPS)
        if use_fft:
            result = _fft_conv_valid(flat, kernel)
        else:
            result = F.conv1d(flat, kernel.flip(0).view(1, 1, -1))
        return result.reshape(*lead, result.shape[-1]).movedim(-1, dim)

    def extra_repr(self) -> str:
        return (
            f"ndim={self.ndim}, kernel={self.kernel!r}, width={self.width:.4g}, "
            f"spacing={self.spacing}, derivatives={self.derivatives}, boundary={self.boundary!r}"
        )


def _fft_conv_valid(flat: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid part of the linear convolution of (N, 1, L) rows with a (K,) kernel, by FFT."""
    length, taps = flat.shape[-1], kernel.numel()
    n_fft = _good_fft_size(length + taps - 1)
    spectrum = torch.fft.rfft(flat, n=n_fft) * torch.fft.rfft(kernel, n=n_fft)
    full = torch.fft.irfft(spectrum, n=n_fft)
    return full[..., taps - 1 : length]


def _good_fft_size(n: int) -> int:
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
    kernel: str = DEFAULT_KERNEL,
    boundary: str = "reflect",
    **layer_kwargs,
) -> dict:
    """Functional twin of :class:`MollifierLayer`.

    ``u`` may be a numpy array or a torch tensor of shape (H, W), (C, H, W) or (B, C, H, W) in
    2D (spatial dims = ``len(spacing)`` if spacing is a sequence, else 2), (L,) ... in 1D.
    numpy in -> float64 numpy out of the same leading shape; torch in -> torch out.
    """
    ndim = len(spacing) if isinstance(spacing, Sequence) else 2
    is_numpy = isinstance(u, np.ndarray)
    tensor = torch.from_numpy(np.asarray(u, dtype=np.float64)) if is_numpy else u
    extra = tensor.dim() - ndim
    if extra < 0 or extra > 2:
        raise ValueError(
            f"expected {ndim} spatial dims plus up to 2 leading dims, "
            f"found shape {tuple(tensor.shape)}"
        )
    lead = tensor.shape[:extra]
    batched = tensor.reshape((-1, 1) + tuple(tensor.shape[extra:])) if extra < 2 else tensor
    layer = MollifierLayer(
        ndim=ndim,
        kernel=kernel,
        width=width,
        spacing=spacing,
        derivatives=derivatives,
        boundary=boundary,
        dtype=tensor.dtype if tensor.is_floating_point() else torch.float64,
        **layer_kwargs,
    ).to(tensor.device)
    out = layer(batched)
    result = {}
    for name, value in out.items():
        value = value.reshape(tuple(lead) + tuple(value.shape[2:])) if extra < 2 else value
        result[name] = value.detach().cpu().numpy() if is_numpy else value
    return result
