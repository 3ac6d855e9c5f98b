"""The mollified PINN (``method="pinn"``) and its autodiff twin (``method="pinn-autodiff"``).

What is learned
---------------
A backbone (:mod:`napari_mollifier.nets`) maps pixel-centre coordinates (y, x) in model units to
three raw outputs ``o = (o_w, o_d, o_r)``:

- fields: ``phi_w = data_w + s * o_w``, ``phi_d = data_d + s * o_d`` ("correction" mode, the
  default for ``"pinn"``; ``s`` is the estimated noise level of the data) or
  ``phi = mean + std * o`` ("network" mode, forced for ``"pinn-autodiff"`` because a pixel grid
  cannot be differentiated with respect to coordinates);
- rate map through a positive link: ``lambda = lambda_ref * exp(o_r)``, with ``lambda_ref`` the
  direct estimator's map, extended to the whole image and smoothed (warm start: the output
  layer starts at zero, so step 0 is exactly the warm start).

Why a positive-link rate output rather than reading lambda in closed form from the fitted fields:
the closed form ``(eta*phi_h - eta*lap(mu_d)/2) / eta*phi_e`` is the direct estimator again and
inherits its noise; a rate output lets the loss weigh the residual over a whole patch under a
smoothness prior, and uses the exact ``eta * (lambda phi_e)`` instead of approximating it by
``lambda * (eta * phi_e)``.

Where the gain over the direct estimator comes from: **the second steady-state equation**.
At a steady state ``d phi_w / dt = lap(mu_w) = 0``, so ``mu_w`` is constant. That equation has
no lambda in it, but it constrains the fields: noise in the data violates it, and the field
corrections that remove this violation remove, to first order, the same noise components that the
rate equation would otherwise turn into lambda (both equations see the noise through
``lap eta * (g'(phi_h) n_h)`` and ``lap eta * n_e``). The direct estimator (MODEL.md) uses the rate
equation only. This needs an observed ``phi_e`` (two-channel input ``phi_w, phi_d``): a calibrated
single-channel density has ``phi_e`` uniform by assumption, such fields violate ``mu_w = const``,
and letting the corrections vary ``phi_e`` freely did worse than leaving the equation out (r 0.978
against 0.993 on the optical-path validation). ``PinnOptions.equations = "auto"`` therefore uses
both equations for two-channel input and the rate equation alone for a density.

Loss, on a random ``patch_size`` patch plus the kernel halo; residuals at the patch pixels whose
whole kernel support lies inside the nucleus mask and the image, data and prior over the mask::

    R_rate = (lap eta)*(g(phi_h) - phi_e) - l^2 (lap lap eta)*phi_d + 2 eta*(lambda phi_e - phi_h)
    R_w    = (lap eta)*(-g(phi_h) - phi_e) - l^2 (lap lap eta)*phi_w
    loss = w_res   * mean((R_rate / (2 <phi_e>))^2) / r0        r0: the same at the warm start
         + w_res_w * mean((R_w / (2 <phi_e>))^2) / r0_w
         + w_data  * mean((phi - data)^2 / sigma^2) / 2          sigma: noise level of the data
         + w_smooth * L^2 * mean(|grad log lambda|^2) / 2        L: prior length (model units)

In "pinn-autodiff" the residuals' strong forms are computed at every patch pixel by nested
autograd and then mollified by eta (``eta * R_strong`` equals the weak form for smooth fields),
so both methods minimise the same loss.

Scaling: training touches one patch (plus halo) per step, so memory does not depend on the image
size; maps are evaluated in tiles. Uncertainty: ``ensemble_size`` members (seeds
``seed + 1000 k``, own patch draws) split the step budget; the ratio is their mean and the
uncertainty ``UNCERTAINTY_SCALE`` times their standard deviation (calibrated on simulated data).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from .api import ProgressEvent
from .config import InferenceConfig
from .device import out_of_memory_as_error, resolve_device

#: The member spread misses most of the error (all members share the data's noise and the warm
#: start; smoothing bias, model error): the uncertainty map is this factor times the ensemble
#: standard deviation, fitted on simulated data (default config: 3 members, 2000 steps; noise
#: 1-10 %) so that ``|ratio - truth| <= 2 * uncertainty`` holds for 95 % of the valid pixels.
#: Held-out coverage: 0.99 / 0.94 / 0.85 at 1 / 5 / 10 % noise (docs/validation.md;
#: ``python benchmarks/pinn.py --only calibration`` refits it).
UNCERTAINTY_SCALE = 5.85


@dataclass
class PinnOptions:
    """Training knobs not (yet) in :class:`InferenceConfig`; the defaults are the tuned ones.

    Attributes
    ----------
    fields_mode : {"correction", "network"}
        How the fields are parametrised (see module docstring); "pinn-autodiff" forces "network".
    preset : str
        Backbone size preset (:data:`napari_mollifier.nets.PRESETS`).
    equations : {"auto", "both", "rate"}
        "both": the loss holds both steady-state equations, the rate equation
        ``lap(mu_d) + 2 (lambda phi_e - phi_h) = 0`` and the nucleoplasm equation
        ``lap(mu_w) = 0``; "rate": the first only. The second one carries no lambda but
        constrains the fields: it is what lets the fitted fields shed the part of the noise the
        rate equation would turn into lambda (see the module docstring). "auto": "both" when
        the input observes phi_e (two channels, phi_w and phi_d), "rate" when phi_e is uniform
        (a calibrated single-channel density, whose fields violate ``mu_w = const``).
    weight_residual, weight_residual_w, weight_data, weight_smooth : float
        Loss weights of the rate-equation residual, the nucleoplasm-equation residual (each
        relative to its size at the warm start), the data misfit and the smoothness prior.
    prior_length : float
        Length (model units) of the smoothness prior on log lambda.
    ref_smoothing : float
        Gaussian sigma (model units) applied to log of the direct map to make ``lambda_ref``.
    correction_scale : float
        Field correction per unit output, in units of the data noise level ("correction" mode).
    zero_mean_corrections : bool
        Remove the mean (over the mask of each window) from the field corrections.
    perturb_data : bool
        With two or more ensemble members, each trains on the data plus its own draw of the
        estimated noise, so that the member spread (the uncertainty map) includes the effect
        of the data noise.
    final_lr_fraction : float
        Cosine learning-rate schedule from ``learning_rate`` down to this fraction of it.
    patience : int
        Stop a member early when its smoothed loss has not improved by 0.1 % for this many steps.
    average_from : float
        Fraction of a member's steps after which its weights are averaged (the average is the
        member's result); 1.0 or more switches averaging off.
    eval_tile : int
        Tile size (pixels, without halo) for evaluating the maps.
    progress_interval_s : float
        Minimum time between progress events.
    width_factor : float
        Without ``config.mollifier_width``, the PINN's mollifier width is this fraction of the
        direct estimator's automatic width, but at least 2 x the smallest resolving width (or
        the direct width, if that is smaller).
    """

    fields_mode: str = "correction"
    preset: str = "default"
    equations: str = "auto"
    weight_residual: float = 10.0
    weight_residual_w: float = 10.0
    weight_data: float = 1.0
    weight_smooth: float = 2.0
    prior_length: float = 1.0
    ref_smoothing: float = 0.3
    correction_scale: float = 2.0
    zero_mean_corrections: bool = True
    perturb_data: bool = False
    final_lr_fraction: float = 0.05
    patience: int = 400
    average_from: float = 0.5
    eval_tile: int = 128
    progress_interval_s: float = 0.25
    width_factor: float = 0.7


def iter_pinn(
    fields,
    config: InferenceConfig,
    stop=None,
    options: PinnOptions | None = None,
) -> Iterator[ProgressEvent]:
    """Train the mollified PINN on ``fields`` and yield progress; the last event has ``.result``.

    Parameters
    ----------
    fields : ChromatinFields
        phi_h, phi_e, phi_w (H, W), ``spacing`` (model units / pixel), optional ``mask`` (H, W)
        bool, ``pixel_size_nm``, ``origin_nm``.
    config : InferenceConfig
        ``method`` "pinn" or "pinn-autodiff"; ``backbone``, ``steps`` (total over the ensemble),
        ``learning_rate``, ``patch_size`` (pixels), ``ensemble_size``, ``device``, ``seed``,
        ``mollifier_width``, ``kernel``, ``model``.
    stop : threading.Event or None
        Checked before every step; when set, training ends and the best members so far are
        evaluated into the result.
    options : PinnOptions or None
    """
    import torch

    options = options or PinnOptions()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    autodiff = config.method == "pinn-autodiff"
    if autodiff:
        options = PinnOptions(**{**asdict(options), "fields_mode": "network"})
    if options.fields_mode not in ("correction", "network"):
        raise ValueError(
            "PinnOptions.fields_mode: expected 'correction' or 'network', "
            f"found {options.fields_mode!r}"
        )
    device, device_reason = resolve_device(config.device)
    data = _read_fields(fields)
    total = int(config.steps)
    yield ProgressEvent(0, total, elapsed_s=0.0, message="warm start (direct estimator)")

    t0 = time.perf_counter()
    warm = _warm_start(fields, config, data, options)
    timings["warm_start_s"] = time.perf_counter() - t0
    width = warm["width"]

    problem = _Problem(data, warm, config, options, device)
    members = max(1, int(config.ensemble_size))
    steps_per_member = [total // members + (k < total % members) for k in range(members)]
    history: list[dict] = []
    trained: list[dict] = []
    step_done = 0
    last_emit = 0.0
    stopped = False
    t0 = time.perf_counter()
    previous = _set_determinism(torch, device)
    try:
        with out_of_memory_as_error(device, config.patch_size):
            for member in range(members):
                if stopped or steps_per_member[member] == 0:
                    break
                trainer = _MemberTrainer(problem, config, options, member, autodiff)
                perturb = options.perturb_data and members > 1
                problem.use_data(int(config.seed) + 7919 * (member + 1) if perturb else None)
                for local in range(steps_per_member[member]):
                    if stop is not None and stop.is_set():
                        stopped = True
                        break
                    losses = trainer.step(local, steps_per_member[member])
                    step_done += 1
                    if local % 10 == 0 or local == steps_per_member[member] - 1:
                        history.append({"member": member, "step": local, **losses})
                    now = time.perf_counter()
                    if now - last_emit >= options.progress_interval_s:
                        last_emit = now
                        yield ProgressEvent(
                            step_done,
                            total,
                            losses=losses,
                            elapsed_s=now - t_start,
                            message=f"training member {member + 1}/{members}",
                            extra={"width": width, "member": member, "lr": trainer.lr},
                        )
                    if trainer.converged():
                        break
                trained.append(trainer.summary())
            timings["train_s"] = time.perf_counter() - t0
            problem.use_data(None)
            if not trained:  # stopped before the first step: the warm start is the best so far
                trainer = _MemberTrainer(problem, config, options, 0, autodiff)
                trained.append(trainer.summary())
            yield ProgressEvent(
                step_done,
                total,
                elapsed_s=time.perf_counter() - t_start,
                message="evaluating tiles" + (f" (stopped at step {step_done})" if stopped else ""),
                extra={"width": width},
            )
            t0 = time.perf_counter()
            maps = [problem.evaluate(m["state"], m["model_factory"]) for m in trained]
            # the untrained network (zero output layer) is the warm start: its residual is the
            # reference for how much training reduced the physics residual
            warm_maps = problem.evaluate(None, trained[0]["model_factory"])
            timings["evaluate_s"] = time.perf_counter() - t0
    finally:
        _restore_determinism(torch, previous)
    timings["total_s"] = time.perf_counter() - t_start
    result = _assemble(
        fields,
        config,
        data,
        warm,
        problem,
        maps,
        trained,
        history,
        timings,
        device,
        device_reason,
        stopped,
        step_done,
        options,
        warm_maps,
    )
    message = f"stopped at step {step_done}" if stopped else f"done ({step_done} steps)"
    yield ProgressEvent(
        step_done,
        total,
        losses=trained[-1]["final_losses"],
        elapsed_s=timings["total_s"],
        message=message,
        result=result,
        extra={"width": width},
    )


# --- inputs ---------------------------------------------------------------------------------
def _read_fields(fields) -> dict:
    """Pull float64 arrays, mask and spacing out of a ChromatinFields-like object."""
    try:
        phi_h = np.asarray(fields.phi_h, dtype=np.float64)
        phi_e = np.asarray(fields.phi_e, dtype=np.float64)
        phi_w = np.asarray(fields.phi_w, dtype=np.float64)
        spacing = float(fields.spacing)
    except AttributeError as exc:
        raise ValueError(
            f"PINN input: expected ChromatinFields with phi_h, phi_e, phi_w and spacing ({exc})"
        ) from exc
    if phi_h.ndim != 2 or phi_h.shape != phi_e.shape or phi_h.shape != phi_w.shape:
        raise ValueError(
            f"PINN input: expected three (H, W) fields of one shape, found {phi_h.shape}, "
            f"{phi_e.shape}, {phi_w.shape}"
        )
    if not spacing > 0:
        raise ValueError(f"PINN input: spacing must be > 0 model units per pixel, found {spacing}")
    mask = getattr(fields, "mask", None)
    mask = np.ones(phi_h.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != phi_h.shape:
        raise ValueError(f"PINN input: mask shape {mask.shape} differs from fields {phi_h.shape}")
    if not mask.any():
        raise ValueError("PINN input: the nucleus mask is empty")
    finite = np.isfinite(phi_h) & np.isfinite(phi_e) & np.isfinite(phi_w)
    mask = mask & finite
    fill = lambda a: np.where(finite, a, np.nanmedian(np.where(mask, a, np.nan)))  # noqa: E731
    phi_h, phi_e, phi_w = fill(phi_h), fill(phi_e), fill(phi_w)
    inside = phi_e[mask]
    return {
        "phi_e_observed": bool(np.ptp(inside) > 1e-9 * max(abs(float(inside.mean())), 1.0)),
        "phi_w": phi_w,
        "phi_d": phi_h - phi_e,
        "mask": mask,
        "spacing": spacing,
        "shape": phi_h.shape,
    }


def _noise_level(u: np.ndarray, mask: np.ndarray) -> float:
    """Robust white-noise std of ``u`` from the MAD of a 5-point Laplacian inside the mask."""
    lap = 4 * u[1:-1, 1:-1] - u[:-2, 1:-1] - u[2:, 1:-1] - u[1:-1, :-2] - u[1:-1, 2:]
    inner = mask[1:-1, 1:-1]
    if inner.sum() < 16:
        return 1e-3
    vals = lap[inner]
    mad = np.median(np.abs(vals - np.median(vals)))
    return float(max(1.4826 * mad / math.sqrt(20.0), 1e-3))


def _warm_start(fields, config: InferenceConfig, data: dict, options: PinnOptions) -> dict:
    """Run the direct estimator (automatic width), choose the PINN's width, and build the smooth
    reference map ``lambda_ref`` on the whole image."""
    from scipy import ndimage

    from ..mollifier import min_width
    from .api import infer_rates

    direct = infer_rates(fields, config.replace(method="direct", mollifier_width=None))
    direct_width = float(direct.metadata["mollifier_width"])
    smallest = min_width(config.kernel, 4, data["spacing"])
    if config.mollifier_width is not None:
        width, rule = float(config.mollifier_width), "given"
    else:
        # the fitted fields are denoised, so the PINN affords a narrower kernel than the direct
        # estimator (less smoothing bias, larger valid region); but below ~2x the smallest
        # resolving width the weak form feels the unresolved domain interfaces (direct, clean
        # data: r 0.988 at 1.3x, 0.995 at 1.6x, 0.998 at 2.1x), so not narrower than that
        # unless the direct estimator itself went there
        floor = min(direct_width, 2.0 * smallest)
        width = max(options.width_factor * direct_width, floor)
        rule = (
            f"{options.width_factor:g} x the direct estimator's automatic width "
            f"({direct_width:.4g}), at least min(that width, 2 x the smallest width "
            f"resolving 4th derivatives, {smallest:.4g})"
        )
    ratio, valid = np.asarray(direct.ratio, dtype=np.float64), direct.valid_mask
    ok = np.isfinite(ratio) & (ratio > 0) & data["mask"]
    if ok.sum() == 0:
        raise ValueError("PINN warm start: the direct estimator gave no positive ratio in the mask")
    # clip gross outliers of the direct map (it is only a starting point), extend it to the
    # whole image with the nearest valid value, then smooth
    low, high = np.percentile(ratio[ok], [2, 98])
    log_ratio = np.log(np.clip(ratio, max(low, 1e-3), max(high, 2e-3)))
    nearest = ndimage.distance_transform_edt(~ok, return_distances=False, return_indices=True)
    log_ratio = log_ratio[tuple(nearest)]
    log_ref = ndimage.gaussian_filter(
        log_ratio, options.ref_smoothing / data["spacing"], mode="nearest"
    )
    return {
        "width": float(width),
        "width_rule": rule,
        "direct_width": direct_width,
        "source": "direct",
        "direct_ratio": ratio,
        "direct_valid": valid,
        "log_ref": log_ref,
        "noise_w": _noise_level(data["phi_w"], data["mask"]),
        "noise_d": _noise_level(data["phi_d"], data["mask"]),
    }


# --- the problem on a padded grid ------------------------------------------------------------
class _Problem:
    """Padded data on the device, coordinates, and the loss / evaluation on patches."""

    def __init__(self, data: dict, warm: dict, config: InferenceConfig, options, device) -> None:
        import torch

        from ..mollifier import MollifierLayer

        self.config = config
        self.options = options
        self.device = device
        h = data["spacing"]
        self.spacing = h
        self.params = config.model
        if options.equations not in ("auto", "both", "rate"):
            raise ValueError(
                "PinnOptions.equations: expected 'auto', 'both' or 'rate', found "
                f"{options.equations!r}"
            )
        # a single-channel density has phi_e uniform by calibration, and such fields violate
        # mu_w = const: the second equation only helps when phi_e is observed (two channels)
        self.both_equations = options.equations == "both" or (
            options.equations == "auto" and data["phi_e_observed"]
        )
        self.equations = "both" if self.both_equations else "rate"

        def layer(derivative):
            return MollifierLayer(
                ndim=2,
                kernel=config.kernel,
                width=warm["width"],
                spacing=(h, h),
                derivatives=(derivative,),
                boundary="valid",
                dtype=torch.float32,
            ).to(device)

        # one layer per derivative: each channel gets only the derivative the residuals use
        self.layer_value = layer("value")
        self.layer_lap = layer("laplacian")
        self.layer_bih = layer("biharmonic")
        self.layer = self.layer_value  # mollifies the autodiff strong-form residual
        radius = self.layer_value.radius_pixels
        radius = int(max(radius) if isinstance(radius, (tuple, list)) else radius)
        self.radius = radius
        height, width = data["shape"]
        self.shape = (height, width)
        pad = ((radius, radius), (radius, radius))
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
        self._pad = pad
        self._fields_np = np.stack([data["phi_w"], data["phi_d"]])
        self.data_clean = as_t(np.stack([np.pad(f, pad, mode="reflect") for f in self._fields_np]))
        self.data = self.data_clean
        self.mask_np = data["mask"]
        self.mask = as_t(np.pad(data["mask"].astype(np.float32), pad))
        # residual centres: the whole kernel support inside the mask and the image (padding
        # and the outside of the nucleus never enter a residual)
        self.centres_np = _eroded(data["mask"], radius)
        if not self.centres_np.any():
            raise ValueError(
                f"PINN: no pixel of the nucleus mask lies {radius} pixels (the mollifier radius, "
                f"{warm['width']:.3g} model units) inside the mask and the image; use a smaller "
                "mollifier width or a larger image"
            )
        self.centres = as_t(np.pad(self.centres_np.astype(np.float32), pad))
        self.log_ref = as_t(np.pad(warm["log_ref"], pad, mode="reflect"))
        self.noise = as_t(np.array([warm["noise_w"], warm["noise_d"]])).reshape(2, 1, 1)
        inside = data["mask"]
        self.data_mean = as_t(
            np.array([data["phi_w"][inside].mean(), data["phi_d"][inside].mean()])
        ).reshape(2, 1, 1)
        self.data_std = as_t(
            np.array(
                [max(data["phi_w"][inside].std(), 1e-3), max(data["phi_d"][inside].std(), 1e-3)]
            )
        ).reshape(2, 1, 1)
        self.phi_e_mean = float(np.mean((1 - data["phi_w"] - data["phi_d"])[inside]) / 2)
        # pixel-centre coordinates, model units, centred on the image (padded grid)
        self.y0 = (height - 1) / 2.0 + radius
        self.x0 = (width - 1) / 2.0 + radius
        self.patch = int(min(config.patch_size, height, width))

    def use_data(self, perturb_seed: int | None) -> None:
        """Train on the data (None) or on the data plus a fresh draw of its estimated noise.

        Randomised data per ensemble member ("randomise then optimise"): the spread of the
        members then includes how the data noise propagates into lambda, not only the spread of
        the optimisation.
        """
        import torch

        if perturb_seed is None:
            self.data = self.data_clean
            return
        rng = np.random.default_rng(perturb_seed)
        sigma = self.noise.detach().cpu().numpy().reshape(2, 1, 1)
        noisy = self._fields_np + sigma * rng.standard_normal(self._fields_np.shape)
        self.data = torch.as_tensor(
            np.stack([np.pad(f, self._pad, mode="reflect") for f in noisy]),
            dtype=torch.float32,
            device=self.device,
        )

    def coords(self, top: int, left: int, rows: int, cols: int):
        """(rows * cols, 2) coordinates (y, x) in model units of a padded-grid window."""
        import torch

        ys = torch.arange(top, top + rows, device=self.device, dtype=torch.float32) - self.y0
        xs = torch.arange(left, left + cols, device=self.device, dtype=torch.float32) - self.x0
        yy, xx = torch.meshgrid(ys * self.spacing, xs * self.spacing, indexing="ij")
        return torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=1)

    def fields_from_output(self, out, top, left, rows, cols):
        """Raw outputs (3, rows, cols) -> phi_w, phi_d, lambda (rows, cols) on the window."""
        import torch

        if self.options.fields_mode == "correction":
            window = self.data[:, top : top + rows, left : left + cols]
            correction = out[:2]
            if self.options.zero_mean_corrections:
                # noise has zero mean: a correction that shifts a field's mean would shift
                # <phi_e> / <phi_h> and, through the balance <lambda phi_e> = <phi_h>, lambda
                inside = self.mask[top : top + rows, left : left + cols]
                mean = (correction * inside).sum((1, 2), keepdim=True) / inside.sum().clamp_min(1)
                correction = correction - mean
            fields = window + self.options.correction_scale * self.noise * correction
        else:
            fields = self.data_mean + self.data_std * out[:2]
        log_lam = self.log_ref[top : top + rows, left : left + cols] + out[2]
        return fields[0], fields[1], torch.exp(log_lam), log_lam

    def strong_pieces(self, phi_w, phi_d, lam):
        """Channels whose mollified derivatives make up the residual (any shape)."""
        phi_h = (1.0 - phi_w + phi_d) / 2.0
        phi_e = (1.0 - phi_w - phi_d) / 2.0
        pm = self.params.phi_max
        g = phi_h * (pm - phi_h) * (pm - 2.0 * phi_h)
        return phi_h, phi_e, g - phi_e, lam * phi_e - phi_h

    def mollified_residuals(self, phi_w, phi_d, lam):
        """Weak-form residuals on the window interior (rows - 2r, cols - 2r).

        Returns ``(R_rate, R_w, eta*phi_h)``: ``R_rate = eta * [lap(mu_d) + 2 (lambda phi_e -
        phi_h)]`` and ``R_w = eta * lap(mu_w)`` with every derivative on eta (``R_w`` is None
        when only the rate equation is used).
        """
        import torch

        phi_h, phi_e, _, c = self.strong_pieces(phi_w, phi_d, lam)
        pm = self.params.phi_max
        g = phi_h * (pm - phi_h) * (pm - 2.0 * phi_h)
        l2 = self.params.interface_length**2
        val = self.layer_value(torch.stack([c, phi_h])[None])["value"][0]
        if self.both_equations:
            lap = self.layer_lap(torch.stack([g, phi_e])[None])["laplacian"][0]
            bih = self.layer_bih(torch.stack([phi_d, phi_w])[None])["biharmonic"][0]
            res_w = -lap[0] - lap[1] - l2 * bih[1]
        else:
            lap = self.layer_lap(torch.stack([g, phi_e])[None])["laplacian"][0]
            bih = self.layer_bih(phi_d[None, None])["biharmonic"][0]
            res_w = None
        res = lap[0] - lap[1] - l2 * bih[0] + 2.0 * val[0]
        return res, res_w, val[1]

    def autodiff_residual(self, model, x, rows, cols, top, left):
        """Strong-form residuals by nested autograd at every window pixel, then mollified."""
        import torch

        from .autodiff import biharmonic, laplacian

        x = x.detach().requires_grad_(True)
        out = model(x)  # (N, 3)
        if self.options.fields_mode != "network":
            raise ValueError("pinn-autodiff needs fields_mode='network'")
        mean, std = self.data_mean.reshape(2), self.data_std.reshape(2)
        phi_w = mean[0] + std[0] * out[:, 0]
        phi_d = mean[1] + std[1] * out[:, 1]
        log_lam = self.log_ref[top : top + rows, left : left + cols].reshape(-1) + out[:, 2]
        lam = torch.exp(log_lam)
        phi_h, phi_e, a, c = self.strong_pieces(phi_w, phi_d, lam)
        l2 = self.params.interface_length**2
        strong = [laplacian(a, x) - l2 * biharmonic(phi_d, x) + 2.0 * c]
        if self.both_equations:
            pm = self.params.phi_max
            g = phi_h * (pm - phi_h) * (pm - 2.0 * phi_h)
            strong.append(laplacian(-g - phi_e, x) - l2 * biharmonic(phi_w, x))
        mol = self.layer(torch.stack(strong).reshape(1, len(strong), rows, cols))["value"][0]
        res_w = mol[1] if self.both_equations else None
        grid = lambda t: t.reshape(rows, cols)  # noqa: E731
        return mol[0], res_w, grid(phi_w), grid(phi_d), grid(log_lam)

    def loss(self, model, top, left, autodiff):
        """Loss terms (rate residual, nucleoplasm residual or None, data, smoothness) on the
        patch whose padded window starts at (top, left)."""
        import torch

        p, r = self.patch, self.radius
        rows = cols = p + 2 * r
        x = self.coords(top, left, rows, cols)
        if autodiff:
            res, res_w, phi_w, phi_d, log_lam = self.autodiff_residual(
                model, x, rows, cols, top, left
            )
        else:
            out = model(x).T.reshape(3, rows, cols)
            phi_w, phi_d, lam, log_lam = self.fields_from_output(out, top, left, rows, cols)
            res, res_w, _ = self.mollified_residuals(phi_w, phi_d, lam)
        core = (slice(r, r + p), slice(r, r + p))
        mask = self.mask[top : top + rows, left : left + cols][core]
        centres = self.centres[top : top + rows, left : left + cols][core]
        n = mask.sum().clamp_min(1.0)
        n_c = centres.sum().clamp_min(1.0)
        scale = 2.0 * self.phi_e_mean
        loss_res = (centres * (res / scale) ** 2).sum() / n_c
        loss_res_w = None
        if res_w is not None:
            loss_res_w = (centres * (res_w / scale) ** 2).sum() / n_c
        fitted = torch.stack([phi_w[core], phi_d[core]])
        target = self.data[:, top : top + rows, left : left + cols][(slice(None), *core)]
        loss_data = (mask * ((fitted - target) / self.noise) ** 2).sum() / (2 * n)
        ll = log_lam[core]
        gy = (ll[1:, :] - ll[:-1, :]) / self.spacing
        gx = (ll[:, 1:] - ll[:, :-1]) / self.spacing
        loss_smooth = (
            self.options.prior_length**2
            * ((mask[1:, :] * gy**2).sum() + (mask[:, 1:] * gx**2).sum())
            / (2 * n)
        )
        return loss_res, loss_res_w, loss_data, loss_smooth

    def draw_patch(self, rng) -> tuple[int, int]:
        """Top-left of a padded window whose core lies in the image and touches the mask."""
        height, width = self.shape
        p = self.patch
        best = (0, 0, -1.0)
        for _ in range(10):
            top = int(rng.integers(0, height - p + 1))
            left = int(rng.integers(0, width - p + 1))
            frac = float(self.centres_np[top : top + p, left : left + p].mean())
            if frac > best[2]:
                best = (top, left, frac)
            if frac >= 0.25:
                break
        return best[0], best[1]

    def evaluate(self, state, model_factory) -> dict:
        """Evaluate a trained member on the whole image in tiles; numpy (H, W) float64 maps."""
        import torch

        model = model_factory()
        if state is not None:
            model.load_state_dict(state)
        model.to(self.device).eval()
        height, width = self.shape
        r, tile = self.radius, max(16, int(self.options.eval_tile))
        maps = {k: np.zeros((height, width)) for k in ("ratio", "phi_h", "residual")}
        with torch.no_grad():
            for top in range(0, height, tile):
                for left in range(0, width, tile):
                    rows, cols = min(tile, height - top), min(tile, width - left)
                    prow, pcol = rows + 2 * r, cols + 2 * r
                    x = self.coords(top, left, prow, pcol)
                    out = model(x).T.reshape(3, prow, pcol)
                    phi_w, phi_d, lam, _ = self.fields_from_output(out, top, left, prow, pcol)
                    res, _, phi_h = self.mollified_residuals(phi_w, phi_d, lam)
                    sl = (slice(top, top + rows), slice(left, left + cols))
                    maps["ratio"][sl] = lam[r : r + rows, r : r + cols].double().cpu().numpy()
                    maps["phi_h"][sl] = phi_h.double().cpu().numpy()
                    maps["residual"][sl] = res.double().cpu().numpy()
        return maps


class _MemberTrainer:
    """One ensemble member: its own seed, network, optimiser and patch draws."""

    def __init__(self, problem: _Problem, config, options, member: int, autodiff: bool) -> None:
        import torch

        from ..nets import build_backbone

        self.problem = problem
        self.options = options
        self.autodiff = autodiff
        seed = int(config.seed) + 1000 * member
        backbone, preset = config.backbone, options.preset

        def factory():
            net = build_backbone(backbone, in_dim=2, out_dim=3, preset=preset, seed=seed)
            with torch.no_grad():  # zero output layer: step 0 is exactly the warm start
                net.head.weight.zero_()
                net.head.bias.zero_()
            return net

        self.model_factory = factory
        self.model = factory().to(problem.device)
        self.rng = np.random.default_rng(seed)
        self.base_lr = float(config.learning_rate)
        self.lr = self.base_lr
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.base_lr)
        self.r0 = None
        self.r0_w = None
        self.average: dict | None = None
        self.n_averaged = 0
        self.ema = None
        self.best_ema = math.inf
        self.since_best = 0
        self.last_losses: dict = {}

    def step(self, local: int, n_steps: int) -> dict:
        p = self.problem
        frac = local / max(1, n_steps - 1)
        fmin = self.options.final_lr_fraction
        self.lr = self.base_lr * (fmin + (1 - fmin) * 0.5 * (1 + math.cos(math.pi * frac)))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        top, left = p.draw_patch(self.rng)
        loss_res, loss_res_w, loss_data, loss_smooth = p.loss(self.model, top, left, self.autodiff)
        if self.r0 is None:  # normalise each residual by its size at the warm start
            self.r0 = max(float(loss_res.detach()), 1e-12)
            if loss_res_w is not None:
                self.r0_w = max(float(loss_res_w.detach()), 1e-12)
        o = self.options
        loss = (
            o.weight_residual * loss_res / self.r0
            + o.weight_data * loss_data
            + o.weight_smooth * loss_smooth
        )
        if loss_res_w is not None:
            loss = loss + o.weight_residual_w * loss_res_w / self.r0_w
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if frac >= o.average_from:
            self._accumulate_average()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"PINN loss became {value} at step {local}; try a smaller learning_rate"
            )
        self.ema = value if self.ema is None else 0.95 * self.ema + 0.05 * value
        if self.ema < self.best_ema * (1 - 1e-3):
            self.best_ema = self.ema
            self.since_best = 0
        else:
            self.since_best += 1
        self.last_losses = {
            "total": value,
            "residual": float(loss_res.detach()) / self.r0,
            **(
                {"residual_w": float(loss_res_w.detach()) / self.r0_w}
                if loss_res_w is not None
                else {}
            ),
            "data": float(loss_data.detach()),
            "smooth": float(loss_smooth.detach()),
        }
        return self.last_losses

    def _accumulate_average(self) -> None:
        """Running mean of the weights (stochastic weight averaging): each patch pulls the
        network its own way; the mean over the second half of training cancels that jitter."""
        import torch

        with torch.no_grad():
            state = self.model.state_dict()
            if self.average is None:
                self.average = {k: v.detach().clone() for k, v in state.items()}
                self.n_averaged = 1
                return
            self.n_averaged += 1
            for key, value in state.items():
                if value.is_floating_point():
                    self.average[key] += (value - self.average[key]) / self.n_averaged

    def converged(self) -> bool:
        return self.since_best >= self.options.patience

    def summary(self) -> dict:
        # the weight average when there is one (see _accumulate_average), else the latest
        # weights: with patch-to-patch loss noise they are a better "best so far" than the
        # weights at the lowest single-patch loss
        state = self.average if self.average is not None else self.model.state_dict()
        return {
            "state": copy.deepcopy(state),
            "weights_averaged": self.n_averaged,
            "model_factory": self.model_factory,
            "final_losses": dict(self.last_losses),
            "best_ema_loss": self.best_ema if math.isfinite(self.best_ema) else None,
        }


def _set_determinism(torch, device):
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    return previous


def _restore_determinism(torch, previous) -> None:
    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def _assemble(
    fields,
    config,
    data,
    warm,
    problem,
    maps,
    trained,
    history,
    timings,
    device,
    device_reason,
    stopped,
    step_done,
    options,
    warm_maps,
):
    from .._provenance import provenance
    from ..nets import count_parameters
    from .result import RateMaps

    r = problem.radius
    # where the residuals constrain lambda: the kernel support inside the mask and the image
    valid = problem.centres_np.copy()
    ratios = np.stack([m["ratio"] for m in maps])
    ratio = ratios.mean(axis=0)
    uncertainty = UNCERTAINTY_SCALE * ratios.std(axis=0, ddof=1) if len(maps) > 1 else None
    ratio = np.where(valid, ratio, np.nan)
    if uncertainty is not None:
        uncertainty = np.where(valid, uncertainty, np.nan)
    phi_h = np.mean([m["phi_h"] for m in maps], axis=0)
    residual = np.mean([m["residual"] for m in maps], axis=0)
    direct_ratio = np.asarray(warm["direct_ratio"])
    both = valid & np.isfinite(direct_ratio)
    metadata = provenance(device=str(device), device_reason=device_reason)
    n_params = count_parameters(trained[0]["model_factory"]())
    metadata.update(
        {
            "method": config.method,
            "seed": int(config.seed),
            "mollifier_width": warm["width"],
            "width": warm["width"],
            "mollifier_width_rule": warm["width_rule"],
            "direct_mollifier_width": warm["direct_width"],
            "backbone": config.backbone,
            "equations": problem.equations,
            "backbone_preset": options.preset,
            "backbone_parameters": n_params,
            "ensemble_members": len(maps),
            "uncertainty": (
                f"{UNCERTAINTY_SCALE:g} x the standard deviation over the ensemble "
                "members (calibrated on simulated data for 3 members: +-2 uncertainty "
                "covered 99 / 94 / 85 % of the errors at 1 / 5 / 10 % noise)"
            )
            if uncertainty is not None
            else None,
        }
    )
    diagnostics = {
        "loss_history": history,
        "final_losses": [m["final_losses"] for m in trained],
        "steps_done": step_done,
        "steps_budget": int(config.steps),
        "stopped": bool(stopped),
        "warm_start": warm["source"],
        "direct_ratio_mean": float(np.mean(direct_ratio[both])) if both.any() else None,
        "noise_sigma": {"phi_w": warm["noise_w"], "phi_d": warm["noise_d"]},
        "options": asdict(options),
        "kernel_radius_pixels": r,
        "patch_size": problem.patch,
        "global_balance": _global_balance(ratio, phi_h, data, valid),
        # RMS of the mollified residual over the valid region (model units, 1/time)
        "residual_rms": {
            "warm_start": _rms(warm_maps["residual"], valid),
            "final": _rms(residual, valid),
        },
    }
    return RateMaps(
        ratio=ratio,
        phi_h=phi_h,
        residual=residual,
        uncertainty=uncertainty,
        valid_mask=valid,
        config=config,
        spacing=data["spacing"],
        pixel_size_nm=getattr(fields, "pixel_size_nm", None),
        origin_nm=tuple(getattr(fields, "origin_nm", (0.0, 0.0)) or (0.0, 0.0)),
        timings=timings,
        metadata=metadata,
        diagnostics=diagnostics,
    )


def _rms(values: np.ndarray, valid: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(values[valid] ** 2))) if valid.any() else None


def _global_balance(ratio, phi_h_fit, data, valid) -> float | None:
    """<lambda phi_e> / <phi_h> over the valid region (1 at a no-flux steady state)."""
    if not valid.any():
        return None
    phi_e = (1 - data["phi_w"] - data["phi_d"]) / 2
    phi_h = (1 - data["phi_w"] + data["phi_d"]) / 2
    return float(np.mean(ratio[valid] * phi_e[valid]) / np.mean(phi_h[valid]))


def _eroded(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose (2 radius + 1)^2 neighbourhood lies inside ``mask`` and the image."""
    from scipy import ndimage

    return ndimage.minimum_filter(
        mask.astype(np.uint8), size=2 * radius + 1, mode="constant", cval=0
    ).astype(bool)
