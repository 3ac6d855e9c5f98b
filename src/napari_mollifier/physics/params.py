"""Parameters of the nondimensional chromatin phase-separation model (MODEL.md)."""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import CALIBRATION_ANCHORS
from ..schema import from_dict, option, to_dict, validate


@dataclass
class ModelParams:
    """Constants of the chromatin model, in model units unless named otherwise.

    Attributes
    ----------
    phi_max : float
        Maximal packing fraction of heterochromatin in ``g(phi_h)`` (dimensionless).
    interface_length : float
        Gradient-energy length ``l`` (model units); sets the interface width.
    gamma_ac : float
        Acetylation rate (sets the time unit); only ``Gamma_me / Gamma_ac`` is identifiable.
    mean_nucleoplasm : float
        Mean nucleoplasm fraction ``<phi_w>`` assumed inside the nucleus.
    nm_per_unit : float
        Physical length of one model unit in nanometres (domains ~1 unit apart; 250-350 nm).
    lamina_affinity : float
        Attraction of heterochromatin to the nuclear envelope, ``h`` (model units: the
        interface energy scale times length). It fixes the normal derivative at the wall:
        ``l^2 n.grad(phi_h) = h`` with ``n`` the outward normal (``l^2 n.grad(phi_d) = h``,
        ``l^2 n.grad(phi_w) = -h``, euchromatin neutral), the natural condition of a surface
        energy ``-2 h phi_h`` on the wall; h > 0 grows a heterochromatin layer along the
        envelope (LADs). 0 (default): a neutral wall, ``n.grad(phi) = 0``. The no-flux
        conditions ``n.grad(mu_d) = n.grad(mu_w) = 0`` hold either way. Only walls use it (not
        periodic boxes).
    """

    phi_max: float = option(0.7, low=0, high=1, low_open=True, high_open=True)
    interface_length: float = option(0.03, low=0, low_open=True, unit="model units")
    gamma_ac: float = option(1.0, low=0, low_open=True, unit="1 / model time")
    mean_nucleoplasm: float = option(0.5, low=0, high=1, low_open=True, high_open=True)
    nm_per_unit: float = option(300.0, low=1, high=1e5, unit="nm")
    lamina_affinity: float = option(
        0.0, unit="model units", doc="l^2 n.grad(phi_h) at the envelope (0: neutral wall)"
    )

    def __post_init__(self) -> None:
        validate(self, prefix="model.")

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> ModelParams:
        return from_dict(cls, data, prefix="model.")


@dataclass
class CalibrationParams:
    """How a single-channel chromatin density image is mapped to volume fractions.

    A density image reports total chromatin; inside the nucleus mask its robust range
    (percentiles ``percentile_low`` .. ``percentile_high``) is mapped affinely onto
    ``phi_h_low`` .. ``phi_h_high``; euchromatin is taken uniform (``phi_e``, or derived from
    ``ModelParams.mean_nucleoplasm`` when None) and ``phi_w = 1 - phi_h - phi_e``.
    The absolute level of the recovered rate ratio depends on these choices: at a steady state
    ``<lambda phi_e> = <phi_h>``, so the mean ratio is set by how the calibration splits
    chromatin into ``phi_h`` and ``phi_e``; a single-channel image cannot tell.

    ``anchor`` says what fixes the offset of the affine map (its slope always comes from the
    percentile range, which restores the contrast that rendering blur takes away):

    - ``"percentiles"`` (MODEL.md): ``percentile_low`` maps onto ``phi_h_low``;
    - ``"mean"``: the offset makes ``<phi_w> = mean_nucleoplasm`` inside the mask with the given
      ``phi_e`` (required), i.e. ``<phi_h> = 1 - mean_nucleoplasm - phi_e``. Use it when the
      euchromatin fraction is known; it does not depend on the tails of the density histogram.

    The automatic nucleus mask thresholds the density smoothed by ``mask_smoothing_nm`` at
    ``mask_threshold`` times its 99th percentile.
    """

    percentile_low: float = option(1.0, low=0, high=100, unit="percent")
    percentile_high: float = option(99.0, low=0, high=100, unit="percent")
    phi_h_low: float = option(0.05, low=0, high=1)
    phi_h_high: float = option(0.65, low=0, high=1)
    phi_e: float | None = option(None, low=0, high=1, low_open=True, high_open=True)
    anchor: str = option("percentiles", choices=CALIBRATION_ANCHORS)
    mask_smoothing_nm: float = option(200.0, low=0, high=1e5, unit="nm")
    mask_threshold: float = option(0.5, low=0, high=1, low_open=True)

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> CalibrationParams:
        return from_dict(cls, data, prefix="calibration.")

    def __post_init__(self) -> None:
        validate(self, prefix="calibration.")
        if not self.phi_h_high > self.phi_h_low:
            raise ValueError(
                f"calibration phi_h range: expected phi_h_low < phi_h_high, found "
                f"{self.phi_h_low} .. {self.phi_h_high}"
            )
        if self.anchor == "mean" and self.phi_e is None:
            raise ValueError(
                "calibration anchor 'mean' needs phi_e (the euchromatin fraction): "
                "<phi_h> = 1 - mean_nucleoplasm - phi_e"
            )
        if not self.percentile_high > self.percentile_low:
            raise ValueError(
                f"calibration percentiles: expected percentile_low < percentile_high, found "
                f"{self.percentile_low} .. {self.percentile_high}"
            )
