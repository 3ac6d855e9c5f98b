"""Shared helpers: header normalisation, unit parsing, building the canonical table."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import FormatError
from .limits import check_pixel_size_range
from .types import CANONICAL_COLUMNS, Localisations

#: Length units -> nm per unit. "px" is handled separately (needs a pixel size).
NM_PER_UNIT = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nanometre": 1.0,
    "nanometres": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "μm": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometers": 1e3,
    "micrometre": 1e3,
    "micrometres": 1e3,
    "mm": 1e6,
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
    "meters": 1e9,
    "a": 0.1,
    "angstrom": 0.1,
}
PX_UNITS = {"px", "pix", "pixel", "pixels", "camera pixel", "camera pixels", "camera_pixel"}

_UNIT_RE = re.compile(r"^(?P<base>.*?)\s*(?:[\[\(](?P<u1>[^\]\)]*)[\]\)]|_(?P<u2>[a-zµμ]+))$")


def norm_header(name: str) -> str:
    """Strip quotes, BOM and spaces, collapse inner whitespace, lower-case."""
    s = str(name).replace("\ufeff", "").replace('"', "").replace("'", "").strip()
    return re.sub(r"\s+", " ", s).lower()


def split_header(line: str, delimiter: str | None) -> list[str]:
    """Split a header line on ``delimiter`` (None = whitespace) and normalise each name.

    Splitting ourselves (instead of a CSV parser) copes with ThunderSTORM files whose whole
    header is one quoted field with doubled quotes around every name.
    """
    line = line.rstrip("\r\n")
    parts = line.split() if delimiter is None else line.split(delimiter)
    return [norm_header(p) for p in parts]


def parse_unit(name: str) -> tuple[str, str | None]:
    """``"x [nm]"`` -> ("x", "nm"); ``"x_px"`` -> ("x", "px"); ``"x"`` -> ("x", None)."""
    m = _UNIT_RE.match(name)
    if m:
        unit = (m.group("u1") if m.group("u1") is not None else m.group("u2")).strip()
        unit = unit.replace("^", "")
        if unit in NM_PER_UNIT or unit in PX_UNITS or m.group("u1") is not None:
            return m.group("base").strip(" _"), unit
    return name, None


def unit_factor(unit: str | None, pixel_size_nm: float | None, *, path, column: str):
    """nm per stored unit; asks for ``pixel_size_nm`` when the unit is camera pixels."""
    if unit is None:
        return 1.0
    u = unit.strip().lower()
    if u in NM_PER_UNIT:
        return NM_PER_UNIT[u]
    if u in PX_UNITS:
        if pixel_size_nm is None:
            raise FormatError(
                f"{path_name(path)}: column {column!r} is in camera pixels but the file gives "
                "no pixel size; pass pixel_size_nm (the camera pixel size in nm)"
            )
        return float(pixel_size_nm)
    raise FormatError(
        f"{path_name(path)}: column {column!r} has unit {unit!r}; expected nm, um or px"
    )


def path_name(path) -> str:
    return str(path) if path is not None else "<input>"


def check_pixel_size(pixel_size_nm, path) -> float | None:
    if pixel_size_nm is None:
        return None
    try:
        value = float(pixel_size_nm)
    except (TypeError, ValueError):
        raise FormatError(
            f"{path_name(path)}: pixel_size_nm must be a positive number, found {pixel_size_nm!r}"
        ) from None
    if not np.isfinite(value) or value <= 0:
        raise FormatError(
            f"{path_name(path)}: pixel_size_nm must be a positive number, found {pixel_size_nm!r}"
        )
    return check_pixel_size_range(path_name(path), value, "the pixel_size_nm argument")


def _as_float(values, dtype) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "OSU":
        arr = pd.to_numeric(pd.Series(arr.ravel()), errors="coerce").to_numpy()
    return np.asarray(arr, dtype=dtype).ravel()


def build_localisations(
    columns: dict,
    *,
    path,
    fmt: str,
    original_columns: dict | None = None,
    pixel_size_nm: float | None = None,
    pixel_size_source: str | None = None,
    extra: dict | None = None,
) -> Localisations:
    """Canonical-name -> 1-D array dict (already in nm) -> :class:`Localisations`.

    Rows with a non-finite x, y, z or frame are dropped and counted in
    ``metadata["n_dropped_nonfinite"]``. Channel names (strings) become integer codes.
    """
    if "x_nm" not in columns or "y_nm" not in columns:
        raise FormatError(f"{path_name(path)}: no x/y coordinates found")
    if pixel_size_nm is not None:  # also the file's own (Picasso Pixelsize, DECODE px_size)
        for value in np.atleast_1d(np.asarray(pixel_size_nm, dtype=np.float64)):
            check_pixel_size_range(path_name(path), float(value), pixel_size_source or "the file")
    data = {}
    n = None
    meta_extra = dict(extra or {})
    for name in CANONICAL_COLUMNS:
        if name not in columns or columns[name] is None:
            continue
        values = columns[name]
        if name == "channel":
            arr = np.asarray(values).ravel()
            if arr.dtype.kind in "OSU":
                strings = pd.Series(arr).astype(str).str.strip()
                numeric = pd.to_numeric(strings, errors="coerce")
                if numeric.notna().all():
                    arr = numeric.to_numpy(dtype=np.float64)
                else:
                    codes, names = pd.factorize(strings, sort=True)
                    meta_extra["channel_names"] = [str(v) for v in names]
                    arr = codes.astype(np.float64)
            else:
                arr = arr.astype(np.float64)
        elif name in ("x_nm", "y_nm", "z_nm", "frame"):
            arr = _as_float(values, np.float64)
        else:
            arr = _as_float(values, np.float32)
        if n is None:
            n = arr.size
        elif arr.size != n:
            raise FormatError(f"{path_name(path)}: column {name} has {arr.size} rows, expected {n}")
        data[name] = arr
    keep = np.ones(n, dtype=bool)
    for name in ("x_nm", "y_nm", "z_nm", "frame"):
        if name in data:
            keep &= np.isfinite(data[name])
    n_dropped = int(n - keep.sum())
    out = {}
    for name, arr in data.items():
        if n_dropped:
            arr = arr[keep]
        if name == "frame":
            arr = arr.astype(np.int64)
        elif name == "channel":
            arr = np.where(np.isfinite(arr), arr, -1).astype(np.int32)
        out[name] = arr
    table = pd.DataFrame(out, copy=False)
    metadata = {
        "format": fmt,
        "file": Path(path).name if path is not None else None,
        "original_columns": dict(original_columns or {}),
        "pixel_size_nm": pixel_size_nm,
        "pixel_size_source": pixel_size_source,
        "n_rows_read": int(n),
        "n_dropped_nonfinite": n_dropped,
        "units": "nm",
        **meta_extra,
    }
    if n == 0 or len(table) == 0:
        metadata["message"] = f"{path_name(path)}: the file holds no localisations"
    return Localisations(table=table, metadata=metadata, path=Path(path) if path else None)
