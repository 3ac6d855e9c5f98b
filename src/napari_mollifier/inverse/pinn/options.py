"""The PINN's section of the configuration (``config.pinn``); the defaults are the tuned ones."""

from __future__ import annotations

from dataclasses import dataclass

from ...choices import BACKBONE_PRESETS, BACKBONES, PINN_EQUATIONS, PINN_FIELDS_MODES
from ...schema import option, validate


@dataclass
class PinnOptions:
    """Settings of the mollified PINN (``method="pinn"`` / ``"pinn-autodiff"``).

    Attributes
    ----------
    backbone : {"pinn", "pirate", "pinnsformer"}
        Network that maps coordinates to the raw fields (:mod:`napari_mollifier.nets`).
    steps : int
        Optimisation steps in total, split over the ensemble members.
    learning_rate : float
        Adam learning rate at the start of the cosine schedule.
    patch_size : int
        Side of the training patch in pixels (plus the kernel halo); memory does not grow with
        the image.
    ensemble_size : int
        Members (seeds ``seed + 1000 k``); their spread makes the uncertainty map.
    fields_mode : {"correction", "network"}
        How the fields are parametrised (see :mod:`napari_mollifier.inverse.pinn`);
        "pinn-autodiff" forces "network".
    preset : str
        Backbone size preset (:data:`napari_mollifier.nets.PRESETS`).
    equations : {"auto", "both", "rate"}
        "both": the loss holds both steady-state equations, the rate equation
        ``lap(mu_d) + 2 (lambda phi_e - phi_h) = 0`` and the nucleoplasm equation
        ``lap(mu_w) = 0``; "rate": the first only. The second one carries no lambda but
        constrains the fields: it is what lets the fitted fields shed the part of the noise the
        rate equation would turn into lambda. "auto": "both" when the input observes phi_e (two
        channels, phi_w and phi_d), "rate" when phi_e is uniform (a calibrated single-channel
        density, whose fields violate ``mu_w = const``).
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
        estimated noise, so that the member spread includes the effect of the data noise.
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
        Minimum time between progress events (seconds).
    width_factor : float
        Without ``config.mollifier_width``, the PINN's mollifier width is this fraction of the
        direct estimator's automatic width, but at least 2 x the smallest resolving width (or
        the direct width, if that is smaller).
    """

    backbone: str = option("pirate", choices=BACKBONES, doc="network backbone")
    steps: int = option(480, low=1, high=10_000_000, doc="optimisation steps (all members)")
    learning_rate: float = option(5e-3, low=0, high=1, low_open=True, doc="Adam learning rate")
    patch_size: int = option(64, low=8, high=4096, unit="pixels", doc="training patch side")
    ensemble_size: int = option(3, low=1, high=64, doc="ensemble members (uncertainty)")
    fields_mode: str = option("correction", choices=PINN_FIELDS_MODES)
    preset: str = option("default", choices=BACKBONE_PRESETS)
    equations: str = option("auto", choices=PINN_EQUATIONS)
    weight_residual: float = option(10.0, low=0)
    weight_residual_w: float = option(10.0, low=0)
    weight_data: float = option(1.0, low=0)
    weight_smooth: float = option(3.0, low=0)
    prior_length: float = option(1.0, low=0, unit="model units")
    ref_smoothing: float = option(0.3, low=0, unit="model units")
    correction_scale: float = option(2.0, low=0, low_open=True)
    zero_mean_corrections: bool = option(True)
    perturb_data: bool = option(False)
    final_lr_fraction: float = option(0.05, low=0, high=1)
    patience: int = option(400, low=1)
    average_from: float = option(0.5, low=0)
    eval_tile: int = option(128, low=16, high=8192, unit="pixels")
    progress_interval_s: float = option(0.25, low=0, unit="s")
    width_factor: float = option(0.7, low=0, low_open=True)

    def __post_init__(self) -> None:
        validate(self, prefix="pinn.")
