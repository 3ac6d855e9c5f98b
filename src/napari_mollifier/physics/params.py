"""Parameters of the nondimensional chromatin phase-separation model (MODEL.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


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
    """

    phi_max: float = 0.7
    interface_length: float = 0.03
    gamma_ac: float = 1.0
    mean_nucleoplasm: float = 0.5
    nm_per_unit: float = 300.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> ModelParams:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown model parameter(s) {sorted(unknown)}; "
                f"expected some of {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**data)


@dataclass
class CalibrationParams:
    """How a single-channel chromatin density image is mapped to volume fractions.

    A density image reports total chromatin; inside the nucleus mask its robust range
    (percentiles ``percentile_low`` .. ``percentile_high``) is mapped affinely onto
    ``phi_h_low`` .. ``phi_h_high``; euchromatin is taken uniform (``phi_e``, or derived from
    ``ModelParams.mean_nucleoplasm`` when None) and ``phi_w = 1 - phi_h - phi_e``.
    The absolute level of the recovered rate ratio depends on these choices.
    The automatic nucleus mask thresholds the density smoothed by ``mask_smoothing_nm`` at
    ``mask_threshold`` times its 99th percentile.
    """

    percentile_low: float = 1.0
    percentile_high: float = 99.0
    phi_h_low: float = 0.05
    phi_h_high: float = 0.65
    phi_e: float | None = None
    mask_smoothing_nm: float = 200.0
    mask_threshold: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> CalibrationParams:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown calibration parameter(s) {sorted(unknown)}; "
                f"expected some of {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**data)
