"""Mollified derivatives up to the nuclear envelope: fields extended across no-flux walls.

Weak form near a wall (MODEL.md, "The nuclear envelope"): with no flux (``n.grad(mu) = 0``)
and zero normal derivative of the fields, ``int_Omega psi lap(mu) = int_Omega mu lap(psi)`` for
test functions ``psi`` with ``n.grad(psi) = n.grad(lap psi) = 0`` on the wall. For a straight
wall the mirror-summed kernel ``psi = eta + eta(reflected)`` is such a function, and convolving
the *mirror image* of the fields with ``eta`` is the same integral: so extending the fields by
reflection across the wall and convolving as usual keeps the weak form exact up to the wall.

- Image border ``"wall"``: half-sample symmetric reflection (the wall runs along the outer
  cell faces, as in :mod:`napari_mollifier.physics.closed`); ``"periodic"``: wrap;
  ``"open"``: beyond the border nothing is known where the nucleus mask touches it (the
  nucleus may go on), and a pixel whose kernel support reaches there stays unmapped.
- The mask outline (the envelope, any shape): every pixel ``p`` outside the mask takes the value
  at its mirror point across the nearest wall, ``p' = 2 b - p`` with ``b = q + (p - q) / (2
  |p - q|)``, ``q`` the nearest mask pixel centre (Euclidean distance transform) and ``b`` the
  wall half a pixel beyond it; values at ``p'`` are interpolated bilinearly. On a straight
  axis-aligned wall this is the half-sample mirror exactly; on a curved envelope it is the
  reflection along the normal, exact to first order in the curvature (measured in
  tests/test_boundary.py and docs/mollifier.md). A mirror point that is not inside the mask
  (thin or strongly concave parts) leaves that pixel unknown.

Qt-free and numpy in / numpy out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .kernels import DEFAULT_KERNEL, support_radius

IMAGE_BORDERS = ("open", "wall", "periodic")
#: Gaussian smoothing (pixels) of the signed distance whose gradient gives the wall normals
SDF_SMOOTHING_PX = 2.0


@dataclass
class Extension:
    """Fields extended by ``radius`` pixels beyond the image on every side.

    Attributes
    ----------
    values : ndarray (C, H + 2R, W + 2R)
        Fields inside the mask, their reflections outside it.
    known : ndarray (H + 2R, W + 2R) bool
        Where ``values`` is defined (False beyond an open border or where no mirror point lies
        inside the mask).
    reflected : ndarray (H + 2R, W + 2R) bool
        Pixels filled by reflection across the mask outline or a wall / periodic image border.
    radius : int
    """

    values: np.ndarray
    known: np.ndarray
    reflected: np.ndarray
    radius: int


def radius_pixels(kernel: str, width: float, spacing: float) -> int:
    """Kernel support radius in pixels (the same rule as :class:`MollifierLayer`)."""
    return int(math.floor(support_radius(kernel, width) / spacing * (1 - 1e-12)))


def _check(stack, mask, image_border):
    stack = np.asarray(stack, dtype=np.float64)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise ValueError(f"boundary extension: expected (H, W) or (C, H, W), found {stack.shape}")
    mask = np.asarray(mask)
    if mask.shape != stack.shape[1:]:
        raise ValueError(
            f"boundary extension: mask of shape {stack.shape[1:]} expected, found {mask.shape}"
        )
    if image_border not in IMAGE_BORDERS:
        raise ValueError(f"image_border: expected one of {IMAGE_BORDERS}, found {image_border!r}")
    mask = mask.astype(bool)
    if not mask.any():
        raise ValueError("boundary extension: the nucleus mask is empty")
    return stack, mask


def _mirror_points(inside, py, px, qy, qx, method):
    """Mirror points (pixel coordinates) of the outside pixels ``(py, px)`` across the wall.

    "nearest": across the wall half a pixel beyond the nearest inside pixel ``q``.
    "sdf": along the normal of a smoothed signed distance (zero on the cell faces between
    inside and outside), ``p' = p - 2 d n``; smoother normals on a staircase outline.
    """
    from scipy import ndimage

    if method == "nearest":
        dy, dx = py - qy[py, px], px - qx[py, px]
        dist = np.hypot(dy, dx)
        return 2 * qy[py, px] - py + dy / dist, 2 * qx[py, px] - px + dx / dist
    d_out = ndimage.distance_transform_edt(~inside)
    d_in = ndimage.distance_transform_edt(inside)
    sdf = np.where(inside, 0.5 - d_in, d_out - 0.5)
    smooth = ndimage.gaussian_filter(sdf, SDF_SMOOTHING_PX, mode="nearest")
    gy, gx = np.gradient(smooth)
    norm = np.hypot(gy, gx) + 1e-12
    ny, nx = gy[py, px] / norm[py, px], gx[py, px] / norm[py, px]
    d = sdf[py, px]
    return py - 2 * d * ny, px - 2 * d * nx


@dataclass
class ExtensionOperator:
    """The extension as a linear gather, so numpy data and torch network outputs
    (differentiably) are extended the same way: every extended pixel copies one image pixel
    (inside the mask, or the image border's wrap / mirror), except the pixels outside the mask,
    which are a weighted sum of 4 image pixels (bilinear interpolation at the mirror point).

    Attributes
    ----------
    source : ndarray (Hp * Wp,) int
        Row-major pixel number in the (H, W) image copied to each extended pixel;
        ``Hp = H + 2R``, ``Wp = W + 2R``.
    rows : ndarray (K,) int
        Extended pixels (row-major) outside the mask, filled by reflection.
    index, weight : ndarray (K, 4)
        Their 4 image pixels and bilinear weights (rows sum to 1).
    known, reflected : ndarray (Hp, Wp) bool
        As in :class:`Extension`.
    radius : int
    shape : (H, W)
    """

    source: np.ndarray
    rows: np.ndarray
    index: np.ndarray
    weight: np.ndarray
    known: np.ndarray
    reflected: np.ndarray
    radius: int
    shape: tuple[int, int]

    @property
    def padded_shape(self) -> tuple[int, int]:
        return (self.shape[0] + 2 * self.radius, self.shape[1] + 2 * self.radius)

    def apply(self, u):
        """Extend ``u`` (..., H, W), numpy or torch; returns (..., Hp, Wp) of the same kind."""
        lead = tuple(u.shape[:-2])
        if tuple(u.shape[-2:]) != tuple(self.shape):
            raise ValueError(f"extension: expected (..., {self.shape}), found {tuple(u.shape)}")
        flat = u.reshape(lead + (-1,))
        if isinstance(u, np.ndarray):
            out = flat[..., self.source]
            if self.rows.size:
                out[..., self.rows] = np.sum(flat[..., self.index] * self.weight, axis=-1)
            return out.reshape(lead + self.padded_shape)
        import torch

        device = u.device
        out = flat[..., torch.as_tensor(self.source, device=device)]
        if self.rows.size:
            weight = torch.as_tensor(self.weight, dtype=u.dtype, device=device)
            gathered = (flat[..., torch.as_tensor(self.index, device=device)] * weight).sum(-1)
            rows = torch.as_tensor(self.rows, device=device)
            out = out.index_copy(out.dim() - 1, rows, gathered)
        return out.reshape(lead + self.padded_shape)


def extension_operator(
    mask, radius: int, image_border: str = "open", method: str = "sdf"
) -> ExtensionOperator:
    """The gather that extends (H, W) fields by ``radius`` pixels and across the mask outline.

    See the module docstring for the rules. ``radius`` is the kernel radius in pixels.
    """
    _, mask = _check(np.zeros(np.shape(mask)), mask, image_border)
    r = int(radius)
    h, w = mask.shape
    mode = {"periodic": "wrap", "wall": "symmetric", "open": "edge"}[image_border]
    source = np.pad(np.arange(h * w).reshape(h, w), r, mode=mode)
    # an open border is no wall: extend the mask by its edge so no false wall appears there;
    # beyond it only the continuation of a nucleus cut by the border is unknown (outside the
    # mask the envelope is in the image, and reflection works there as anywhere)
    inside = np.pad(mask, r, mode=mode)
    beyond = np.zeros(inside.shape, bool)
    if image_border == "open":
        beyond[:] = inside
        beyond[r : r + h, r : r + w] = False
    reflected = np.zeros(inside.shape, bool)
    if image_border != "open":
        reflected[:] = True
        reflected[r : r + h, r : r + w] = False
    known = ~beyond
    rows = np.zeros(0, dtype=np.int64)
    index = np.zeros((0, 4), dtype=np.int64)
    weight = np.zeros((0, 4))
    outside = ~inside
    if outside.any():
        # imported here: scipy.ndimage takes 0.2-0.6 s to import, and a mask filling the image
        # (a periodic box, a cropped nucleus) needs no mirror
        from scipy import ndimage

        _, (qy, qx) = ndimage.distance_transform_edt(outside, return_indices=True)
        py, px = np.nonzero(outside)
        my, mx = _mirror_points(inside, py, px, qy, qx, method)
        # bilinear at the mirror point; each corner stands for its nearest inside pixel
        my = np.clip(my, 0, inside.shape[0] - 1)
        mx = np.clip(mx, 0, inside.shape[1] - 1)
        y0 = np.minimum(np.floor(my).astype(int), inside.shape[0] - 2)
        x0 = np.minimum(np.floor(mx).astype(int), inside.shape[1] - 2)
        fy, fx = my - y0, mx - x0
        rows = py * inside.shape[1] + px
        index = np.zeros((rows.size, 4), dtype=np.int64)
        weight = np.zeros((rows.size, 4))
        for k, (a, b) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            cy, cx = y0 + a, x0 + b
            index[:, k] = source[qy[cy, cx], qx[cy, cx]]
            weight[:, k] = (fy if a else 1 - fy) * (fx if b else 1 - fx)
        iy, ix = np.rint(my).astype(int), np.rint(mx).astype(int)
        known[py, px] &= inside[iy, ix] & ~beyond[iy, ix]
        reflected[py, px] = True
    return ExtensionOperator(source.ravel(), rows, index, weight, known, reflected, r, (h, w))


def supported(op: ExtensionOperator, mask) -> np.ndarray:
    """Mask pixels whose whole (2R + 1)^2 kernel support is known under ``op``."""
    mask = np.asarray(mask, dtype=bool)
    if op.known.all():
        return mask.copy()
    return mask & (window_sums(unknown_table(op.known), op.radius, op.radius, op.shape) == 0)


def unknown_table(known: np.ndarray) -> np.ndarray:
    """Summed-area table of the unknown pixels (one leading row and column of 0): the count in
    any window in four reads (numpy only; scipy.ndimage alone takes 0.2-0.6 s to import)."""
    unknown = (~np.asarray(known, dtype=bool)).astype(np.int64)
    return np.pad(unknown.cumsum(0).cumsum(1), ((1, 0), (1, 0)))


def window_sums(table: np.ndarray, big: int, r: int, shape: tuple[int, int]) -> np.ndarray:
    """Sums over the (2r + 1)^2 windows centred on the (h, w) pixels that start ``big`` pixels
    into the padded grid (``r <= big``), from its summed-area ``table``."""
    h, w = shape
    lo, hi = big - r, big + r + 1  # window rows / columns of the first centre: [lo, hi)

    def corner(y, x):
        return table[y : y + h, x : x + w]

    return corner(hi, hi) - corner(lo, hi) - corner(hi, lo) + corner(lo, lo)


def extend_fields(
    stack, mask, radius: int, image_border: str = "open", method: str = "sdf"
) -> Extension:
    """Extend (C, H, W) fields by ``radius`` pixels and across the outline of ``mask``.

    See the module docstring for the rules (:func:`extension_operator` applied to the data).
    """
    stack, mask = _check(stack, mask, image_border)
    op = extension_operator(mask, radius, image_border, method)
    return Extension(op.apply(stack), op.known, op.reflected, op.radius)


def wall_line_density(mask, spacing: float, image_border: str = "open") -> np.ndarray:
    """Wall length per cell area (model units^-1) on the mask's rim cells, 0 elsewhere.

    A mask cell's faces towards non-mask cells are wall faces; faces on the image border are
    wall faces only for ``image_border="wall"``. This is the discrete surface delta of the
    envelope used by the lamina-affinity term (``physics.closed``).
    """
    mask = np.asarray(mask, dtype=bool)
    pad_value = image_border != "wall"  # open / periodic borders are no walls
    if image_border == "periodic":
        padded = np.pad(mask, 1, mode="wrap")
    else:
        padded = np.pad(mask, 1, constant_values=pad_value)
    h, w = mask.shape
    neighbours = sum(
        padded[a : a + h, b : b + w].astype(np.int64) for a, b in ((0, 1), (2, 1), (1, 0), (1, 2))
    )
    return np.where(mask, 4 - neighbours, 0) / float(spacing)


def boundary_derivatives(
    stack,
    mask,
    width: float,
    spacing: float,
    image_border: str = "open",
    *,
    derivatives=("value", "laplacian", "biharmonic"),
    kernel: str = DEFAULT_KERNEL,
    method: str = "sdf",
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Mollified derivatives of (C, H, W) fields, with the mask outline a no-flux wall.

    Parameters
    ----------
    stack : ndarray (C, H, W) or (H, W)
        Fields (values outside ``mask`` are ignored: they are replaced by reflections).
    mask : ndarray (H, W) bool
        The nucleus; its outline is the envelope.
    width, spacing : float
        Mollifier width and grid spacing (model units).
    image_border : {"open", "wall", "periodic"}
    derivatives, kernel
        As in :func:`napari_mollifier.mollifier.mollified_derivatives`.
    method : {"sdf", "nearest"}
        Normals of the reflection across the mask outline (see :func:`_mirror_points`).

    Returns
    -------
    (out, valid, reflected_weight)
        ``out``: name -> (C, H, W) array. ``valid`` (H, W): mask pixels whose whole kernel
        support is known. ``reflected_weight`` (H, W): the fraction of ``|eta|`` on reflected
        pixels (0 in the interior; ~0.5 on a straight wall), a measure of how much the value
        leans on the wall conditions.
    """
    from .functional import mollified_derivatives
    from .kernels import kernel_weights

    stack, mask = _check(stack, mask, image_border)
    r = radius_pixels(kernel, width, spacing)
    ext = extend_fields(stack, mask, r, image_border, method)
    out = mollified_derivatives(
        ext.values, width, (spacing, spacing), tuple(derivatives), kernel=kernel, boundary="valid"
    )
    h, w = mask.shape
    valid = mask.copy()
    if not ext.known.all():
        valid &= window_sums(unknown_table(ext.known), r, r, (h, w)) == 0
    weight = np.zeros(mask.shape)
    if ext.reflected.any():
        from scipy import ndimage

        _, k1 = kernel_weights(kernel, 0, width, spacing)
        k1 = np.abs(k1) / np.abs(k1).sum()
        weight = ndimage.convolve1d(ext.reflected.astype(np.float64), k1, axis=0, mode="constant")
        weight = ndimage.convolve1d(weight, k1, axis=1, mode="constant")[r : r + h, r : r + w]
    return out, valid, weight
