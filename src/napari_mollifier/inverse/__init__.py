"""Rate estimators: direct weak-form, mollified PINN, autodiff baseline."""

from .api import ProgressEvent, StopToken, infer_rates, iter_inference
from .config import InferenceConfig
from .result import MAP_NAMES, RateMaps

__all__ = [
    "InferenceConfig",
    "MAP_NAMES",
    "ProgressEvent",
    "RateMaps",
    "StopToken",
    "infer_rates",
    "iter_inference",
]
