"""Density images with a physical pixel size: TIFF / OME-TIFF / ImageJ TIFF and .npy.

Pixel size, in order: the ``pixel_size_nm`` argument; OME ``PhysicalSizeX`` (+ unit, default
µm); ImageJ ``unit`` + XResolution; TIFF ResolutionUnit (µm / mm as tifffile writes them, cm,
inch) + XResolution; for cm and inch only when the result is a microscope-like size (<= 10 µm:
72/96/300 dpi "display" resolutions are ignored). None of these -> :class:`FormatError` asking
for ``pixel_size_nm``.
Axes: tifffile's ``series.axes``. Singleton axes are dropped; a channel axis (C, S, or an
unnamed one of 2..4 planes) gives (C, Y, X); a Z or T stack is refused with a message asking
for one plane or a projection (``z_plane``), never read as channels.
Origin: OME ``Plane PositionX/Y`` (as written by :func:`write_image`) when present, else
(0, 0), i.e. the centre of pixel [0, 0] sits at world (0, 0) nm (napari's default).
"""

from __future__ import annotations

import math
import os
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..choices import Z_PROJECTIONS
from ._table import NM_PER_UNIT, check_pixel_size
from .errors import FormatError
from .limits import check_image, check_pixel_size_range
from .types import DensityImage

MAX_CHANNELS = 4
_MAX_DISPLAY_PIXEL_NM = 10_000.0
#: nm per TIFF ResolutionUnit (tifffile.RESUNIT: 2 inch, 3 cm, 4 mm, 5 µm; 1 = no unit)
_RESUNIT_NM = {2: 2.54e7, 3: 1e7, 4: 1e6, 5: 1e3}
#: Units whose resolution is often a screen / print "dpi" rather than a pixel size.
_DISPLAY_UNITS = (2, 3)
#: Axes of a stack of planes that must be reduced to one plane (tifffile letters).
_STACK_AXES = "ZT"
#: Start of the error for an image without any pixel size (the napari reader opens such an
#: image in pixels and lets the widget ask for the size).
NO_PIXEL_SIZE = "no physical pixel size in the file"
#: Projections ``z_plane`` accepts besides a plane index.
PROJECTIONS = Z_PROJECTIONS


def _unit_nm(unit: str | None, default: str = "µm") -> float | None:
    u = (unit or default).strip().lower().replace("\\u00b5", "µ").replace("u00b5", "µ")
    return NM_PER_UNIT.get(u)


def _ome_info(xml: str) -> dict:
    """PhysicalSizeX/Y (nm), Plane PositionX/Y (nm) and channel names from OME-XML."""
    out = {}
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return out
    pixels = next(
        (el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"), None
    )
    if pixels is None:
        return out
    for axis in ("X", "Y"):
        value = pixels.get(f"PhysicalSize{axis}")
        if value is not None:
            factor = _unit_nm(pixels.get(f"PhysicalSize{axis}Unit"))
            if factor is not None:
                out[f"px_{axis}"] = float(value) * factor
    names = [c.get("Name") for c in pixels if c.tag.endswith("Channel")]
    if names:
        out["channel_names"] = names
    plane = next((c for c in pixels if c.tag.endswith("Plane")), None)
    if plane is not None and plane.get("PositionX") is not None:
        fy = _unit_nm(plane.get("PositionYUnit"), "µm")
        fx = _unit_nm(plane.get("PositionXUnit"), "µm")
        if fx is not None and fy is not None and plane.get("PositionY") is not None:
            out["origin_nm"] = (
                float(plane.get("PositionY")) * fy,
                float(plane.get("PositionX")) * fx,
            )
    return out


def _resolution_nm(page, imagej_meta) -> float | None:
    """Pixel size (nm) from the TIFF resolution tags, in any ResolutionUnit tifffile knows."""
    tags = page.tags
    if "XResolution" not in tags:
        return None
    try:
        per_unit = float(page.get_resolution()[0])  # pixels per unit
    except (ValueError, ZeroDivisionError, TypeError):
        return None
    if not per_unit > 0 or not math.isfinite(per_unit):
        return None
    if imagej_meta and imagej_meta.get("unit"):
        factor = _unit_nm(str(imagej_meta["unit"]))
        return None if factor is None else factor / per_unit
    unit = int(page.resolutionunit)
    factor = _RESUNIT_NM.get(unit)
    if factor is None:
        return None
    size = factor / per_unit
    if unit in _DISPLAY_UNITS and size > _MAX_DISPLAY_PIXEL_NM:
        return None
    return size


def read_image(
    path,
    pixel_size_nm: float | None = None,
    z_plane: int | str | None = None,
    max_megapixels: float | None = None,
    channel: int | None = None,
) -> DensityImage:
    """Read a density image with its pixel size.

    Returns a :class:`DensityImage` whose ``data`` is (H, W) float, or (C, H, W) for images
    with 2..4 channels (``metadata["axes"] == "CYX"``, channel names in
    ``metadata["channel_names"]``; two channels are phase fields only when named ``phi_w``,
    ``phi_d``, see ``ChromatinFields.from_density``). ``channel`` keeps only that channel
    (index), giving an (H, W) image with ``metadata["channel"]`` naming it. Integer data is
    converted to float32.

    The declared shape and dtype are checked before any pixel is read: more than
    ``max_megapixels`` million pixels (default ``limits.MAX_IMAGE_MEGAPIXELS``), a shape that is
    not (Y, X) or (C, Y, X), or uncompressed pixel data reaching past the end of the file is a
    FormatError (a small compressed file can declare gigabytes).

    ``z_plane`` reduces a Z (or T) stack to one plane: an index (0-based) or one of
    :data:`PROJECTIONS` ("max", "mean", "sum"); without it a stack is refused.

    Raises
    ------
    FormatError
        Unreadable file, a stack without ``z_plane``, unsupported dimensionality, declared size
        over the limit, or no pixel
        size anywhere and none given.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():  # stat only: opening a FIFO would block
        raise FormatError(f"{path}: expected a regular image file, found {_kind_of(path)}")
    given = check_pixel_size(pixel_size_nm, path)
    try:
        data, info, fmt, axes = _load(path, max_megapixels)
    except FormatError:
        raise
    except MemoryError as exc:
        raise FormatError(f"{path}: not enough memory to read the image ({exc})") from exc
    except Exception as exc:  # tifffile / numpy raise many types on corrupt files
        raise FormatError(
            f"{path}: could not read as a TIFF / OME-TIFF / .npy image "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    data, axes, reduced = arrange_axes(data, axes, path, z_plane)
    px = given
    source = "argument" if given is not None else info.get("px_source")
    if px is None:
        px = info.get("px_X")
    if px is None or not np.isfinite(px) or px <= 0:
        raise FormatError(
            f"{path}: {NO_PIXEL_SIZE} (looked for OME PhysicalSizeX, ImageJ "
            "unit + resolution, TIFF resolution tags); pass pixel_size_nm"
        )
    if given is None:
        check_pixel_size_range(path.name, float(px), source or "the file")
    if given is None and info.get("px_Y") and not math.isclose(info["px_Y"], px, rel_tol=1e-3):
        raise FormatError(
            f"{path}: expected square pixels; found PhysicalSizeX {px} nm and "
            f"PhysicalSizeY {info['px_Y']} nm"
        )
    meta = {"source_format": fmt, "pixel_size_source": source, "file": path.name, "axes": axes}
    if reduced:
        meta["z_plane"] = reduced
    if axes == "CYX":
        meta["channel_names"] = info.get("channel_names") or [
            f"channel {i}" for i in range(data.shape[0])
        ]
    if channel is not None:
        data = _pick_channel(path, data, meta, channel)
    if data.dtype.kind not in "f":
        if data.dtype.kind not in "iub":
            raise FormatError(f"{path}: expected a numeric image; found dtype {data.dtype}")
        data = data.astype(np.float32)
    return DensityImage(
        data=data,
        pixel_size_nm=float(px),
        origin_nm=tuple(info.get("origin_nm", (0.0, 0.0))),
        metadata=meta,
        path=path,
    )


def arrange_axes(data: np.ndarray, axes: str | None, path, z_plane=None):
    """(data as YX or CYX, "YX" / "CYX", what reduced a stack or "") from tifffile axes.

    ``axes`` None (``.npy``) means: 2-D is YX, a leading axis of 2..4 is channels.
    """
    if axes is None or len(axes) != data.ndim:
        axes = {2: "YX", 3: "QYX"}.get(data.ndim, "Q" * data.ndim)
    keep = [i for i, n in enumerate(data.shape) if n != 1 or axes[i] in "YX"]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    reduced = ""
    stack = [a for a in axes if a in _STACK_AXES]
    if stack:
        if len(stack) > 1 or z_plane is None:
            size = data.shape[axes.index(stack[0])]
            raise FormatError(
                f"{path}: a {'/'.join(stack)} stack of {size} planes (axes {axes}, shape "
                f"{data.shape}): a rate-ratio map needs one 2-D plane, so it is not read as "
                f"channels. Choose a plane (z_plane = 0..{size - 1}) or a projection (z_plane = "
                f"{' | '.join(PROJECTIONS)}; the batch runner's --z-plane), or save one plane / a "
                "projection from Fiji or napari"
            )
        data, reduced = _reduce_stack(data, axes.index(stack[0]), z_plane, path)
        axes = axes.replace(stack[0], "")
    if axes == "YX":
        return data, "YX", reduced
    if axes.endswith("S") and axes[:-1] == "YX":
        raise FormatError(
            f"{path}: an RGB(A) colour image (axes {axes}, shape {data.shape}); expected a "
            "single-channel density image (convert it to one channel first)"
        )
    if len(axes) == 3 and axes.endswith("YX") and axes[0] in "CSIQ":
        if 2 <= data.shape[0] <= MAX_CHANNELS:
            return data, "CYX", reduced
    raise FormatError(
        f"{path}: expected a 2-D (Y, X) image or (C, Y, X) with 2..{MAX_CHANNELS} channels; "
        f"found shape {data.shape} (axes {axes})"
    )


def _reduce_stack(data: np.ndarray, axis: int, z_plane, path) -> tuple[np.ndarray, str]:
    size = data.shape[axis]
    if isinstance(z_plane, str) and z_plane.strip().lower() in PROJECTIONS:
        how = z_plane.strip().lower()
        values = np.asarray(data, dtype=np.float32)
        return getattr(np, how)(values, axis=axis), f"{how} projection of {size} planes"
    text = str(z_plane).strip()
    index = int(text) if text.isdigit() and not isinstance(z_plane, (bool, float)) else -1
    if not 0 <= index < size:
        raise FormatError(
            f"{path}: z_plane: expected a plane 0..{size - 1} or one of {PROJECTIONS}, "
            f"found {z_plane!r}"
        )
    return np.take(data, index, axis=axis), f"plane {index} of {size}"


def probe_image(path) -> tuple[str | None, tuple[int, ...]]:
    """(tifffile axes or None for .npy, shape) from the header, without reading pixels."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:6] == b"\x93NUMPY":
        return None, tuple(np.load(path, allow_pickle=False, mmap_mode="r").shape)
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return str(series.axes), tuple(series.shape)


def _kind_of(path: Path) -> str:
    return "a directory" if path.is_dir() else "a FIFO, device or socket"


def _pick_channel(path: Path, data, meta: dict, channel) -> np.ndarray:
    """Channel ``channel`` of a (C, H, W) image (metadata updated); 0 of a 2-D image."""
    n = data.shape[0] if data.ndim == 3 else 1
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        raise FormatError(f"{path}: channel must be a channel index, found {channel!r}")
    if not 0 <= int(channel) < n:
        raise FormatError(f"{path}: channel {channel} asked for; the image has channels 0..{n - 1}")
    if data.ndim == 2:
        return data
    names = meta.pop("channel_names")
    meta.update(axes="YX", channel=str(names[int(channel)]), channel_index=int(channel))
    return np.ascontiguousarray(data[int(channel)])


def _check_declared(path: Path, shape, dtype, max_megapixels) -> None:
    """Refuse, before reading, a declared shape that is too big (the layout, Z stacks
    included, is checked by :func:`arrange_axes` once the axes are known)."""
    squeezed = tuple(int(n) for n in shape if int(n) != 1)
    check_image(path.name, squeezed, np.dtype(dtype).itemsize, max_megapixels)


def _check_npy(path: Path, max_megapixels) -> None:
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(fh)
        header_end = fh.tell()
    _check_declared(path, shape, dtype, max_megapixels)
    declared = header_end + math.prod(shape) * dtype.itemsize
    if declared > path.stat().st_size:
        raise FormatError(
            f"{path}: .npy header declares shape {shape} of {dtype} ({declared} bytes) but the "
            f"file has {path.stat().st_size} bytes: truncated"
        )


def _check_tiff(tif, series, path: Path, max_megapixels) -> None:
    """Shape / size of the first series, and uncompressed strips inside the file."""
    _check_declared(path, series.shape, series.dtype, max_megapixels)
    size = path.stat().st_size
    for page in series.pages:
        if page is None or int(getattr(page, "compression", 1)) != 1:
            continue  # compressed: bounded by the shape check above
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
        if ends and max(ends) > size:
            raise FormatError(
                f"{path}: TIFF pixel data declared up to byte {max(ends)} but the file has "
                f"{size} bytes: truncated"
            )


def _load(path: Path, max_megapixels=None):
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:6] == b"\x93NUMPY":
        _check_npy(path, max_megapixels)
        data = np.load(path, allow_pickle=False, mmap_mode="r")
        return np.asarray(data), {}, "npy", None
    if head[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        raise FormatError(
            f"{path}: expected a TIFF (II*/MM* signature) or .npy file; found bytes {head[:8]!r}"
        )
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        _check_tiff(tif, series, path, max_megapixels)
        data = series.asarray()
        axes = str(series.axes)
        info = {}
        fmt = "tiff"
        if tif.is_ome and tif.ome_metadata:
            info = _ome_info(tif.ome_metadata)
            fmt = "ome-tiff"
            if "px_X" in info:
                info["px_source"] = "OME PhysicalSizeX"
        if "px_X" not in info:
            ij = tif.imagej_metadata if tif.is_imagej else None
            px = _resolution_nm(tif.pages[0], ij)
            if px is not None:
                info["px_X"] = px
                info["px_source"] = "ImageJ unit + resolution" if ij else "TIFF resolution tags"
                fmt = "imagej-tiff" if ij else fmt
    return data, info, fmt, axes


def write_image(path, image: DensityImage) -> Path:
    """Write a DensityImage as OME-TIFF (float32) with PhysicalSizeX/Y (nm) and origin.

    The origin is stored as OME ``Plane PositionY/X`` in nm so :func:`read_image` restores it.
    The file is written atomically (temporary file in the same folder, then ``os.replace``).
    """
    import tifffile

    path = Path(path)
    data = np.asarray(image.data, dtype=np.float32)
    axes = "CYX" if data.ndim == 3 else "YX"
    px = float(image.pixel_size_nm)
    metadata = {
        "axes": axes,
        "PhysicalSizeX": px,
        "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": px,
        "PhysicalSizeYUnit": "nm",
    }
    n_planes = data.shape[0] if data.ndim == 3 else 1
    metadata["Plane"] = {
        "PositionY": [float(image.origin_nm[0])] * n_planes,
        "PositionYUnit": ["nm"] * n_planes,
        "PositionX": [float(image.origin_nm[1])] * n_planes,
        "PositionXUnit": ["nm"] * n_planes,
    }
    names = (image.metadata or {}).get("channel_names")
    if data.ndim == 3 and names:
        metadata["Channel"] = {"Name": [str(n) for n in names]}
    atomic_write(path, lambda tmp: tifffile.imwrite(tmp, data, ome=True, metadata=metadata))
    return path


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temp file next to ``path``, then ``os.replace``.

    The temporary file is created with mode 0666 less the user's umask, like any file the user
    writes (``tempfile.mkstemp`` makes 0600 files, which a lab group could not read).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
