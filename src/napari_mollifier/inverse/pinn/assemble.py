"""The PINN's result: ensemble mean and calibrated spread, metadata and diagnostics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ...physics.chromatin import phase_fractions
from ..prepared import PreparedFields
from ..result import RateMaps
from .member import MemberResult
from .problem import PinnProblem
from .warm_start import WarmStart

#: The member spread misses most of the error (all members share the data's noise and the warm
#: start; smoothing bias, model error): the uncertainty map is this factor times the ensemble
#: standard deviation, fitted on simulated data (default config: 3 members, 480 steps; noise
#: 1-10 %) so that ``|ratio - truth| <= 2 * uncertainty`` holds for 95 % of the valid pixels.
#: Held-out coverage: 0.99 / 0.96 / 0.87 at 1 / 5 / 10 % noise (docs/validation.md;
#: ``python benchmarks/pinn.py --only calibration`` refits it).
UNCERTAINTY_SCALE = 4.89


@dataclass
class PinnRun:
    """Everything a finished (or stopped) training leaves for the result."""

    prepared: PreparedFields
    config: object
    options: object
    warm: WarmStart
    problem: PinnProblem
    members: list[MemberResult]
    maps: list[dict]
    warm_maps: dict
    device: object
    device_reason: str
    history: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    stopped: bool = False
    steps_done: int = 0


def assemble(run: PinnRun) -> RateMaps:
    """Ensemble mean over the members, NaN outside the residual centres."""
    valid = run.problem.centres_np.copy()
    ratios = np.stack([m["ratio"] for m in run.maps])
    ratio = np.where(valid, ratios.mean(axis=0), np.nan)
    uncertainty = None
    if len(run.maps) > 1:
        uncertainty = np.where(valid, UNCERTAINTY_SCALE * ratios.std(axis=0, ddof=1), np.nan)
    phi_h = np.mean([m["phi_h"] for m in run.maps], axis=0)
    residual = np.mean([m["residual"] for m in run.maps], axis=0)
    return RateMaps(
        ratio=ratio,
        phi_h=phi_h,
        residual=residual,
        uncertainty=uncertainty,
        valid_mask=valid,
        config=run.config,
        spacing=run.prepared.spacing,
        pixel_size_nm=run.prepared.pixel_size_nm,
        origin_nm=tuple(run.prepared.origin_nm),
        timings=run.timings,
        metadata=_metadata(run, uncertainty is not None),
        diagnostics=_diagnostics(run, ratio, phi_h, residual, valid),
    )


def _metadata(run: PinnRun, has_uncertainty: bool) -> dict:
    from ..._provenance import provenance
    from ...nets import count_parameters

    metadata = provenance(device=str(run.device), device_reason=run.device_reason)
    metadata.update(
        {
            "method": run.config.method,
            "seed": int(run.config.seed),
            "mollifier_width": run.warm.width,
            "width": run.warm.width,
            "mollifier_width_rule": run.warm.width_rule,
            "direct_mollifier_width": run.warm.direct_width,
            "backbone": run.config.pinn.backbone,
            "equations": run.problem.equations,
            "backbone_preset": run.options.preset,
            "backbone_parameters": count_parameters(run.members[0].model_factory()),
            "ensemble_members": len(run.maps),
            "uncertainty": (
                f"{UNCERTAINTY_SCALE:g} x the standard deviation over the ensemble "
                "members (calibrated on simulated data for 3 members: +-2 uncertainty "
                "covered 99 / 94 / 85 % of the errors at 1 / 5 / 10 % noise)"
            )
            if has_uncertainty
            else None,
        }
    )
    return metadata


def _diagnostics(run: PinnRun, ratio, phi_h, residual, valid) -> dict:
    direct_ratio = np.asarray(run.warm.direct_ratio)
    both = valid & np.isfinite(direct_ratio)
    return {
        "loss_history": run.history,
        "final_losses": [m.final_losses for m in run.members],
        "steps_done": run.steps_done,
        "steps_budget": int(run.config.pinn.steps),
        "stopped": bool(run.stopped),
        "warm_start": run.warm.source,
        "direct_ratio_mean": float(np.mean(direct_ratio[both])) if both.any() else None,
        "noise_sigma": {"phi_w": run.warm.noise_w, "phi_d": run.warm.noise_d},
        "options": asdict(run.options),
        "kernel_radius_pixels": run.problem.radius,
        "patch_size": run.problem.patch,
        "global_balance": _global_balance(ratio, run.prepared, valid),
        # RMS of the mollified residual over the valid region (model units, 1/time)
        "residual_rms": {
            "warm_start": _rms(run.warm_maps["residual"], valid),
            "final": _rms(residual, valid),
        },
    }


def _rms(values: np.ndarray, valid: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(values[valid] ** 2))) if valid.any() else None


def _global_balance(ratio, prepared: PreparedFields, valid) -> float | None:
    """<lambda phi_e> / <phi_h> over the valid region (1 at a no-flux steady state)."""
    if not valid.any():
        return None
    phi_h, phi_e = phase_fractions(prepared.phi_w, prepared.phi_d)
    return float(np.mean(ratio[valid] * phi_e[valid]) / np.mean(phi_h[valid]))
