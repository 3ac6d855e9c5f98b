"""Write / read rate maps: one OME-TIFF (channels named after the maps) + a JSON sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import FormatError
from .images import _ome_info, atomic_write


def _tiff_path(path) -> Path:
    path = Path(path)
    if path.name.lower().endswith((".ome.tif", ".ome.tiff", ".tif", ".tiff")):
        return path
    return path.with_name(path.name + ".ome.tif")


def sidecar_path(tiff_path) -> Path:
    """``maps.ome.tif`` -> ``maps.json`` (same stem without .ome/.tif)."""
    name = Path(tiff_path).name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return Path(tiff_path).with_name(name + ".json")


def write_maps(path, result) -> list[Path]:
    """Write a :class:`~napari_mollifier.inverse.result.RateMaps` to disk.

    ``path`` gets an OME-TIFF (float32, axes CYX, one channel per map named as in
    ``result.maps()``, PhysicalSizeX/Y in nm when ``result.pixel_size_nm`` is known, origin as
    Plane PositionY/X in nm); a JSON sidecar with ``result.full_metadata()`` goes next to it
    (same stem, ``.json``). A path without a TIFF suffix gets ``.ome.tif``. Both files are
    written atomically. Returns ``[tiff_path, json_path]``.
    """
    import tifffile

    maps = result.maps()
    names = list(maps)
    stack = np.stack([np.asarray(maps[n], dtype=np.float32) for n in names])
    metadata = {"axes": "CYX", "Channel": {"Name": names}}
    px = getattr(result, "pixel_size_nm", None)
    if px is not None:
        metadata.update(
            PhysicalSizeX=float(px),
            PhysicalSizeXUnit="nm",
            PhysicalSizeY=float(px),
            PhysicalSizeYUnit="nm",
        )
    origin = tuple(float(v) for v in (getattr(result, "origin_nm", None) or (0.0, 0.0)))
    n = len(names)
    metadata["Plane"] = {
        "PositionY": [origin[0]] * n,
        "PositionYUnit": ["nm"] * n,
        "PositionX": [origin[1]] * n,
        "PositionXUnit": ["nm"] * n,
    }
    tiff = _tiff_path(path)
    sidecar = sidecar_path(tiff)
    full = result.full_metadata()
    full.setdefault("map_names", names)
    text = json.dumps(full, indent=2, sort_keys=True, allow_nan=False, default=str)
    atomic_write(tiff, lambda tmp: tifffile.imwrite(tmp, stack, ome=True, metadata=metadata))
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return [tiff, sidecar]


def read_maps(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read maps written by :func:`write_maps`: (name -> (H, W) float32, metadata dict).

    The metadata is the JSON sidecar when present, plus ``pixel_size_nm`` and ``origin_nm``
    from the OME-XML.
    """
    import tifffile

    tiff = _tiff_path(path)
    if not tiff.is_file():
        raise FileNotFoundError(f"{tiff}: no such file")
    try:
        with tifffile.TiffFile(tiff) as tif:
            stack = tif.series[0].asarray()
            info = _ome_info(tif.ome_metadata) if tif.ome_metadata else {}
    except Exception as exc:
        raise FormatError(f"{tiff}: could not read as an OME-TIFF of maps ({exc})") from exc
    if stack.ndim == 2:
        stack = stack[None]
    names = info.get("channel_names") or [f"map{i}" for i in range(stack.shape[0])]
    if len(names) != stack.shape[0]:
        raise FormatError(
            f"{tiff}: expected one channel name per map; found {len(names)} names for "
            f"{stack.shape[0]} channels"
        )
    maps = {str(name): stack[i] for i, name in enumerate(names)}
    metadata = {}
    sidecar = sidecar_path(tiff)
    if sidecar.is_file():
        try:
            metadata = json.loads(sidecar.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise FormatError(f"{sidecar}: JSON sidecar is not valid JSON ({exc})") from exc
    metadata.setdefault("pixel_size_nm", info.get("px_X"))
    if "origin_nm" in info:
        metadata.setdefault("origin_nm", list(info["origin_nm"]))
    return maps, metadata
