"""What kind of input a file is, from its name: the one classifier of the project.

The napari reader and the batch runner both ask :func:`input_kind`; the reader then confirms
with the file's header bytes (:func:`napari_mollifier.io.sniff_format`).
"""

from __future__ import annotations

from pathlib import Path

from .sniff import SUPPORTED_IMAGE_SUFFIXES, SUPPORTED_LOCALISATION_SUFFIXES

IMAGE_SUFFIXES = tuple(s.lower() for s in SUPPORTED_IMAGE_SUFFIXES)
LOCALISATION_SUFFIXES = tuple(s.lower() for s in SUPPORTED_LOCALISATION_SUFFIXES)


def _matches(name: str, suffixes: tuple[str, ...]) -> str | None:
    """Longest suffix in ``suffixes`` that ends ``name`` (so ".ome.tif" beats ".tif")."""
    hits = [s for s in suffixes if name.endswith(s)]
    return max(hits, key=len) if hits else None


def input_kind(path: str | Path) -> str | None:
    """ "image", "localisations" or None (unsupported suffix), from the file name only.

    An image suffix wins over a localisation suffix when both match (density images are read
    as images); ambiguous containers (``.h5``) are resolved by ``sniff_format`` later.
    """
    name = Path(path).name.lower()
    image_hit = _matches(name, IMAGE_SUFFIXES)
    locs_hit = _matches(name, LOCALISATION_SUFFIXES)
    if image_hit and (not locs_hit or len(image_hit) >= len(locs_hit)):
        return "image"
    if locs_hit:
        return "localisations"
    return None


def supported_suffixes() -> tuple[str, ...]:
    return tuple(sorted(set(IMAGE_SUFFIXES) | set(LOCALISATION_SUFFIXES)))


def strip_known_suffix(name: str) -> str:
    """``"cell_01.ome.tif"`` -> ``"cell_01"``; ``"run_locs.hdf5"`` -> ``"run_locs"``."""
    hit = _matches(name.lower(), supported_suffixes())
    if hit:
        return name[: len(name) - len(hit)]
    return Path(name).stem or name
