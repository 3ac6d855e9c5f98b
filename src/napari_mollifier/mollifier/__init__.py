"""The mollifier engine: derivatives of a field on a grid by one convolution each.

``d^k (eta * u) = (d^k eta) * u`` with analytic derivatives of a smooth compact kernel
``eta``. See docs/mollifier.md.
"""

from .kernels import (
    DEFAULT_KERNEL,
    KERNEL_NAMES,
    kernel_weights,
    min_width,
    min_width_pixels,
    support_radius,
    transfer_error,
)
from .layer import (
    BOUNDARIES,
    MollifierLayer,
    WidthSchedule,
    derivative_terms,
    mollified_derivatives,
)

__all__ = [
    "BOUNDARIES",
    "DEFAULT_KERNEL",
    "KERNEL_NAMES",
    "MollifierLayer",
    "WidthSchedule",
    "derivative_terms",
    "kernel_weights",
    "min_width",
    "min_width_pixels",
    "mollified_derivatives",
    "support_radius",
    "transfer_error",
]
