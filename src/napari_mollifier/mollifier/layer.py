"""MollifierLayer: derivatives of a mollified field by one convolution with kernel derivatives.

``d^k (eta * u) = (d^k eta) * u``: instead of differentiating a network's output recursively,
convolve it once with analytic derivatives of a smooth compact kernel ``eta``. Kernels are
tensor products ``eta(y, x) = k(y) k(x)``, so every mixed derivative is separable and the
laplacian / biharmonic are short sums of separable terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .functional import (
    BOUNDARIES,
    METHODS,
    check_width,
    derivative_terms,
    max_orders,
    mollified_derivatives,
    mollify,
    smallest_width,
)
from .kernels import (
    DEFAULT_EXPONENT,
    DEFAULT_KERNEL,
    DEFAULT_RTOL,
    check_kernel,
    kernel_weights,
    radius_pixels,
)

__all__ = ["MollifierLayer", "WidthSchedule", "derivative_terms", "mollified_derivatives"]


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
        *,
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
        check_kernel(kernel, exponent)
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, found {boundary!r}")
        if method not in METHODS:
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
        self.max_order = max_orders(self.terms, ndim)
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
        return smallest_width(self.kernel, self.max_order, self.spacing, self.rtol, self.exponent)

    def _check_width(self, width: float) -> None:
        check_width(
            width, self.min_width(), self.kernel, max(self.max_order), self.spacing, self.rtol
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
        return tuple(radius_pixels(self.kernel, w, h) for h in self.spacing)

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
        _, weights = kernel_weights(self.kernel, order, width, self.spacing[axis], self.exponent)
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

        def kernels(axis: int, order: int) -> torch.Tensor:
            return self._kernel(axis, order, u.dtype, u.device)

        return mollify(u, kernels, self.terms, self.ndim, self.boundary, self.method)

    def extra_repr(self) -> str:
        return (
            f"ndim={self.ndim}, kernel={self.kernel!r}, width={self.width:.4g}, "
            f"spacing={self.spacing}, derivatives={self.derivatives}, boundary={self.boundary!r}"
        )
