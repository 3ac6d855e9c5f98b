"""Every allowed-value list of the project, defined once.

The config, the batch runner's flags, the widget's drop-downs, the engine and the readers all
take their choices from here (estimator names come from :mod:`napari_mollifier.inverse.registry`
because estimators can be registered). Importing this module is free: no torch, no Qt.
"""

from __future__ import annotations

#: Network backbones (:func:`napari_mollifier.nets.build_backbone`).
BACKBONES = ("pinn", "pirate", "pinnsformer")
#: Mollifier profiles (:mod:`napari_mollifier.mollifier.kernels`).
KERNELS = ("bump", "polynomial", "gaussian")
#: Compute devices; ``"cuda:N"`` (a GPU index) is accepted wherever ``"cuda"`` is.
DEVICES = ("auto", "cpu", "cuda", "mps")
#: How a localisation table becomes a density image (:func:`napari_mollifier.io.render_density`).
RENDER_METHODS = ("gaussian", "histogram")
#: What the image border is: a crop of a larger scene, the nuclear envelope, or periodic.
IMAGE_BORDERS = ("open", "wall", "periodic")
#: What fixes the offset of the density -> phi_h calibration.
CALIBRATION_ANCHORS = ("percentiles", "mean")
#: How the PINN parametrises the fields (see :mod:`napari_mollifier.inverse.pinn`).
PINN_FIELDS_MODES = ("correction", "network")
#: Which steady-state equations the PINN loss holds.
PINN_EQUATIONS = ("auto", "both", "rate")
#: Projections that reduce a Z (or T) image stack to one plane, besides a plane index.
Z_PROJECTIONS = ("max", "mean", "sum")
#: Backbone size presets (:data:`napari_mollifier.nets.PRESETS`).
BACKBONE_PRESETS = ("default", "paper")


def is_z_plane(value) -> bool:
    """A plane index (0, 1, ...) or one of :data:`Z_PROJECTIONS`."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, int) and value >= 0) or value in Z_PROJECTIONS


def is_device_name(name) -> bool:
    """True for an entry of :data:`DEVICES` or ``"cuda:N"`` with N a non-negative integer."""
    if not isinstance(name, str):
        return False
    if name in DEVICES:
        return True
    head, _, index = name.partition(":")
    return head == "cuda" and index.isdigit()
