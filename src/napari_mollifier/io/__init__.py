"""Qt-free input / output: SMLM localisation readers, density rendering, images, rate maps.

Everything here works in nanometres. See ``docs/formats.md`` for formats and conventions.

>>> from napari_mollifier.io import read_localisations, render_density
>>> locs = read_localisations("cell.csv")                      # doctest: +SKIP
>>> img = render_density(locs, pixel_size_nm=10.0)            # doctest: +SKIP
"""

from .errors import FormatError
from .images import read_image, write_image
from .kinds import input_kind, strip_known_suffix, supported_suffixes
from .render import RENDER_METHODS, render_density
from .sniff import (
    SUPPORTED_IMAGE_SUFFIXES,
    SUPPORTED_LOCALISATION_SUFFIXES,
    read_localisations,
    sniff_format,
)
from .types import CANONICAL_COLUMNS, DensityImage, Localisations
from .write import read_maps, write_maps

__all__ = [
    "CANONICAL_COLUMNS",
    "RENDER_METHODS",
    "SUPPORTED_IMAGE_SUFFIXES",
    "SUPPORTED_LOCALISATION_SUFFIXES",
    "DensityImage",
    "FormatError",
    "input_kind",
    "Localisations",
    "read_image",
    "read_localisations",
    "read_maps",
    "render_density",
    "sniff_format",
    "strip_known_suffix",
    "supported_suffixes",
    "write_image",
    "write_maps",
]
