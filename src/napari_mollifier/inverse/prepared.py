"""One prepared-fields step for every estimator: validation, mask, fill, model parameters.

Every estimator receives :class:`PreparedFields` made by :func:`prepare_fields`, so the rules
are the same for all of them:

- the fields are float64 ``(H, W)`` arrays of one shape and the spacing is > 0 model units;
- the nucleus mask defaults to the whole image and excludes every pixel where a field is not
  finite; an empty mask is refused;
- non-finite values are replaced by the field's median over the mask (any finite value would
  do: the estimators never let a masked-out pixel reach a mapped pixel; finite values outside
  the mask are kept as given);
- the model parameters come from ``config.model``; fields built with other parameters are
  refused (the spacing of a density depends on ``nm_per_unit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..physics.params import ModelParams


@dataclass
class PreparedFields:
    """Validated fields on a pixel grid (see the module docstring for the rules).

    Attributes
    ----------
    phi_h, phi_e, phi_w : ndarray (H, W) float64
        Volume fractions, finite everywhere.
    mask : ndarray (H, W) bool
        Nucleus pixels with finite input.
    spacing : float
        Model units per pixel.
    params : ModelParams
        The model constants (``config.model``).
    pixel_size_nm : float or None
    origin_nm : (float, float)
        World coordinate (y, x) in nm of the centre of pixel [0, 0].
    calibration : dict
        How the input became fields (JSON-able), passed through to the result.
    image_border : {"open", "wall", "periodic"}
        What the image border is (see :data:`napari_mollifier.choices.IMAGE_BORDERS`).
    """

    phi_h: np.ndarray
    phi_e: np.ndarray
    phi_w: np.ndarray
    mask: np.ndarray
    spacing: float
    params: ModelParams
    pixel_size_nm: float | None = None
    origin_nm: tuple[float, float] = (0.0, 0.0)
    calibration: dict = field(default_factory=dict)
    image_border: str = "open"

    @property
    def phi_d(self) -> np.ndarray:
        return self.phi_h - self.phi_e

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.phi_h.shape)

    @property
    def phi_e_observed(self) -> bool:
        """True when phi_e varies inside the mask (two-channel input), False when a calibration
        made it uniform."""
        inside = self.phi_e[self.mask]
        return bool(np.ptp(inside) > 1e-9 * max(abs(float(inside.mean())), 1.0))


def prepare_fields(fields, config) -> PreparedFields:
    """Check ``fields`` (a ChromatinFields or any object with phi_h, phi_e, phi_w, spacing and
    optionally mask, params, pixel_size_nm, origin_nm, calibration) against ``config``."""
    if isinstance(fields, PreparedFields):
        _check_params(fields.params, config.model)
        return fields
    try:
        phi_h = np.asarray(fields.phi_h, dtype=np.float64)
        phi_e = np.asarray(fields.phi_e, dtype=np.float64)
        phi_w = np.asarray(fields.phi_w, dtype=np.float64)
        spacing = float(fields.spacing)
    except AttributeError as exc:
        raise ValueError(
            f"fields: expected ChromatinFields with phi_h, phi_e, phi_w and spacing ({exc})"
        ) from exc
    if phi_h.ndim != 2 or phi_h.shape != phi_e.shape or phi_h.shape != phi_w.shape:
        raise ValueError(
            f"fields: expected three (H, W) fields of one shape, found {phi_h.shape}, "
            f"{phi_e.shape}, {phi_w.shape}"
        )
    if not spacing > 0:
        raise ValueError(f"fields: spacing must be > 0 model units per pixel, found {spacing}")
    mask = _mask(getattr(fields, "mask", None), phi_h.shape)
    finite = np.isfinite(phi_h) & np.isfinite(phi_e) & np.isfinite(phi_w)
    mask &= finite
    if not mask.any():
        raise ValueError("fields: the nucleus mask is empty (or holds no finite value)")
    phi_h, phi_e, phi_w = (_fill(a, finite, mask) for a in (phi_h, phi_e, phi_w))
    params = getattr(fields, "params", None)
    if params is not None:
        _check_params(params, config.model)
    return PreparedFields(
        phi_h=phi_h,
        phi_e=phi_e,
        phi_w=phi_w,
        mask=mask,
        spacing=spacing,
        params=config.model,
        pixel_size_nm=getattr(fields, "pixel_size_nm", None),
        origin_nm=tuple(getattr(fields, "origin_nm", None) or (0.0, 0.0)),
        calibration=dict(getattr(fields, "calibration", None) or {}),
        image_border=str(getattr(fields, "image_border", None) or config.image_border),
    )


def _mask(mask, shape) -> np.ndarray:
    if mask is None:
        return np.ones(shape, bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"fields: mask shape {mask.shape} differs from the fields' {shape}")
    return mask.copy()


def _fill(values: np.ndarray, finite: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if finite.all():
        return values
    return np.where(finite, values, np.median(values[mask]))


#: Model parameters that do not enter the fields (only the estimators' wall conditions)
_NOT_IN_FIELDS = ("lamina_affinity",)


def _check_params(given, expected) -> None:
    if given == expected:
        return
    a, b = given.to_dict(), expected.to_dict()
    differ = [
        f"{k}: fields {a[k]!r}, config {b[k]!r}"
        for k in a
        if a[k] != b.get(k) and k not in _NOT_IN_FIELDS
    ]
    if not differ:
        return
    raise ValueError(
        "fields were built with other model parameters than config.model ("
        + "; ".join(differ)
        + "); build them with params=config.model"
    )


def valid_centres(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose (2 radius + 1)^2 neighbourhood lies inside ``mask`` and the image: where a
    kernel of that radius sees only nucleus (neither the rim nor the image border leaks in)."""
    from scipy import ndimage

    return ndimage.minimum_filter(
        mask.astype(np.uint8), size=2 * radius + 1, mode="constant", cval=0
    ).astype(bool)
