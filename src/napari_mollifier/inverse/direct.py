"""Direct weak-form estimator of the rate-ratio map (MODEL.md, "What works").

Convolve the steady-state equation ``0 = lap(mu_d) + 2 Gamma_ac (lambda phi_e - phi_h)`` with a
mollifier ``eta`` and move every derivative onto ``eta``:

    eta * lap(mu_d) = (lap eta) * (g(phi_h) - phi_e) - l^2 (lap lap eta) * phi_d
    lambda ~= (eta * phi_h - eta * lap(mu_d) / (2 Gamma_ac)) / (eta * phi_e)

valid where lambda varies slowly on the scale of ``eta``. All convolutions go through the
mollifier engine (:func:`napari_mollifier.mollifier.mollified_derivatives`).

Edges: a **valid region**. The kernel has compact support (radius ``R`` pixels); an output pixel
is kept only if its whole ``(2R + 1)^2`` support lies inside the nucleus mask and inside the
image, so neither the nucleus rim nor the image border leaks inward. Outside the mask the fields
are replaced by their mask means (any finite value works: they never reach a valid pixel).

Width: ``mollifier_width=None`` picks it by the quasi-optimality rule on a geometric ladder of
widths starting at the smallest width that resolves 4th derivatives on the grid: the chosen
width minimises the median change of the map between neighbouring widths (narrow widths change
a lot because of noise, wide ones because of bias). The per-pixel ``uncertainty`` is the spread
(standard deviation) of the map over the chosen width and its two neighbours on the ladder: a
cheap sensitivity measure, not a calibrated posterior.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .api import ProgressEvent
from .result import RateMaps

LADDER_FACTOR = 1.2
LADDER_SIZE = 9


def _prepare(fields):
    try:
        phi_h = np.asarray(fields.phi_h, dtype=np.float64)
        phi_e = np.asarray(fields.phi_e, dtype=np.float64)
        spacing = float(fields.spacing)
        mask = np.asarray(fields.mask, dtype=bool)
    except AttributeError as exc:
        raise ValueError(
            f"direct estimator: expected ChromatinFields (phi_h, phi_e, spacing, mask), {exc}"
        ) from exc
    if phi_h.ndim != 2 or phi_h.shape != phi_e.shape or mask.shape != phi_h.shape:
        raise ValueError(
            f"direct estimator: phi_h, phi_e and mask must share one (H, W) shape, found "
            f"{phi_h.shape}, {phi_e.shape}, {mask.shape}"
        )
    mask = mask & np.isfinite(phi_h) & np.isfinite(phi_e)
    if mask.sum() == 0:
        raise ValueError("direct estimator: the nucleus mask is empty")
    # any finite fill works outside the mask: those values never reach a valid pixel
    phi_h = np.where(mask, phi_h, phi_h[mask].mean())
    phi_e = np.where(mask, phi_e, phi_e[mask].mean())
    return phi_h, phi_e, spacing, mask


class _Estimator:
    """Ratio maps at any width for one set of fields (the data stack is built once)."""

    def __init__(self, phi_h, phi_e, spacing, mask, config):
        self.phi_h, self.phi_e, self.spacing, self.mask = phi_h, phi_e, spacing, mask
        self.config = config
        model = config.model
        self.l2 = model.interface_length**2
        self.gamma_ac = model.gamma_ac
        g = phi_h * (model.phi_max - phi_h) * (model.phi_max - 2 * phi_h)
        self.stack = np.stack([phi_h, phi_e, g - phi_e, phi_h - phi_e])

    def radius_pixels(self, width: float) -> int:
        from ..mollifier import support_radius

        return int(
            math.floor(support_radius(self.config.kernel, width) / self.spacing * (1 - 1e-12))
        )

    def valid(self, width: float) -> np.ndarray:
        from scipy import ndimage

        r = self.radius_pixels(width)
        return ndimage.minimum_filter(
            self.mask.astype(np.uint8), size=2 * r + 1, mode="constant", cval=0
        ).astype(bool)

    def ratio(self, width: float):
        """(ratio, eta*phi_h, eta*phi_e, eta*lap(mu_d)) at ``width``; ratio NaN off-valid."""
        from ..mollifier import mollified_derivatives

        mol = mollified_derivatives(
            self.stack,
            width,
            (self.spacing, self.spacing),
            ("value", "laplacian", "biharmonic"),
            kernel=self.config.kernel,
            boundary="reflect",
        )
        lap_mu = mol["laplacian"][2] - self.l2 * mol["biharmonic"][3]
        m_h, m_e = mol["value"][0], mol["value"][1]
        valid = self.valid(width) & (m_e > 1e-6)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (m_h - lap_mu / (2 * self.gamma_ac)) / m_e
        ratio = np.where(valid, ratio, np.nan)
        return ratio, m_h, m_e, lap_mu, valid


def _ladder(kernel: str, spacing: float, shape) -> list[float]:
    from ..mollifier import min_width, support_radius

    w0 = 1.02 * min_width(kernel, 4, spacing)
    # keep at least a quarter of the smaller image side valid
    max_radius = 0.375 * min(shape) * spacing
    widths = []
    for k in range(LADDER_SIZE):
        w = w0 * LADDER_FACTOR**k
        if support_radius(kernel, w) > max_radius and widths:
            break
        widths.append(w)
    return widths


def iter_direct(fields, config, stop=None):
    """Generator: one progress event per ladder width, then the final event with the result.

    Parameters
    ----------
    fields : ChromatinFields
    config : InferenceConfig
        Uses ``mollifier_width`` (model units, None = automatic), ``kernel``, ``model``.
    stop : StopToken or None
        Checked between widths; stopping early uses the best width so far.
    """
    from .._provenance import provenance
    from ..mollifier import min_width, support_radius

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    phi_h, phi_e, spacing, mask = _prepare(fields)
    est = _Estimator(phi_h, phi_e, spacing, mask, config)
    timings["prepare"] = time.perf_counter() - t_start

    t0 = time.perf_counter()
    criterion: dict[float, float] = {}
    maps: dict[float, np.ndarray] = {}
    if config.mollifier_width is not None:
        width = float(config.mollifier_width)
        smallest = min_width(config.kernel, 4, spacing)
        if width < smallest * (1 - 1e-9):
            raise ValueError(
                f"mollifier_width {width:.4g} model units is too narrow for the 4th derivatives "
                f"of the {config.kernel!r} kernel at spacing {spacing:.4g}: use >= {smallest:.4g}"
            )
        ladder = [width / LADDER_FACTOR, width, width * LADDER_FACTOR]
        ladder = [w for w in ladder if w >= smallest * (1 - 1e-9)]
        for w in ladder:
            maps[w] = est.ratio(w)[0]
        width_rule = "given"
        yield ProgressEvent(
            1,
            2,
            elapsed_s=time.perf_counter() - t_start,
            message=f"mollifier width {width:.3g} (given)",
        )
    else:
        ladder = _ladder(config.kernel, spacing, phi_h.shape)
        total = len(ladder) + 1
        prev = None
        for i, w in enumerate(ladder):
            maps[w] = est.ratio(w)[0]
            if prev is not None:
                both = np.isfinite(maps[w]) & np.isfinite(maps[prev])
                if both.sum() > 0:
                    scale = np.median(np.abs(maps[w][both])) + 1e-12
                    criterion[prev] = float(
                        np.median(np.abs(maps[w][both] - maps[prev][both])) / scale
                    )
            prev = w
            yield ProgressEvent(
                i + 1,
                total,
                losses={},
                elapsed_s=time.perf_counter() - t_start,
                message=f"width {w:.3g}",
                extra={"width": w},
            )
            if stop is not None and stop.is_set():
                break
        if criterion:
            width = min(criterion, key=criterion.get)
        else:
            width = ladder[0]
        width_rule = "quasi-optimality (min median relative change between ladder widths)"
    timings["width_selection"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ratio, m_h, m_e, lap_mu, valid = est.ratio(width)
    # residual of the steady state with the recovered lambda, mollified at the same width
    from ..mollifier import mollified_derivatives

    lam_filled = np.where(valid, ratio, np.nanmedian(ratio) if valid.any() else 1.0)
    m_lam_e = mollified_derivatives(
        lam_filled * phi_e,
        width,
        (spacing, spacing),
        ("value",),
        kernel=config.kernel,
        boundary="reflect",
    )["value"]
    residual = lap_mu + 2 * config.model.gamma_ac * (m_lam_e - m_h)
    residual = np.where(valid, residual, np.nan)
    # uncertainty: spread over the chosen width and its ladder neighbours
    keys = sorted(maps)
    idx = min(range(len(keys)), key=lambda i: abs(keys[i] - width))
    neighbours = [maps[keys[i]] for i in range(max(idx - 1, 0), min(idx + 2, len(keys)))]
    uncertainty = None
    if len(neighbours) >= 2:
        with warnings.catch_warnings():  # all-NaN stacks outside the valid region
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = np.nanstd(np.stack(neighbours), axis=0)
        uncertainty = np.where(valid, spread, np.nan)
    timings["estimate"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    both = valid
    balance_lhs = float(np.mean(ratio[both] * phi_e[both])) if both.any() else float("nan")
    balance_rhs = float(np.mean(phi_h[both])) if both.any() else float("nan")
    metadata = provenance(device="cpu")
    metadata.update(
        {
            "method": "direct",
            "mollifier_width": float(width),
            "mollifier_width_rule": width_rule,
            "mollifier_radius_pixels": est.radius_pixels(width),
            "kernel": config.kernel,
            "seed": config.seed,
            "calibration": dict(getattr(fields, "calibration", {}) or {}),
            "edge_handling": "valid region: kernel support inside the mask and the image",
            "uncertainty": "std of the ratio over the chosen width and its ladder neighbours"
            if uncertainty is not None
            else None,
        }
    )
    diagnostics = {
        "width_ladder": [float(w) for w in sorted(maps)],
        "width_criterion": {f"{w:.5g}": v for w, v in criterion.items()},
        "mollifier_width": float(width),
        "min_width_4th_order": float(min_width(config.kernel, 4, spacing)),
        "support_radius_model_units": float(support_radius(config.kernel, width)),
        "global_balance_lambda_phi_e": balance_lhs,
        "global_balance_phi_h": balance_rhs,
        "valid_fraction": float(valid.mean()),
        "residual_rms": float(np.sqrt(np.nanmean(residual**2))) if valid.any() else None,
    }
    result = RateMaps(
        ratio=ratio,
        phi_h=np.where(valid, m_h, np.nan),
        residual=residual,
        uncertainty=uncertainty,
        valid_mask=valid,
        config=config,
        spacing=spacing,
        pixel_size_nm=getattr(fields, "pixel_size_nm", None),
        origin_nm=tuple(getattr(fields, "origin_nm", (0.0, 0.0))),
        timings=timings,
        metadata=metadata,
        diagnostics=diagnostics,
    )
    yield ProgressEvent(
        len(maps) + 1,
        len(maps) + 1,
        elapsed_s=time.perf_counter() - t_start,
        message=f"done (mollifier width {width:.3g} model units)",
        result=result,
        extra={"width": float(width)},
    )
