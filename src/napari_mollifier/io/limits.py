"""Limits on what a reader may allocate, checked against what a file DECLARES before reading.

A small file can declare huge contents: a compressed 30000 x 30000 TIFF of 8 KB, an HDF5
dataset of 2e9 rows that was never written, a ``.smlm`` zip whose table inflates to gigabytes.
Every reader compares the declared size with these limits (and, where the format allows, with
what the file really stores) and raises :class:`FormatError` before allocating anything.
"""

from __future__ import annotations

import math

from .errors import FormatError

#: Largest density image read (million pixels, all channels together): 256 MP is 1 GiB as
#: float32, e.g. 16384 x 16384; a nucleus of 16 um at 10 nm is 2.6 MP.
MAX_IMAGE_MEGAPIXELS = 256.0
#: Largest localisation table read (rows). Long acquisitions reach tens of millions; 1e8 rows
#: of 8 float64 columns are 6.4 GB already.
MAX_LOCALISATIONS = 100_000_000
#: Largest ratio of declared to stored bytes accepted for a compressed HDF5 dataset. Deflate
#: cannot exceed about 1032:1 (an all-zero column gets close), so anything above is a dataset
#: that was declared but never written (or a crafted file), not data.
MAX_COMPRESSION_RATIO = 1100.0
#: Largest ratio accepted for a compressed table of a ``.smlm`` zip (checked above 64 MiB):
#: localisation coordinates are close to incompressible (a table of random x, y plus twenty
#: constant columns compresses about 11:1), so 200:1 means a zip bomb, not localisations.
MAX_TABLE_COMPRESSION_RATIO = 200.0


#: Accepted pixel sizes (nm), given or read from a file: below 0.1 nm or above 10 um a "pixel
#: size" is a unit error (m read as nm, a display dpi), not a microscope's.
MIN_PIXEL_SIZE_NM = 0.1
MAX_PIXEL_SIZE_NM = 10_000.0


def check_pixel_size_range(name: str, value: float, source: str = "the file") -> float:
    """``value`` (nm) if within [MIN_PIXEL_SIZE_NM, MAX_PIXEL_SIZE_NM], else FormatError."""
    if not MIN_PIXEL_SIZE_NM <= value <= MAX_PIXEL_SIZE_NM:  # NaN fails too
        raise FormatError(
            f"{name}: pixel size {value:g} nm (from {source}) is outside the accepted "
            f"{MIN_PIXEL_SIZE_NM:g} nm .. {MAX_PIXEL_SIZE_NM / 1e3:g} um: check its unit"
        )
    return value


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB"


def check_image(name: str, shape, itemsize: int, max_megapixels: float | None = None) -> None:
    """Refuse an image whose declared ``shape`` exceeds ``max_megapixels`` (default
    :data:`MAX_IMAGE_MEGAPIXELS`), naming the file, the shape and the memory it would take."""
    limit = MAX_IMAGE_MEGAPIXELS if max_megapixels is None else float(max_megapixels)
    n_pixels = math.prod(int(s) for s in shape)
    if n_pixels > limit * 1e6:
        raise FormatError(
            f"{name}: declares an image of shape {tuple(int(s) for s in shape)} "
            f"({n_pixels / 1e6:.4g} megapixels, {_gib(n_pixels * max(itemsize, 4))} in memory); "
            f"the limit is {limit:g} megapixels: crop or bin the image first, or raise "
            "max_megapixels"
        )


def check_rows(name: str, what: str, rows: int, max_rows: int | None = None) -> None:
    """Refuse a table of more than ``max_rows`` (default :data:`MAX_LOCALISATIONS`) rows."""
    limit = MAX_LOCALISATIONS if max_rows is None else int(max_rows)
    if rows > limit:
        raise FormatError(
            f"{name}: {what} declares {rows} localisations; at most {limit} are read "
            "(max_localisations): the file is corrupt, or split it first"
        )


def check_stored(
    name: str,
    what: str,
    declared: int,
    stored: int,
    compressed: bool,
    max_ratio: float = MAX_COMPRESSION_RATIO,
    min_bytes: int = 1 << 20,
) -> None:
    """Refuse ``declared`` bytes backed by too few ``stored`` bytes: truncated or never written
    (uncompressed), or more than ``max_ratio`` : 1 when compressed and over ``min_bytes``."""
    if compressed:
        if declared > max(stored, 1) * max_ratio and declared > min_bytes:
            raise FormatError(
                f"{name}: {what} declares {declared} bytes ({_gib(declared)}) but stores only "
                f"{stored} compressed bytes (more than {max_ratio:g}:1, which real "
                "localisation data does not reach): never written, or a decompression bomb"
            )
    elif declared > stored:
        raise FormatError(
            f"{name}: {what} declares {declared} bytes ({_gib(declared)}) but the file stores "
            f"only {stored}: the file is truncated or the data was never written"
        )
