"""PDE problems as pure functions of fields and derivatives, and forward simulators."""

from .chromatin import ChromatinFields, FieldsError, g, mu_d, mu_w, steady_state_residual
from .params import CalibrationParams, ModelParams
from .random_fields import gaussian_random_field, lognormal_rate_field
from .simulate import SimulationResult, downsample, simulate_chromatin
from .storm import blinking_localisations
from .synthetic import render_synthetic_density, sample_localisations, write_thunderstorm_csv

__all__ = [
    "blinking_localisations",
    "CalibrationParams",
    "ChromatinFields",
    "FieldsError",
    "ModelParams",
    "SimulationResult",
    "downsample",
    "g",
    "gaussian_random_field",
    "lognormal_rate_field",
    "mu_d",
    "mu_w",
    "render_synthetic_density",
    "sample_localisations",
    "simulate_chromatin",
    "steady_state_residual",
    "write_thunderstorm_csv",
]
