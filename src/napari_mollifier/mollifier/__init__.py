"""The mollifier engine: derivatives of a field on a grid by one convolution each.

The functional form (:mod:`.functional`) is primary; :class:`MollifierLayer` wraps it with
kernels kept as buffers and an optional learnable width.

``d^k (eta * u) = (d^k eta) * u`` with analytic derivatives of a smooth compact kernel
``eta``. See docs/mollifier.md.
"""

from .boundary import (
    IMAGE_BORDERS,
    boundary_derivatives,
    extend_fields,
    extension_operator,
    wall_line_density,
)
from .functional import BOUNDARIES, derivative_terms, mollified_derivatives, mollify
from .kernels import (
    DEFAULT_KERNEL,
    KERNEL_NAMES,
    kernel_weights,
    min_width,
    min_width_pixels,
    radius_pixels,
    support_radius,
    transfer_error,
)
from .layer import MollifierLayer, WidthSchedule

__all__ = [
    "BOUNDARIES",
    "IMAGE_BORDERS",
    "boundary_derivatives",
    "extend_fields",
    "extension_operator",
    "wall_line_density",
    "DEFAULT_KERNEL",
    "KERNEL_NAMES",
    "MollifierLayer",
    "WidthSchedule",
    "derivative_terms",
    "kernel_weights",
    "min_width",
    "min_width_pixels",
    "mollified_derivatives",
    "mollify",
    "radius_pixels",
    "support_radius",
    "transfer_error",
]
