"""Lamina affinity ``h`` of one nucleus, estimated from the nucleoplasm equation alone.

Nothing reacts into or out of the nucleoplasm, so at steady state with no-flux walls its
chemical potential is one constant over the nucleus (``lap(mu_w) = 0``, ``n.grad(mu_w) = 0``):

    mu_w = -g(phi_h) - phi_e - l^2 lap(phi_w) + h w = C

(MODEL.md, "The nuclear envelope"; ``w`` the wall's line density, the same discrete surface
delta as :mod:`napari_mollifier.physics.closed` and the direct estimator's wall term). The
rate ratio does not enter, so ``h`` is identifiable whatever the map is. Mollified with the
fields extended across the walls (the direct estimator's :class:`~napari_mollifier.mollifier.
spectral.SpectralStack`), ``eta * (-g - phi_e) - l^2 (lap eta) * phi_w = C - h (eta * w)`` at
every mapped pixel: a straight-line fit of two numbers, ``C`` and ``h``, per width.

Measured bias (docs/validation.md, h = 0.002): exact on the simulation's own grid of a
rectangle; -8.5 % after block-averaging by 2 with noise (the LAD layer is then two pixels
thick); -22 % on a curved 64^2 ellipse, where the reflection across a staircase wall is only
first-order exact (-0.00013 there without any affinity). The result reports the spread over the
widths it used. ``phi_w`` is read as measured: from a single-channel density it is the
calibration's (uniform ``phi_e``), an assumption the estimate inherits (not validated).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: widths used, as multiples of the direct estimator's smallest width (4th derivatives)
WIDTH_FACTORS = (1.02, 1.5, 2.25)


@dataclass
class LaminaEstimate:
    """``value``: h (model units), the median over ``widths``; ``per_width`` one per width."""

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


def estimate_lamina_affinity(fields, config=None, width_factors=WIDTH_FACTORS) -> LaminaEstimate:
    """Estimate the lamina affinity of the nucleus in ``fields`` (a ChromatinFields).

    ``config`` (an :class:`~napari_mollifier.inverse.InferenceConfig`) gives the model and the
    kernel; pass the estimate on as ``config.model.lamina_affinity``. Raises ``ValueError``
    when no mapped pixel's kernel reaches the envelope (a periodic box has no wall).
    """
    from ..mollifier import min_width, wall_line_density
    from ..mollifier.spectral import SpectralStack
    from ..physics.chromatin import g
    from .config import InferenceConfig
    from .prepared import prepare_fields

    config = InferenceConfig() if config is None else config
    prepared = prepare_fields(fields, config)
    model, mask = prepared.params, prepared.mask
    wall = wall_line_density(mask, prepared.spacing, prepared.image_border)
    if not wall.any():
        raise ValueError(
            f"lamina affinity: the nucleus has no wall (image_border "
            f"{prepared.image_border!r} and a mask without outline inside the image)"
        )
    smallest = min_width(config.kernel, 4, prepared.spacing)
    widths = [f * smallest for f in width_factors]
    phi_w = 1.0 - prepared.phi_h - prepared.phi_e
    bulk = -g(prepared.phi_h, model.phi_max) - prepared.phi_e
    stack = SpectralStack(
        np.stack([bulk, phi_w, wall]), mask, prepared.spacing, max(widths),
        prepared.image_border, kernel=config.kernel,
    )  # fmt: skip
    per_width, reach = [], 0
    for width in widths:
        value, n_wall = _fit(stack, width, mask, model.interface_length**2)
        per_width.append(value)
        reach = max(reach, n_wall)
    return LaminaEstimate(float(np.median(per_width)), widths, per_width, reach)


def _fit(stack, width: float, mask: np.ndarray, l2: float) -> tuple[float, int]:
    """(h, number of mapped pixels whose kernel reaches the wall) at one width."""
    mu_w = stack.combine(width, {0: {"value": 1.0}, 1: {"laplacian": -l2}})
    wall = stack.combine(width, {2: {"value": 1.0}})
    mapped = stack.valid(width) & mask & np.isfinite(mu_w) & np.isfinite(wall)
    near = mapped & (wall > 1e-9 * np.abs(wall[mapped]).max(initial=0.0))
    if near.sum() < 3 or np.ptp(wall[mapped]) == 0:
        raise ValueError(
            f"lamina affinity: at mollifier width {width:.3g} model units {int(near.sum())} of "
            f"{int(mapped.sum())} mapped pixels reach the envelope, all equally; the fit needs "
            "pixels near the envelope and pixels farther in"
        )
    design = np.column_stack([np.ones(int(mapped.sum())), wall[mapped]])
    coef, *_ = np.linalg.lstsq(design, mu_w[mapped], rcond=None)
    return -float(coef[1]), int(near.sum())
