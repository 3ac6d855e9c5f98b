"""The 4th-order chromatin model (MODEL.md) as pure functions, and the fields fed to estimators.

Pure functions work on numpy arrays and torch tensors alike (only arithmetic is used); they
take the derivatives they need as arguments, so any derivative engine (spectral, mollifier,
autograd) can supply them.

:class:`ChromatinFields` holds ``phi_h``, ``phi_e``, ``phi_w`` on a pixel grid with its spacing
in model units, a nucleus mask and the calibration that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..choices import IMAGE_BORDERS as _IMAGE_BORDERS
from .masks import FieldsError, nucleus_mask
from .masks import check_mask as _check_mask
from .params import CalibrationParams, ModelParams

#: Channel names (case-insensitive, in this order) by which a 2-channel image says that it
#: holds ``(phi_w, phi_d)`` phase fields rather than densities.
PHASE_CHANNEL_NAMES = ("phi_w", "phi_d")


def _channel_names(image, n: int) -> list[str]:
    names = list((getattr(image, "metadata", None) or {}).get("channel_names") or [])
    return [str(v) for v in names][:n] + [f"channel {i}" for i in range(len(names), n)]


def _select_channel(data, image, channel, source):
    """``(array, as_phases)``: the (H, W) density, or the (2, H, W) phases when the image or
    the caller says the channels are (phi_w, phi_d). See ``from_density``'s ``channel``."""
    if data.ndim != 3:
        if channel not in (None, 0, "phases") or (channel == "phases" and data.ndim == 2):
            raise FieldsError(
                f"from_density ({source}): channel {channel!r} asked for, but the image has "
                f"shape {data.shape} (one channel)"
            )
        return data, False
    names = _channel_names(image, data.shape[0])
    if channel is None:
        if tuple(n.strip().lower() for n in names) == PHASE_CHANNEL_NAMES:
            channel = "phases"
        else:
            raise FieldsError(
                f"from_density ({source}): the image has {data.shape[0]} channels "
                f"({', '.join(repr(n) for n in names)}); which one is the chromatin density? "
                f"Choose one with channel=0..{data.shape[0] - 1} (batch config: "
                "density_channel), or channel='phases' if they are (phi_w, phi_d) phase "
                "fields of a simulation"
            )
    if channel == "phases":
        if data.shape[0] != 2:
            raise FieldsError(
                f"from_density ({source}): channel='phases' needs 2 channels (phi_w, phi_d), "
                f"found {data.shape[0]}"
            )
        return data, True
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        raise FieldsError(
            f"from_density ({source}): channel must be a channel index or 'phases', found "
            f"{channel!r}"
        )
    if not 0 <= int(channel) < data.shape[0]:
        raise FieldsError(
            f"from_density ({source}): channel {int(channel)} does not exist; the image has "
            f"channels 0..{data.shape[0] - 1} ({', '.join(repr(n) for n in names)})"
        )
    return data[int(channel)], False


# --- pure model functions ----------------------------------------------------------------
def phase_fractions(phi_w, phi_d):
    """``(phi_h, phi_e)`` from ``phi_w`` and ``phi_d = phi_h - phi_e`` (fractions sum to 1)."""
    return (1 - phi_w + phi_d) / 2, (1 - phi_w - phi_d) / 2


def g(phi_h, phi_max: float = 0.7):
    """Bulk term ``g(phi_h) = phi_h (phi_max - phi_h)(phi_max - 2 phi_h)``."""
    return phi_h * (phi_max - phi_h) * (phi_max - 2 * phi_h)


def g_prime(phi_h, phi_max: float = 0.7):
    """``dg / dphi_h = phi_max^2 - 6 phi_max phi_h + 6 phi_h^2``."""
    return phi_max**2 - 6 * phi_max * phi_h + 6 * phi_h * phi_h


def mu_d(phi_h, phi_e, lap_phi_d, params: ModelParams | None = None):
    """Chemical potential of ``phi_d``: ``g(phi_h) - phi_e - l^2 lap(phi_d)``."""
    params = params or ModelParams()
    return g(phi_h, params.phi_max) - phi_e - params.interface_length**2 * lap_phi_d


def mu_w(phi_h, phi_e, lap_phi_w, params: ModelParams | None = None):
    """Chemical potential of ``phi_w``: ``-g(phi_h) - phi_e - l^2 lap(phi_w)``."""
    params = params or ModelParams()
    return -g(phi_h, params.phi_max) - phi_e - params.interface_length**2 * lap_phi_w


def steady_state_residual(phi_h, phi_e, lap_mu_d, rate_ratio, params: ModelParams | None = None):
    """``lap(mu_d) + 2 Gamma_ac (lambda phi_e - phi_h)``: zero at a steady state (1 / time)."""
    params = params or ModelParams()
    return lap_mu_d + 2 * params.gamma_ac * (rate_ratio * phi_e - phi_h)


def pointwise_rate_ratio(phi_h, phi_e, lap_mu_d, params: ModelParams | None = None):
    """Strong-form inverse ``lambda = (phi_h - lap(mu_d) / (2 Gamma_ac)) / phi_e``.

    Exact on noise-free data; useless on real data (4th derivatives of noise), see
    :mod:`napari_mollifier.inverse.direct` for the mollified version.
    """
    params = params or ModelParams()
    return (phi_h - lap_mu_d / (2 * params.gamma_ac)) / phi_e


def spectral_laplacian(u: np.ndarray, spacing: float) -> np.ndarray:
    """Laplacian of a periodic (H, W) field by FFT (model units^-2); for checks on simulations."""
    h, w = u.shape
    ky = 2 * np.pi * np.fft.fftfreq(h, d=spacing)
    kx = 2 * np.pi * np.fft.rfftfreq(w, d=spacing)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    return np.fft.irfft2(-k2 * np.fft.rfft2(u), s=u.shape)


# --- fields prepared for the estimators ----------------------------------------------------
#: What lies beyond the image border (the nucleus mask's own outline is always a wall):
#: "open" the image is a crop, nothing is known beyond it; "wall" the border is the envelope
#: (a closed simulation box); "periodic" the image is a periodic simulation box.
IMAGE_BORDERS = _IMAGE_BORDERS


def check_image_border(value, where: str = "image_border") -> str:
    """``value`` if it is one of :data:`IMAGE_BORDERS`, else a FieldsError naming it."""
    if not isinstance(value, str) or value not in IMAGE_BORDERS:
        raise FieldsError(f"{where}: expected one of {IMAGE_BORDERS}, found {value!r}")
    return value


@dataclass
class ChromatinFields:
    """Volume fractions on a pixel grid, ready for a rate estimator.

    Attributes
    ----------
    phi_h, phi_e, phi_w : ndarray (H, W) float64
        Heterochromatin, euchromatin, nucleoplasm fractions (sum to 1).
    spacing : float
        Grid spacing in model units per pixel.
    mask : ndarray (H, W) bool
        Nucleus (where the model applies).
    params : ModelParams
    pixel_size_nm : float or None
        Physical pixel size (None for fields given in model units only).
    origin_nm : (float, float)
        World coordinate (y, x) in nm of the centre of pixel [0, 0].
    calibration : dict
        Every choice that mapped the input to these fields (JSON-able).
    image_border : {"open", "wall", "periodic"}
        What lies beyond the image border (:data:`IMAGE_BORDERS`); the outline of ``mask``
        is always the nuclear envelope, a no-flux wall.
    """

    phi_h: np.ndarray
    phi_e: np.ndarray
    phi_w: np.ndarray
    spacing: float
    mask: np.ndarray
    params: ModelParams = field(default_factory=ModelParams)
    pixel_size_nm: float | None = None
    origin_nm: tuple[float, float] = (0.0, 0.0)
    calibration: dict = field(default_factory=dict)
    image_border: str = "open"

    def __post_init__(self) -> None:
        check_image_border(self.image_border, "ChromatinFields.image_border")

    @property
    def phi_d(self) -> np.ndarray:
        return self.phi_h - self.phi_e

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.phi_h.shape)

    # --- constructors ------------------------------------------------------------------
    @classmethod
    def from_phases(
        cls,
        phi_w,
        phi_d,
        spacing: float,
        mask=None,
        params: ModelParams | None = None,
        pixel_size_nm: float | None = None,
        origin_nm: tuple[float, float] = (0.0, 0.0),
        image_border: str = "open",
    ) -> ChromatinFields:
        """Fields from ``phi_w`` and ``phi_d`` (e.g. a simulation), both (H, W).

        ``spacing`` is in model units per pixel; ``mask`` defaults to the whole image.
        ``image_border`` ("open", "wall" or "periodic") says what lies beyond the image
        border: a simulation in a closed box is "wall", a periodic one "periodic".
        """
        image_border = check_image_border(image_border, "from_phases: image_border")
        params = params or ModelParams()
        phi_w = np.asarray(phi_w, dtype=np.float64)
        phi_d = np.asarray(phi_d, dtype=np.float64)
        if phi_w.ndim != 2 or phi_w.shape != phi_d.shape:
            raise FieldsError(
                f"from_phases: expected phi_w and phi_d of the same (H, W) shape, found "
                f"{phi_w.shape} and {phi_d.shape}"
            )
        if not np.all(np.isfinite(phi_w)) or not np.all(np.isfinite(phi_d)):
            raise FieldsError("from_phases: phi_w and phi_d must be finite everywhere")
        if not spacing or not float(spacing) > 0:
            raise FieldsError(f"from_phases: spacing must be > 0 model units, found {spacing!r}")
        mask = _check_mask(mask, phi_w.shape, "from_phases")
        phi_h, phi_e = phase_fractions(phi_w, phi_d)
        return cls(
            phi_h=phi_h,
            phi_e=phi_e,
            phi_w=phi_w,
            spacing=float(spacing),
            mask=mask,
            params=params,
            pixel_size_nm=pixel_size_nm,
            origin_nm=tuple(float(v) for v in origin_nm),
            calibration={
                "source": "phases",
                "mask": "given" if mask is not None else "all",
                "image_border": image_border,
            },
            image_border=image_border,
        )

    @classmethod
    def from_density(
        cls,
        image,
        pixel_size_nm: float | None = None,
        mask=None,
        params: ModelParams | None = None,
        calibration: CalibrationParams | None = None,
        channel: int | str | None = None,
        image_border: str = "open",
    ) -> ChromatinFields:
        """Fields from a chromatin density image (total chromatin, e.g. rendered H2B STORM).

        Parameters
        ----------
        image : ndarray (H, W) or (C, H, W), or a DensityImage-like object
            One channel: density (any units). Several channels: see ``channel``. An object
            with ``.data``, ``.pixel_size_nm`` and ``.origin_nm`` (``io.DensityImage``) brings
            its own pixel size, origin and channel names (``.metadata["channel_names"]``).
        channel : int, "phases" or None
            Which channel of a (C, H, W) image is the density (int), or ``"phases"``: the two
            channels are ``(phi_w, phi_d)`` phase fields of a simulation (sent to
            :meth:`from_phases`). None: a 2-D image is the density; two channels are phases
            only when the image says so (channel names exactly ``phi_w``, ``phi_d``, as
            written by ``io.write_image``); any other multi-channel image is a FieldsError
            asking which channel is the density.
        pixel_size_nm : float
            Pixel side in nm (required for a plain array; overrides the image's own).
        mask : ndarray (H, W) bool, optional
            Nucleus mask; built automatically when None (smoothed density threshold, largest
            connected component, holes filled).
        params, calibration : ModelParams, CalibrationParams
        image_border : {"open", "wall", "periodic"}
            What lies beyond the image border (default "open": the image is a crop).

        Calibration (MODEL.md): inside the mask, the ``percentile_low`` .. ``percentile_high``
        range of the density maps affinely onto ``phi_h_low`` .. ``phi_h_high`` (clipped to
        ``[0, phi_max]``; with ``calibration.anchor == "mean"`` the map is then shifted so that
        ``<phi_h> = 1 - mean_nucleoplasm - phi_e``); euchromatin is uniform,
        ``phi_e = calibration.phi_e`` or, when None, ``1 - mean_nucleoplasm - <phi_h>`` so that
        ``<phi_w> = mean_nucleoplasm`` in the mask;
        ``phi_w = 1 - phi_h - phi_e``. Everything is recorded in ``.calibration``.
        """
        image_border = check_image_border(image_border, "from_density: image_border")
        params = params or ModelParams()
        calibration = calibration or CalibrationParams()
        if isinstance(calibration, dict):
            calibration = CalibrationParams.from_dict(calibration)
        origin_nm = (0.0, 0.0)
        source = "array"
        data = image
        if hasattr(image, "data") and hasattr(image, "pixel_size_nm"):
            data = image.data
            if pixel_size_nm is None:
                pixel_size_nm = image.pixel_size_nm
            origin_nm = tuple(float(v) for v in getattr(image, "origin_nm", (0.0, 0.0)))
            path = getattr(image, "path", None)
            source = str(path) if path is not None else "DensityImage"
        data = np.asarray(data, dtype=np.float64)
        data, as_phases = _select_channel(data, image, channel, source)
        if pixel_size_nm is None or not float(pixel_size_nm) > 0:
            raise FieldsError(
                f"from_density ({source}): a positive pixel_size_nm is required, found "
                f"{pixel_size_nm!r}"
            )
        pixel_size_nm = float(pixel_size_nm)
        spacing = pixel_size_nm / params.nm_per_unit
        if as_phases:
            fields = cls.from_phases(
                data[0],
                data[1],
                spacing,
                mask=mask,
                params=params,
                pixel_size_nm=pixel_size_nm,
                origin_nm=origin_nm,
                image_border=image_border,
            )
            fields.calibration.update({"source": source, "channels": "phi_w, phi_d"})
            return fields
        if data.ndim != 2:
            raise FieldsError(
                f"from_density ({source}): expected a 2D (H, W) density or a (C, H, W) "
                f"image with a chosen channel, found shape {data.shape}"
            )
        if min(data.shape) < 8:
            raise FieldsError(f"from_density ({source}): image {data.shape} is too small")
        finite = np.isfinite(data)
        if not finite.any():
            raise FieldsError(f"from_density ({source}): the image has no finite values")
        data = np.where(finite, data, 0.0)

        record: dict = {
            "source": source,
            "pixel_size_nm": pixel_size_nm,
            "nm_per_unit": params.nm_per_unit,
            "spacing_model_units": spacing,
            "image_border": image_border,
            **{f"calibration.{k}": v for k, v in calibration.to_dict().items()},
        }
        if mask is None:
            mask, mask_info = nucleus_mask(
                data, pixel_size_nm, calibration.mask_smoothing_nm, calibration.mask_threshold
            )
            record.update(mask_info)
            record["mask"] = "automatic"
        else:
            mask = _check_mask(mask, data.shape, f"from_density ({source})")
            record["mask"] = "given"
        mask &= finite
        if mask.sum() < 16:
            raise FieldsError(
                f"from_density ({source}): the nucleus mask has only {int(mask.sum())} pixels"
            )
        low, high = np.percentile(
            data[mask], [calibration.percentile_low, calibration.percentile_high]
        )
        if not high > low:
            raise FieldsError(
                f"from_density ({source}): the density is flat inside the nucleus "
                f"(percentiles {low:g} .. {high:g}); nothing to calibrate"
            )
        slope = (calibration.phi_h_high - calibration.phi_h_low) / (high - low)
        phi_h = np.clip(calibration.phi_h_low + slope * (data - low), 0.0, params.phi_max)
        if calibration.anchor == "mean":
            target_h = 1.0 - params.mean_nucleoplasm - float(calibration.phi_e)
            if not 0 < target_h < params.phi_max:
                raise FieldsError(
                    f"from_density ({source}): anchor 'mean' asks for <phi_h> = 1 - "
                    f"mean_nucleoplasm - phi_e = {target_h:.3g}, outside (0, phi_max)"
                )
            offset = 0.0
            for _ in range(20):  # clipping moves the mean: shift until it matches
                shifted = np.clip(phi_h + offset, 0.0, params.phi_max)
                gap = target_h - float(shifted[mask].mean())
                if abs(gap) < 1e-9:
                    break
                offset += gap
            phi_h = np.clip(phi_h + offset, 0.0, params.phi_max)
            record["anchor_offset"] = offset
        mean_h = float(phi_h[mask].mean())
        if calibration.phi_e is not None:
            phi_e_value = float(calibration.phi_e)
            phi_e_rule = "given"
        else:
            phi_e_value = 1.0 - params.mean_nucleoplasm - mean_h
            phi_e_rule = "1 - mean_nucleoplasm - <phi_h>_mask"
        if not phi_e_value > 0:
            raise FieldsError(
                f"from_density ({source}): the calibration gives phi_e = {phi_e_value:.3g} <= 0 "
                f"(mean phi_h {mean_h:.3g}, mean_nucleoplasm {params.mean_nucleoplasm}); lower "
                "phi_h_low / phi_h_high or mean_nucleoplasm"
            )
        # outside the nucleus keep the fields finite and smooth-ish; estimators exclude it
        phi_h = np.where(mask, phi_h, mean_h)
        phi_e = np.full(data.shape, phi_e_value)
        phi_w = 1.0 - phi_h - phi_e
        record.update(
            {
                "density_percentile_values": [float(low), float(high)],
                "phi_h_mean_mask": mean_h,
                "phi_e": phi_e_value,
                "phi_e_rule": phi_e_rule,
                "phi_w_mean_mask": float(phi_w[mask].mean()),
                "mask_fraction": float(mask.mean()),
            }
        )
        return cls(
            phi_h=phi_h,
            phi_e=phi_e,
            phi_w=phi_w,
            spacing=spacing,
            mask=mask,
            params=params,
            pixel_size_nm=pixel_size_nm,
            origin_nm=origin_nm,
            calibration=record,
            image_border=image_border,
        )
