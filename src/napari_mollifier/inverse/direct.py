"""Direct weak-form estimator of the rate-ratio map (MODEL.md, "What works").

Convolve the steady-state equation ``0 = lap(mu_d) + 2 Gamma_ac (lambda phi_e - phi_h)`` with a
mollifier ``eta`` and move every derivative onto ``eta``:

    eta * lap(mu_d) = (lap eta) * (g(phi_h) - phi_e) - l^2 (lap lap eta) * phi_d
    lambda ~= (eta * phi_h - eta * lap(mu_d) / (2 Gamma_ac)) / (eta * phi_e)

valid where lambda varies slowly on the scale of ``eta``. All convolutions go through the
mollifier engine (:func:`napari_mollifier.mollifier.mollified_derivatives`).

Edges: the nuclear envelope (the outline of the mask) is a **no-flux wall**. The fields are
extended across it by reflection (:func:`napari_mollifier.mollifier.boundary_derivatives`),
which keeps the weak form exact up to a straight wall and to first order in the curvature on a
curved one, so every mask pixel is mapped. The image border follows ``prepared.image_border``:
"wall" (mirror), "periodic" (wrap) or "open" (default: where the nucleus is cut by the border,
pixels whose kernel support leaves the image stay unmapped). A lamina affinity ``h``
(``config.model.lamina_affinity``, given by the user; 0 by default) enters as the wall term
``-h w`` of ``mu_d`` (``w`` the wall's line density, :func:`~napari_mollifier.mollifier.
wall_line_density`): with it the weak form stays exact along a LAD layer; ignoring a real
affinity biases the ratio in the band along the envelope (docs/validation.md).

Width: ``mollifier_width=None`` picks it by the quasi-optimality rule on a geometric ladder of
widths (``config.direct``) starting at the smallest width that resolves 4th derivatives on the
grid: the chosen width minimises the median change of the map between neighbouring widths
(narrow widths change a lot because of noise, wide ones because of bias). The per-pixel
``uncertainty`` is the spread (standard deviation) of the map over the chosen width and its two
neighbours on the ladder: a cheap sensitivity measure, not a calibrated posterior. It grows
towards the envelope where the map leans on the wall conditions (measured 1.0-1.7x the
interior's, docs/validation.md); the diagnostics say how much of the kernel falls on reflected
pixels (``reflected_weight_*``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator

import numpy as np

from ..physics.chromatin import g
from .events import ProgressEvent
from .prepared import PreparedFields
from .result import RateMaps


class _Estimator:
    """Ratio maps at any width up to ``max_width`` for one set of fields: the fields are
    extended across the walls and transformed once (:class:`~napari_mollifier.mollifier.
    spectral.SpectralStack`), each width costs two inverse FFTs."""

    def __init__(self, prepared: PreparedFields, kernel: str, max_width: float):
        from ..mollifier import wall_line_density
        from ..mollifier.spectral import SpectralStack

        self.prepared, self.kernel = prepared, kernel
        self.spacing, self.mask = prepared.spacing, prepared.mask
        self.image_border = prepared.image_border
        model = prepared.params
        self.l2 = model.interface_length**2
        self.gamma_ac = model.gamma_ac
        self.lamina = float(model.lamina_affinity)
        phi_h, phi_e = prepared.phi_h, prepared.phi_e
        # mu_d without its gradient term; a lamina affinity adds -h w along the envelope
        mu_bulk = g(phi_h, model.phi_max) - phi_e
        if self.lamina:
            mu_bulk = mu_bulk - self.lamina * wall_line_density(
                self.mask, self.spacing, self.image_border
            )
        self.fields = SpectralStack(
            np.stack([phi_h, phi_e, mu_bulk]),
            self.mask,
            self.spacing,
            max_width,
            self.image_border,
            kernel=kernel,
        )
        self._valid: dict[int, np.ndarray] = {}
        self._parts: dict[float, tuple] = {}  # width -> (numerator, eta * phi_e)

    def radius_pixels(self, width: float) -> int:
        from ..mollifier import radius_pixels

        return radius_pixels(self.kernel, width, self.spacing)

    def valid(self, width: float) -> np.ndarray:
        """Mask pixels whose kernel support is known (cached per kernel radius)."""
        r = self.radius_pixels(width)
        if r not in self._valid:
            self._valid[r] = self.fields.valid(width)
        return self._valid[r]

    def lap_mu(self) -> dict:
        """``eta * lap(mu_d)`` as a combination of the channels phi_h, phi_e, mu_bulk."""
        return {0: {"biharmonic": -self.l2}, 1: {"biharmonic": self.l2}, 2: {"laplacian": 1.0}}

    def numerator(self) -> dict:
        """``eta * phi_h - eta * lap(mu_d) / (2 Gamma_ac)`` as a channel combination."""
        c = 1.0 / (2 * self.gamma_ac)
        combination = {0: {"value": 1.0}}
        for channel, terms in self.lap_mu().items():
            for name, coef in terms.items():
                combination.setdefault(channel, {})[name] = -c * coef
        return combination

    def ratio_map(self, width: float) -> np.ndarray:
        """The ratio at ``width`` (NaN off-valid): numerator and denominator, one FFT each
        (both kept for :meth:`ratio` at the chosen width)."""
        m_e = self.fields.combine(width, {1: {"value": 1.0}})
        numerator = self.fields.combine(width, self.numerator())
        self._parts[width] = (numerator, m_e)
        return self._divide(numerator, m_e, width)[0]

    def keep_parts(self, widths) -> None:
        """Forget the kept numerators and denominators except at ``widths``."""
        self._parts = {w: v for w, v in self._parts.items() if w in widths}

    def ratio(self, width: float):
        """(ratio, eta*phi_h, eta*phi_e, numerator, valid) at ``width``; ratio NaN off-valid.
        The numerator ``eta * phi_h - eta * lap(mu_d) / (2 Gamma_ac)`` and ``eta * phi_e``
        are reused from :meth:`ratio_map` when kept."""
        if width not in self._parts:
            self.ratio_map(width)
        numerator, m_e = self._parts[width]
        m_h = self.fields.combine(width, {0: {"value": 1.0}})
        ratio, valid = self._divide(numerator, m_e, width)
        return ratio, m_h, m_e, numerator, valid

    def _divide(self, numerator, m_e, width):
        valid = self.valid(width) & (m_e > 1e-6)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = numerator / m_e
        return np.where(valid, ratio, np.nan), valid

    def mollified_value(self, field, width: float) -> np.ndarray:
        """``eta * field`` with the same walls (the residual's ``eta * (lambda phi_e)``)."""
        return self.fields.transform(field).combine(width, {0: {"value": 1.0}})

    def reflected_weight(self, width: float) -> np.ndarray:
        return self.fields.reflected_weight(width)


def ladder(config, spacing: float, shape) -> list[float]:
    """The automatic-width ladder (model units): geometric from just above the smallest width
    resolving 4th derivatives, while a quarter of the smaller image side stays valid."""
    from ..mollifier import min_width, support_radius

    w0 = 1.02 * min_width(config.kernel, 4, spacing)
    max_radius = 0.375 * min(shape) * spacing
    widths = []
    for k in range(config.direct.ladder_size):
        w = w0 * config.direct.ladder_factor**k
        if support_radius(config.kernel, w) > max_radius and widths:
            break
        widths.append(w)
    return widths


def _given_widths(config, spacing: float) -> list[float]:
    """The given width and its two ladder neighbours (for the uncertainty)."""
    from ..mollifier import min_width

    width = float(config.mollifier_width)
    smallest = min_width(config.kernel, 4, spacing)
    if width < smallest * (1 - 1e-9):
        raise ValueError(
            f"mollifier_width {width:.4g} model units is too narrow for the 4th derivatives "
            f"of the {config.kernel!r} kernel at spacing {spacing:.4g}: use >= {smallest:.4g}"
        )
    factor = config.direct.ladder_factor
    return [w for w in (width / factor, width, width * factor) if w >= smallest * (1 - 1e-9)]


#: The width criterion's medians are taken on a regular sub-grid of at most about this many
#: pixels (every pixel up to 512^2): the same choice on large images at a fraction of the cost.
CRITERION_PIXELS = 2**18


def _relative_change(new: np.ndarray, old: np.ndarray) -> float | None:
    """Median |new - old| over the median |new| where both are mapped (None if nowhere)."""
    stride = max(1, int(np.sqrt(new.size / CRITERION_PIXELS)))
    new, old = new[::stride, ::stride], old[::stride, ::stride]
    both = np.isfinite(new) & np.isfinite(old)
    if not both.any():
        return None
    a, b = new[both], old[both]
    return float(np.median(np.abs(a - b)) / (np.median(np.abs(a)) + 1e-12))


def _scan_ladder(est: _Estimator, widths, maps: dict, criterion: dict, stop, t_start):
    """Generator over the ladder widths (one event each), filling ``maps`` and ``criterion``."""
    previous = None
    for i, w in enumerate(widths):
        maps[w] = est.ratio_map(w)
        if previous is not None:
            change = _relative_change(maps[w], maps[previous])
            if change is not None:
                criterion[previous] = change
        best = min(criterion, key=criterion.get) if criterion else None
        est.keep_parts({best, w})  # the final map reuses the chosen width's FFTs
        previous = w
        yield ProgressEvent(
            i + 1,
            len(widths) + 1,
            losses={},
            elapsed_s=time.perf_counter() - t_start,
            message=f"width {w:.3g}",
            extra={"width": w},
        )
        if stop is not None and stop.is_set():
            break


def _uncertainty(maps: dict, width: float, valid: np.ndarray) -> np.ndarray | None:
    """Spread of the ratio over the chosen width and its ladder neighbours."""
    keys = sorted(maps)
    idx = min(range(len(keys)), key=lambda i: abs(keys[i] - width))
    neighbours = [maps[keys[i]] for i in range(max(idx - 1, 0), min(idx + 2, len(keys)))]
    if len(neighbours) < 2:
        return None
    with warnings.catch_warnings():  # all-NaN stacks outside the valid region
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanstd(np.stack(neighbours), axis=0)
    return np.where(valid, spread, np.nan)


def _residual(est: _Estimator, width, ratio, numerator, valid) -> np.ndarray:
    """Steady-state residual ``eta * lap(mu_d) + 2 Gamma_ac eta * (lambda phi_e - phi_h)``
    with the recovered lambda, at the same width; equal to ``2 Gamma_ac (eta * (lambda
    phi_e) - numerator)``."""
    lam_filled = np.where(valid, ratio, np.nanmedian(ratio) if valid.any() else 1.0)
    m_lam_e = est.mollified_value(lam_filled * est.prepared.phi_e, width)
    residual = 2 * est.gamma_ac * (m_lam_e - numerator)
    return np.where(valid, residual, np.nan)


def iter_direct(prepared: PreparedFields, config, stop=None) -> Iterator[ProgressEvent]:
    """Generator: one progress event per ladder width, then the final event with the result.

    Parameters
    ----------
    prepared : PreparedFields
    config : InferenceConfig
        Uses ``mollifier_width`` (model units, None = automatic), ``kernel``, ``direct``.
    stop : StopToken or None
        Checked between widths; stopping early uses the best width so far.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    given = config.mollifier_width is not None
    if given:
        widths = _given_widths(config, prepared.spacing)
    else:
        widths = ladder(config, prepared.spacing, prepared.mask.shape)
    est = _Estimator(prepared, config.kernel, max(widths))
    timings["prepare"] = time.perf_counter() - t_start

    t0 = time.perf_counter()
    criterion: dict[float, float] = {}
    maps: dict[float, np.ndarray] = {}
    if given:
        maps.update({w: est.ratio_map(w) for w in widths})
        width = float(config.mollifier_width)
        width_rule = "given"
        message = f"mollifier width {width:.3g} (given)"
        yield ProgressEvent(1, 2, elapsed_s=time.perf_counter() - t_start, message=message)
    else:
        yield from _scan_ladder(est, widths, maps, criterion, stop, t_start)
        width = min(criterion, key=criterion.get) if criterion else min(maps)
        width_rule = "quasi-optimality (min median relative change between ladder widths)"
    timings["width_selection"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ratio, m_h, m_e, numerator, valid = est.ratio(width)
    residual = _residual(est, width, ratio, numerator, valid)
    uncertainty = _uncertainty(maps, width, valid)
    timings["estimate"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    maps_out = {"ratio": ratio, "phi_h": m_h, "residual": residual, "uncertainty": uncertainty}
    result = _assemble(
        est,
        config,
        width=width,
        width_rule=width_rule,
        out=maps_out,
        valid=valid,
        maps=maps,
        criterion=criterion,
        timings=timings,
    )
    yield ProgressEvent(
        len(maps) + 1,
        len(maps) + 1,
        elapsed_s=time.perf_counter() - t_start,
        message=f"done (mollifier width {width:.3g} model units)",
        result=result,
        extra={"width": float(width)},
    )


def estimate_direct(prepared: PreparedFields, config, stop=None) -> RateMaps:
    """The direct estimator's result (drains :func:`iter_direct`)."""
    result = None
    for event in iter_direct(prepared, config, stop):
        result = event.result or result
    return result


def _assemble(est, config, *, width, width_rule, out, valid, maps, criterion, timings) -> RateMaps:
    from .._provenance import provenance
    from ..mollifier import min_width, support_radius

    prepared = est.prepared
    ratio, phi_h, phi_e = out["ratio"], prepared.phi_h, prepared.phi_e
    any_valid = bool(valid.any())
    weight = est.reflected_weight(width)
    metadata = provenance(device="cpu")
    metadata.update(
        {
            "method": "direct",
            "mollifier_width": float(width),
            "mollifier_width_rule": width_rule,
            "mollifier_radius_pixels": est.radius_pixels(width),
            "kernel": config.kernel,
            "seed": config.seed,
            "calibration": prepared.calibration,
            "edge_handling": (
                "the mask outline is the nuclear envelope, a no-flux wall: fields reflected "
                f"across it; image border {est.image_border!r}"
            ),
            "image_border": est.image_border,
            "uncertainty": "std of the ratio over the chosen width and its ladder neighbours "
            "(it grows towards the envelope where the map leans on the wall conditions)"
            if out["uncertainty"] is not None
            else None,
        }
    )
    diagnostics = {
        "width_ladder": [float(w) for w in sorted(maps)],
        "width_criterion": {f"{w:.5g}": v for w, v in criterion.items()},
        "mollifier_width": float(width),
        "min_width_4th_order": float(min_width(config.kernel, 4, est.spacing)),
        "support_radius_model_units": float(support_radius(config.kernel, width)),
        "global_balance_lambda_phi_e": float(np.mean(ratio[valid] * phi_e[valid]))
        if any_valid
        else float("nan"),
        "global_balance_phi_h": float(np.mean(phi_h[valid])) if any_valid else float("nan"),
        "valid_fraction": float(valid.mean()),
        "mask_coverage": float(valid[est.mask].mean()),
        "reflected_weight_max": float(weight[valid].max()) if any_valid else 0.0,
        "reflected_weight_mean": float(weight[valid].mean()) if any_valid else 0.0,
        "residual_rms": float(np.sqrt(np.nanmean(out["residual"] ** 2))) if any_valid else None,
    }
    return RateMaps(
        ratio=ratio,
        phi_h=np.where(valid, out["phi_h"], np.nan),
        residual=out["residual"],
        uncertainty=out["uncertainty"],
        valid_mask=valid,
        config=config,
        spacing=est.spacing,
        pixel_size_nm=prepared.pixel_size_nm,
        origin_nm=tuple(prepared.origin_nm),
        timings=timings,
        metadata=metadata,
        diagnostics=diagnostics,
    )
