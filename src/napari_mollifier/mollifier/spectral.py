"""Mollified derivatives at many widths from one transform of the extended fields.

:func:`~napari_mollifier.mollifier.boundary_derivatives` extends the fields across the walls and
runs separable 1D convolutions for every width and derivative. A width ladder (the direct
estimator's automatic width) asks for the same fields at ten widths: here the fields are
extended once, for the largest kernel radius, and transformed once (a 2D real FFT); every
``(d^k eta) * u`` at any width up to that radius is then the spectrum times the kernel's
transfer function (a separable outer product of 1D transfers) and one inverse FFT per output,
and linear combinations of derivatives of several fields (e.g. ``eta * phi_h - (lap eta) *
mu / 2``) cost one inverse FFT in all.

The result is the valid part of the linear convolution with the sampled kernels of
:func:`~napari_mollifier.mollifier.kernel_weights`, as in :func:`boundary_derivatives`: the
circular convolution of the extended array (size >= image + 2 R) is free of wrap-around for
every image pixel, because the kernel radius is at most R. The extension for the largest radius
equals the one for a smaller radius within that radius of the image, except where the mask's
reflection finds a nearer mask pixel further out in the extension (a nucleus cut by an image
border): there the values lean on a wider neighbourhood. Float64 and torch (its thread count
applies), numpy in and out.
"""

from __future__ import annotations

import numpy as np

from .boundary import _check, extension_operator, radius_pixels, unknown_table, window_sums
from .functional import check_width, derivative_terms, good_fft_size, smallest_width
from .kernels import DEFAULT_KERNEL, kernel_weights

#: ``{channel: {derivative name: coefficient}}``: the linear combination of mollified
#: derivatives of the stack's channels that one call returns.
Combination = dict[int, dict[str, float]]


class SpectralStack:
    """(C, H, W) fields with the mask outline a no-flux wall, ready for any width up to
    ``max_width``.

    Parameters
    ----------
    stack : ndarray (C, H, W) or (H, W)
        Fields (values outside ``mask`` are replaced by their reflections).
    mask : ndarray (H, W) bool
        The nucleus; its outline is the envelope.
    spacing : float
        Grid spacing (model units).
    max_width : float
        Largest mollifier width (model units) that will be asked for.
    image_border, kernel, method
        As in :func:`~napari_mollifier.mollifier.boundary_derivatives`.
    """

    def __init__(
        self,
        stack,
        mask,
        spacing: float,
        max_width: float,
        image_border: str = "open",
        *,
        kernel: str = DEFAULT_KERNEL,
        method: str = "sdf",
    ):
        import torch

        stack, mask = _check(stack, mask, image_border)
        self.mask, self.spacing, self.kernel = mask, float(spacing), kernel
        self.radius = radius_pixels(kernel, max_width, self.spacing)
        self.operator = extension_operator(mask, self.radius, image_border, method)
        extended = self.operator.apply(stack)
        self.fft_shape = tuple(good_fft_size(n) for n in extended.shape[-2:])
        self.spectra = torch.fft.rfft2(torch.from_numpy(extended), s=self.fft_shape)
        self._transfers: dict = {}
        self._unknown_count = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    def transform(self, field) -> SpectralStack:
        """The same mask, walls and radius for another (C, H, W) or (H, W) field."""
        import torch

        other = object.__new__(SpectralStack)
        other.__dict__.update(self.__dict__)
        values, _ = _check(field, self.mask, "open")
        extended = self.operator.apply(values)
        other.spectra = torch.fft.rfft2(torch.from_numpy(extended), s=self.fft_shape)
        return other

    def combine(self, width: float, combination: Combination) -> np.ndarray:
        """``sum coef * (D eta) * channel`` on the image grid (H, W) at ``width``."""
        import torch

        self._check_width(width, combination)
        total = None
        for channel, derivatives in combination.items():
            # the transfer is real (even kernels): scale the (re, im) pairs in place
            spectrum = torch.view_as_real(self.spectra[channel])
            transfer = self._transfer(width, derivatives)[..., None]
            if total is None:  # the first product starts the sum (no pass over zeros)
                total = spectrum * transfer
            else:
                total.addcmul_(spectrum, transfer)
        full = torch.fft.irfft2(torch.view_as_complex(total), s=self.fft_shape)
        r, (h, w) = self.radius, self.shape
        return full[r : r + h, r : r + w].numpy()

    def valid(self, width: float) -> np.ndarray:
        """Mask pixels whose whole kernel support at ``width`` is known."""
        if self.operator.known.all():
            return self.mask.copy()
        if self._unknown_count is None:  # one table for every width
            self._unknown_count = unknown_table(self.operator.known)
        counts = window_sums(self._unknown_count, self.radius, self._radius(width), self.shape)
        return self.mask & (counts == 0)

    def reflected_weight(self, width: float) -> np.ndarray:
        """Fraction of ``|eta|`` on reflected pixels (as in :func:`boundary_derivatives`)."""
        reflected = self.operator.reflected
        if not reflected.any():
            return np.zeros(self.shape)
        from scipy import ndimage

        _, taps = kernel_weights(self.kernel, 0, width, self.spacing)
        taps = np.abs(taps) / np.abs(taps).sum()
        weight = ndimage.convolve1d(reflected.astype(np.float64), taps, axis=0, mode="constant")
        weight = ndimage.convolve1d(weight, taps, axis=1, mode="constant")
        big, (h, w) = self.radius, self.shape
        return weight[big : big + h, big : big + w]

    def _radius(self, width: float) -> int:
        r = radius_pixels(self.kernel, width, self.spacing)
        if r > self.radius:
            raise ValueError(
                f"mollifier width {width:.4g} needs a kernel radius of {r} pixels; this stack was "
                f"extended for at most {self.radius} (max_width)"
            )
        return r

    def _check_width(self, width: float, combination: Combination) -> None:
        self._radius(width)
        orders = [o for ds in combination.values() for n in ds for _, o in derivative_terms(n, 2)]
        top = tuple(max(o[a] for o in orders) for a in range(2))
        smallest = smallest_width(self.kernel, top, (self.spacing, self.spacing))
        check_width(float(width), smallest, self.kernel, max(top), (self.spacing,) * 2)

    def _transfer(self, width: float, derivatives: dict[str, float]):
        """Real 2D transfer of ``sum coef * D`` at ``width``: ``Ky^T C Kx`` with ``C`` the
        coefficients of the 1D orders (y, x) and ``Ky``, ``Kx`` the 1D transfers."""
        import torch

        orders = sorted({o for n in derivatives for _, ok in derivative_terms(n, 2) for o in ok})
        coef = np.zeros((len(orders), len(orders)))
        for name, c in derivatives.items():
            for c_term, (order_y, order_x) in derivative_terms(name, 2):
                if order_y % 2 or order_x % 2:
                    raise ValueError(f"SpectralStack: even derivatives only, found {name!r}")
                coef[orders.index(order_y), orders.index(order_x)] += c * c_term
        ky = torch.stack([self._transfer_1d(width, o, 0) for o in orders], dim=1)
        kx = torch.stack([self._transfer_1d(width, o, 1) for o in orders])
        return (ky @ torch.from_numpy(coef)) @ kx

    def _transfer_1d(self, width: float, order: int, axis: int):
        """Transfer of the sampled 1D kernel (an even order) along ``axis`` (cached)."""
        import torch

        key = (float(width), order, axis)
        if key not in self._transfers:
            if len(self._transfers) > 256:
                self._transfers.clear()
            _, taps = kernel_weights(self.kernel, order, width, self.spacing)
            n, r = self.fft_shape[axis], taps.size // 2
            wrapped = np.zeros(n)
            np.add.at(wrapped, np.arange(-r, r + 1) % n, taps)
            spectrum = np.fft.fft(wrapped) if axis == 0 else np.fft.rfft(wrapped)
            # an even kernel has a real transfer (the imaginary part is rounding)
            self._transfers[key] = torch.from_numpy(spectrum.real.copy())
        return self._transfers[key]
