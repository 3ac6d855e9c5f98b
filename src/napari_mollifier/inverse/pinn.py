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
  direct estimator's map, smoothed (warm start: the output layer starts at zero, so step 0 is
  exactly the warm start).

Why a positive-link rate output rather than reading lambda in closed form from the fitted fields:
the closed form ``(eta*phi_h - eta*lap(mu_d)/2) / eta*phi_e`` is the direct estimator again and
inherits its noise (fourth derivatives of the noise, filtered by eta only); a rate output lets the
loss average the residual over the whole patch under a smoothness prior and deconvolves
``eta * (lambda phi_e)`` instead of approximating it by ``lambda * (eta * phi_e)``.

Loss, on a random patch of ``patch_size`` pixels plus the kernel halo, over the nucleus mask::

    residual  R = (lap eta)*(g(phi_h) - phi_e) - l^2 (lap lap eta)*phi_d
                  + 2 eta*(lambda phi_e - phi_h)
    loss = w_res * mean((R / (2 <phi_e>))^2) / r0^2        r0: the same at the warm start
         + w_data * mean((phi - data)^2) / sigma^2          sigma: noise level of the data
         + w_smooth * L^2 * mean(|grad log lambda|^2)       L: prior length (model units)

In "pinn-autodiff" the residual's strong form is computed at every patch pixel by nested
autograd and then mollified by eta (``eta * R_strong`` equals the weak form for smooth fields),
so both methods minimise the same loss.

Scaling: training touches one patch (plus halo) per step, so memory does not depend on the image
size; maps are evaluated in tiles. Uncertainty: ``ensemble_size`` members (seeds ``seed + k``,
own patch draws) split the step budget; the ratio is their mean and the uncertainty their
standard deviation.
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


@dataclass
class PinnOptions:
    """Training knobs not (yet) in :class:`InferenceConfig`; the defaults are the tuned ones.

    Attributes
    ----------
    fields_mode : {"correction", "network"}
        How the fields are parametrised (see module docstring); "pinn-autodiff" forces "network".
    preset : str
        Backbone size preset (:data:`napari_mollifier.nets.PRESETS`).
    weight_residual, weight_data, weight_smooth : float
        Loss weights.
    prior_length : float
        Length (model units) of the smoothness prior on log lambda.
    ref_smoothing : float
        Gaussian sigma (model units) applied to log of the direct map to make ``lambda_ref``.
    correction_scale : float
        Field correction per unit output, in units of the data noise level ("correction" mode).
    final_lr_fraction : float
        Cosine learning-rate schedule from ``learning_rate`` down to this fraction of it.
    patience : int
        Stop a member early when its smoothed loss has not improved by 0.1 % for this many steps.
    eval_tile : int
        Tile size (pixels, without halo) for evaluating the maps.
    progress_interval_s : float
        Minimum time between progress events.
    default_width : float
        Mollifier width (model units) used when neither the config nor the direct estimator
        gives one.
    """

    fields_mode: str = "correction"
    preset: str = "default"
    weight_residual: float = 1.0
    weight_data: float = 1.0
    weight_smooth: float = 0.3
    prior_length: float = 1.0
    ref_smoothing: float = 0.3
    correction_scale: float = 2.0
    final_lr_fraction: float = 0.05
    patience: int = 400
    eval_tile: int = 128
    progress_interval_s: float = 0.25
    default_width: float = 0.3


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
    result = _assemble(fields, config, data, warm, problem, maps, trained, history, timings,
                       device, device_reason, stopped, step_done, options, warm_maps)
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
    return {
        "phi_w": phi_w,
        "phi_d": phi_h - phi_e,
        "mask": mask,
        "spacing": spacing,
        "shape": phi_h.shape,
    }


def _closed_form_ratio(data: dict, config: InferenceConfig, width: float):
    """Weak-form closed form (eta*phi_h - eta*lap(mu_d)/2) / (eta*phi_e) on the data grid; used
    as warm start only when the direct estimator module is not installed."""
    from ..mollifier import mollified_derivatives

    phi_w, phi_d = data["phi_w"], data["phi_d"]
    phi_h, phi_e = (1 - phi_w + phi_d) / 2, (1 - phi_w - phi_d) / 2
    pm, l2 = config.model.phi_max, config.model.interface_length**2
    g = phi_h * (pm - phi_h) * (pm - 2 * phi_h)
    h = data["spacing"]
    stack = np.stack([phi_h, phi_e, g - phi_e, phi_d])
    mol = mollified_derivatives(stack, width, (h, h), ("value", "laplacian", "biharmonic"),
                                kernel=config.kernel, boundary="reflect")
    lap_mu = mol["laplacian"][2] - l2 * mol["biharmonic"][3]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (mol["value"][0] - 0.5 * lap_mu) / mol["value"][1]
    return ratio, data["mask"] & np.isfinite(ratio)


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
    """Run the direct estimator, choose the width, and build the smooth reference map."""
    from scipy import ndimage

    from ..mollifier import min_width

    try:
        from . import direct as _direct_module  # noqa: F401
    except ImportError:
        direct, source = None, "closed form (napari_mollifier.inverse.direct not available)"
    else:
        from .api import infer_rates

        direct, source = infer_rates(fields, config.replace(method="direct")), "direct"
    width = config.mollifier_width
    if width is None and direct is not None:
        for where in (direct.metadata, direct.diagnostics):
            if isinstance(where, dict) and where.get("mollifier_width"):
                width = float(where["mollifier_width"])
                break
    if width is None:
        smallest = min_width(config.kernel, 4, data["spacing"])
        width = max(options.default_width, 1.05 * smallest)
    if direct is None:
        ratio, valid = _closed_form_ratio(data, config, width)
    else:
        ratio, valid = np.asarray(direct.ratio, dtype=np.float64), direct.valid_mask
    ok = np.isfinite(ratio) & (ratio > 0) & data["mask"]
    if ok.sum() == 0:
        raise ValueError("PINN warm start: the direct estimator gave no positive ratio in the mask")
    median = float(np.median(ratio[ok]))
    # clip gross outliers of the direct map before smoothing (it is only a starting point)
    low, high = np.percentile(ratio[ok], [2, 98])
    log_ratio = np.log(np.clip(np.where(ok, ratio, median), max(low, 1e-3), max(high, 2e-3)))
    sigma_px = options.ref_smoothing / data["spacing"]
    weight = ndimage.gaussian_filter(ok.astype(float), sigma_px, mode="reflect")
    smooth = ndimage.gaussian_filter(np.where(ok, log_ratio, 0.0), sigma_px, mode="reflect")
    log_ref = np.where(weight > 1e-3, smooth / np.maximum(weight, 1e-3), math.log(median))
    return {
        "width": float(width),
        "source": source,
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
        self.layer = MollifierLayer(
            ndim=2,
            kernel=config.kernel,
            width=warm["width"],
            spacing=(h, h),
            derivatives=("value", "laplacian", "biharmonic"),
            boundary="valid",
            dtype=torch.float32,
        ).to(device)
        radius = self.layer.radius_pixels
        radius = int(max(radius) if isinstance(radius, (tuple, list)) else radius)
        self.radius = radius
        height, width = data["shape"]
        self.shape = (height, width)
        pad = ((radius, radius), (radius, radius))
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
        self.data = as_t(np.stack([np.pad(data["phi_w"], pad, mode="reflect"),
                                   np.pad(data["phi_d"], pad, mode="reflect")]))
        self.mask_np = data["mask"]
        self.mask = as_t(np.pad(data["mask"].astype(np.float32), pad))
        self.log_ref = as_t(np.pad(warm["log_ref"], pad, mode="reflect"))
        self.noise = as_t(np.array([warm["noise_w"], warm["noise_d"]])).reshape(2, 1, 1)
        inside = data["mask"]
        self.data_mean = as_t(np.array([data["phi_w"][inside].mean(),
                                        data["phi_d"][inside].mean()])).reshape(2, 1, 1)
        self.data_std = as_t(np.array([max(data["phi_w"][inside].std(), 1e-3),
                                       max(data["phi_d"][inside].std(), 1e-3)])).reshape(2, 1, 1)
        self.phi_e_mean = float(np.mean((1 - data["phi_w"] - data["phi_d"])[inside]) / 2)
        # pixel-centre coordinates, model units, centred on the image (padded grid)
        self.y0 = (height - 1) / 2.0 + radius
        self.x0 = (width - 1) / 2.0 + radius
        self.patch = int(min(config.patch_size, height, width))

    def coords(self, top: int, left: int, rows: int, cols: int):
        """(rows * cols, 2) coordinates (y, x) in model units of a padded-grid window."""
        import torch

        ys = (torch.arange(top, top + rows, device=self.device, dtype=torch.float32) - self.y0)
        xs = (torch.arange(left, left + cols, device=self.device, dtype=torch.float32) - self.x0)
        yy, xx = torch.meshgrid(ys * self.spacing, xs * self.spacing, indexing="ij")
        return torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=1)

    def fields_from_output(self, out, top, left, rows, cols):
        """Raw outputs (3, rows, cols) -> phi_w, phi_d, lambda (rows, cols) on the window."""
        import torch

        if self.options.fields_mode == "correction":
            window = self.data[:, top:top + rows, left:left + cols]
            fields = window + self.options.correction_scale * self.noise * out[:2]
        else:
            fields = self.data_mean + self.data_std * out[:2]
        log_lam = self.log_ref[top:top + rows, left:left + cols] + out[2]
        return fields[0], fields[1], torch.exp(log_lam), log_lam

    def strong_pieces(self, phi_w, phi_d, lam):
        """Channels whose mollified derivatives make up the residual (any shape)."""
        phi_h = (1.0 - phi_w + phi_d) / 2.0
        phi_e = (1.0 - phi_w - phi_d) / 2.0
        pm = self.params.phi_max
        g = phi_h * (pm - phi_h) * (pm - 2.0 * phi_h)
        return phi_h, phi_e, g - phi_e, lam * phi_e - phi_h

    def mollified_residual(self, phi_w, phi_d, lam):
        """Weak-form residual on the window interior (rows - 2r, cols - 2r) and eta*phi_h."""
        import torch

        phi_h, _, a, c = self.strong_pieces(phi_w, phi_d, lam)
        stack = torch.stack([a, phi_d, c, phi_h])[None]
        mol = self.layer(stack)
        l2 = self.params.interface_length ** 2
        res = (mol["laplacian"][0, 0] - l2 * mol["biharmonic"][0, 1] + 2.0 * mol["value"][0, 2])
        return res, mol["value"][0, 3]

    def autodiff_residual(self, model, x, rows, cols, top, left):
        """Strong-form residual by nested autograd at every window pixel, then mollified."""
        import torch

        from .autodiff import biharmonic, laplacian

        x = x.detach().requires_grad_(True)
        out = model(x)  # (N, 3)
        if self.options.fields_mode != "network":
            raise ValueError("pinn-autodiff needs fields_mode='network'")
        mean, std = self.data_mean.reshape(2), self.data_std.reshape(2)
        phi_w = mean[0] + std[0] * out[:, 0]
        phi_d = mean[1] + std[1] * out[:, 1]
        log_lam = self.log_ref[top:top + rows, left:left + cols].reshape(-1) + out[:, 2]
        lam = torch.exp(log_lam)
        _, _, a, c = self.strong_pieces(phi_w, phi_d, lam)
        l2 = self.params.interface_length ** 2
        strong = laplacian(a, x) - l2 * biharmonic(phi_d, x) + 2.0 * c
        res = self.layer(strong.reshape(1, 1, rows, cols))["value"][0, 0]
        grid = lambda t: t.reshape(rows, cols)  # noqa: E731
        return res, grid(phi_w), grid(phi_d), grid(log_lam)

    def loss(self, model, top, left, autodiff, r0=None):
        """Loss terms on the patch whose padded window starts at (top, left)."""
        import torch

        p, r = self.patch, self.radius
        rows = cols = p + 2 * r
        x = self.coords(top, left, rows, cols)
        if autodiff:
            res, phi_w, phi_d, log_lam = self.autodiff_residual(model, x, rows, cols, top, left)
        else:
            out = model(x).T.reshape(3, rows, cols)
            phi_w, phi_d, lam, log_lam = self.fields_from_output(out, top, left, rows, cols)
            res, _ = self.mollified_residual(phi_w, phi_d, lam)
        core = (slice(r, r + p), slice(r, r + p))
        mask = self.mask[top:top + rows, left:left + cols][core]
        n = mask.sum().clamp_min(1.0)
        res_n = res / (2.0 * self.phi_e_mean)
        loss_res = (mask * res_n**2).sum() / n
        fitted = torch.stack([phi_w[core], phi_d[core]])
        target = self.data[:, top:top + rows, left:left + cols][(slice(None), *core)]
        loss_data = (mask * ((fitted - target) / self.noise) ** 2).sum() / (2 * n)
        ll = log_lam[core]
        gy = (ll[1:, :] - ll[:-1, :]) / self.spacing
        gx = (ll[:, 1:] - ll[:, :-1]) / self.spacing
        loss_smooth = self.options.prior_length**2 * (
            (mask[1:, :] * gy**2).sum() + (mask[:, 1:] * gx**2).sum()
        ) / (2 * n)
        return loss_res, loss_data, loss_smooth

    def draw_patch(self, rng) -> tuple[int, int]:
        """Top-left of a padded window whose core lies in the image and touches the mask."""
        height, width = self.shape
        p = self.patch
        best = (0, 0, -1.0)
        for _ in range(10):
            top = int(rng.integers(0, height - p + 1))
            left = int(rng.integers(0, width - p + 1))
            frac = float(self.mask_np[top:top + p, left:left + p].mean())
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
                    res, phi_h = self.mollified_residual(phi_w, phi_d, lam)
                    sl = (slice(top, top + rows), slice(left, left + cols))
                    maps["ratio"][sl] = lam[r:r + rows, r:r + cols].double().cpu().numpy()
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
        loss_res, loss_data, loss_smooth = p.loss(self.model, top, left, self.autodiff)
        if self.r0 is None:  # normalise the residual by its warm-start size
            self.r0 = max(float(loss_res.detach()), 1e-12)
        o = self.options
        loss = (o.weight_residual * loss_res / self.r0 + o.weight_data * loss_data
                + o.weight_smooth * loss_smooth)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
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
            "data": float(loss_data.detach()),
            "smooth": float(loss_smooth.detach()),
        }
        return self.last_losses

    def converged(self) -> bool:
        return self.since_best >= self.options.patience

    def summary(self) -> dict:
        # the latest weights: with a decaying learning rate and patch-to-patch loss noise they
        # are a better "best so far" than the weights at the lowest single-patch loss
        state = self.model.state_dict()
        return {
            "state": copy.deepcopy(state),
            "model_factory": self.model_factory,
            "final_losses": dict(self.last_losses),
            "best_ema_loss": self.best_ema if math.isfinite(self.best_ema) else None,
        }


def _set_determinism(torch, device):
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    return previous


def _restore_determinism(torch, previous) -> None:
    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def _assemble(fields, config, data, warm, problem, maps, trained, history, timings, device,
              device_reason, stopped, step_done, options, warm_maps):
    from .._provenance import provenance
    from ..nets import count_parameters
    from .result import RateMaps

    height, width = data["shape"]
    r = problem.radius
    valid = data["mask"].copy()
    valid[:r, :] = valid[-r:, :] = False
    valid[:, :r] = valid[:, -r:] = False
    direct_valid = warm["direct_valid"]
    if direct_valid is not None and np.shape(direct_valid) == valid.shape:
        valid &= np.asarray(direct_valid, dtype=bool)
    ratios = np.stack([m["ratio"] for m in maps])
    ratio = ratios.mean(axis=0)
    uncertainty = ratios.std(axis=0, ddof=1) if len(maps) > 1 else None
    ratio = np.where(valid, ratio, np.nan)
    if uncertainty is not None:
        uncertainty = np.where(valid, uncertainty, np.nan)
    phi_h = np.mean([m["phi_h"] for m in maps], axis=0)
    residual = np.mean([m["residual"] for m in maps], axis=0)
    direct_ratio = np.asarray(warm["direct_ratio"])
    both = valid & np.isfinite(direct_ratio)
    metadata = provenance(device=str(device), device_reason=device_reason)
    n_params = count_parameters(trained[0]["model_factory"]())
    metadata.update({
        "method": config.method,
        "seed": int(config.seed),
        "mollifier_width": warm["width"],
        "width": warm["width"],
        "backbone": config.backbone,
        "backbone_preset": options.preset,
        "backbone_parameters": n_params,
        "ensemble_members": len(maps),
    })
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
