"""Lamina affinity ``h`` of one nucleus, estimated from the nucleoplasm equation alone.

Nothing reacts into or out of the nucleoplasm, so at steady state with no-flux walls its
chemical potential is one constant over the nucleus (``lap(mu_w) = 0``, ``n.grad(mu_w) = 0``):

    mu_w = -g(phi_h) - phi_e - l^2 lap(phi_w) + h w = C

(MODEL.md, "The nuclear envelope"; ``w`` the wall's line density, the discrete surface delta
of :mod:`napari_mollifier.physics.closed`). The rate ratio does not enter, so ``h`` is
identifiable whatever the map is. ``lap`` is the masked finite-volume Laplacian of the mask
(zero flux across every wall face, :func:`~napari_mollifier.physics.domains.masked_laplacian`):
it is symmetric on the mask's cells, so smoothing the pointwise equation with its heat steps
``(I + dt lap)^n`` moves the derivative off the noisy data exactly, on a curved staircase envelope
as on a straight wall (no reflection). The smoothed equation is a straight-line fit of two
numbers, ``C`` and ``h``, at each of three smoothing lengths; the median is reported.

Pixel values of a binned density are averages over the pixel; ``g`` is cubic, so the average
of ``g`` exceeds ``g`` of the average by ``g'' var / 2``, with ``var = spacing^2 |grad
phi_h|^2 / 12`` the sub-pixel variance (central differences, the field reflected at the walls).
Without this correction a two-pixel LAD layer biases h by -8 to -9 %; with it by -1 to -2.5 %
(docs/validation.md). Turn it off (``pixel_average=False``) for point samples of a field, e.g.
a simulation on its own grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: heat-kernel smoothing lengths, in pixels (sigma = sqrt(2 t))
SMOOTHING_PIXELS = (2.5, 4.0, 6.0)


@dataclass
class LaminaEstimate:
    """``value``: h (model units), the median over ``widths``; ``per_width`` one per width.

    ``widths`` are the heat-kernel smoothing lengths (model units); ``wall_pixels`` the mask
    pixels on the envelope that the fit used.
    """

    value: float
    widths: list[float]
    per_width: list[float]
    wall_pixels: int
    note: str = field(
        default="estimated from the nucleoplasm equation (mu_w constant over the nucleus)"
    )

    @property
    def spread(self) -> float:
        """Half the range of the per-width estimates (model units)."""
        return 0.5 * (max(self.per_width) - min(self.per_width))


def estimate_lamina_affinity(
    fields, config=None, smoothing_pixels=SMOOTHING_PIXELS, *, pixel_average: bool = True
) -> LaminaEstimate:
    """Estimate the lamina affinity of the nucleus in ``fields`` (a ChromatinFields).

    ``config`` (an :class:`~napari_mollifier.inverse.InferenceConfig`) gives the model; pass
    the estimate on as ``config.model.lamina_affinity``. ``pixel_average``: the pixel values
    are averages over the pixel (binned densities, camera pixels), see the module docstring.
    Raises ``ValueError`` when the nucleus has no wall (a periodic box) or too few pixels.
    """
    from .config import InferenceConfig
    from .prepared import prepare_fields

    config = InferenceConfig() if config is None else config
    return estimate_from_prepared(
        prepare_fields(fields, config), smoothing_pixels, pixel_average=pixel_average
    )


def estimate_from_prepared(
    prepared, smoothing_pixels=SMOOTHING_PIXELS, *, pixel_average: bool = True
) -> LaminaEstimate:
    """:func:`estimate_lamina_affinity` on :class:`~.prepared.PreparedFields`."""
    from ..mollifier import wall_line_density
    from ..physics.chromatin import g
    from ..physics.domains import masked_laplacian

    model, mask, spacing = prepared.params, prepared.mask, prepared.spacing
    wall = wall_line_density(mask, spacing, prepared.image_border)
    if not wall.any():
        raise ValueError(
            f"lamina affinity: the nucleus has no wall (image_border "
            f"{prepared.image_border!r} and a mask without outline inside the image)"
        )
    lap, _ = masked_laplacian(mask, spacing)
    bulk = -g(prepared.phi_h, model.phi_max) - prepared.phi_e
    if pixel_average:
        curvature = 12 * prepared.phi_h - 6 * model.phi_max  # g''
        bulk = bulk - 0.5 * curvature * subpixel_variance(
            prepared.phi_h, mask, spacing, prepared.image_border
        )
    phi_w = 1.0 - prepared.phi_h - prepared.phi_e
    residual = bulk[mask] - model.interface_length**2 * (lap @ phi_w[mask])
    complete = _complete_cells(mask, prepared.image_border)
    inside = complete[mask]  # mask cells -> complete cells
    per_width = _fit(residual[inside], wall[complete], complete, smoothing_pixels)
    widths = [s * spacing for s in smoothing_pixels]
    return LaminaEstimate(
        float(np.median(per_width)), widths, per_width, int((wall[complete] > 0).sum())
    )


def subpixel_variance(
    phi: np.ndarray, mask: np.ndarray, spacing: float, image_border: str = "open"
) -> np.ndarray:
    """``spacing^2 |grad phi|^2 / 12``: the variance of a linear field over one pixel.

    Central differences of ``phi`` reflected across the mask's walls (a wall face has zero
    normal gradient, as for the direct estimator's reflection; with ``image_border="wall"``
    the image border too); at an open (or periodic) image border only the inner face counts.
    Zero outside the mask.
    """
    total = np.zeros(mask.shape)
    for axis in (0, 1):
        m = np.moveaxis(mask, axis, 0)
        f = np.moveaxis(phi, axis, 0)
        inner = m[:-1] & m[1:]
        diff = np.where(inner, (f[1:] - f[:-1]) / spacing, 0.0)
        sums = np.zeros(m.shape)
        faces = np.full(m.shape, 2)  # faces that count (a one-pixel image: kept >= 1)
        sums[:-1] += diff
        sums[1:] += diff
        if image_border != "wall":  # beyond the border the field is not known
            faces[0] -= 1
            faces[-1] -= 1
        total += np.moveaxis(np.where(m, sums / np.maximum(faces, 1), 0.0), 0, axis) ** 2
    return spacing**2 / 12 * total


def _complete_cells(mask: np.ndarray, image_border: str) -> np.ndarray:
    """Mask cells whose four faces are known: a mask neighbour, or a wall."""
    if image_border == "wall":
        return mask.copy()
    complete = mask.copy()
    for edge in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
        complete[edge] = False  # beyond an open (or wrapped) border the nucleus may go on
    return complete


def _fit(residual, wall, complete, smoothing_pixels) -> list[float]:
    """h from ``S residual = C - h S wall`` for each smoothing length (pixels), ``S`` the heat
    kernel of the complete cells' own masked Laplacian (cells whose equation is unknown never
    enter); ``residual`` and ``wall`` are given on the complete cells."""
    from ..physics.domains import masked_laplacian

    if complete.sum() < 16 or np.ptp(wall) == 0:
        raise ValueError(
            f"lamina affinity: {int(complete.sum())} mask pixels with a complete "
            f"neighbourhood, {int((wall > 0).sum())} of them on the envelope; the fit needs "
            "pixels on the envelope and pixels farther in"
        )
    lap, _ = masked_laplacian(complete, 1.0)
    smooth, t_done, out = np.column_stack([residual, wall]), 0.0, {}
    for sigma in sorted(smoothing_pixels):  # the lengths in turn: each continues the last
        smooth = _heat_steps(lap, smooth, 0.5 * sigma**2 - t_done)
        t_done = 0.5 * sigma**2
        design = np.column_stack([np.ones(len(smooth)), smooth[:, 1]])
        coef, *_ = np.linalg.lstsq(design, smooth[:, 0], rcond=None)
        out[sigma] = -float(coef[1])
    return [out[sigma] for sigma in smoothing_pixels]


def _heat_steps(lap, values: np.ndarray, t: float) -> np.ndarray:
    """``(I + dt lap)^n values`` with ``n dt = t`` and ``dt <= 0.2`` (pixel units): explicit
    heat steps, positive and stable below 0.25 on the 5-point graph; symmetric, constants
    kept, commuting with ``lap`` like ``exp(t lap)``, and many times faster than
    scipy's expm_multiply (its norm estimates) on large nuclei."""
    steps = max(1, int(np.ceil(t / 0.2)))
    dt = t / steps
    for _ in range(steps):
        values = values + dt * (lap @ values)
    return values
