"""Rate estimators: direct weak-form, mollified PINN, autodiff baseline.

Flow: :mod:`.config` (one versioned config) -> :mod:`.prepared` (fields checked once) ->
:mod:`.registry` (the estimator ``config.method`` names: :mod:`.direct`, :mod:`.pinn`) ->
:mod:`.result` (one result type); :mod:`.events` holds the progress events and the stop token.
"""

from .api import infer_rates, iter_inference
from .config import CONFIG_VERSION, DirectOptions, InferenceConfig, PinnOptions, RenderOptions
from .events import ProgressEvent, StopToken
from .lamina import LaminaEstimate, estimate_lamina_affinity
from .prepared import PreparedFields, prepare_fields
from .registry import estimator_names, register_estimator
from .result import MAP_NAMES, RateMaps

__all__ = [
    "CONFIG_VERSION",
    "DirectOptions",
    "InferenceConfig",
    "LaminaEstimate",
    "PinnOptions",
    "PreparedFields",
    "RenderOptions",
    "estimate_lamina_affinity",
    "estimator_names",
    "prepare_fields",
    "register_estimator",
    "MAP_NAMES",
    "ProgressEvent",
    "RateMaps",
    "StopToken",
    "infer_rates",
    "iter_inference",
]
