"""The ``.smlm`` zip format: ``manifest.json`` plus little-endian binary tables.

Manifest layout (SMLM file format 0.2, as written by locan, ThunderSTORM's SMLM plugin and the
SMLM web app): ``formats`` maps a format name to ``headers`` / ``dtype`` / ``shape`` / ``units``
(``columns`` is their count); each ``files`` entry names its member, ``format``, ``rows``
(a JSON number or, from protobuf writers such as locan, a string) and ``offset``, a mapping
column -> value added to that column (the spec's way of storing signed data in unsigned types;
locan writes 0 for every column). A plain number as ``offset`` is read as a byte offset into
the member (older files of this reader's tests).
"""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np

from .._table import build_localisations, check_pixel_size, parse_unit, path_name, unit_factor
from ..errors import FormatError
from ..limits import MAX_TABLE_COMPRESSION_RATIO, check_rows, check_stored

_NAMES = {
    "x_nm": ("x", "position_x", "x_nm", "xnm", "xpos"),
    "y_nm": ("y", "position_y", "y_nm", "ynm", "ypos"),
    "z_nm": ("z", "position_z", "z_nm", "znm", "zpos"),
    "frame": ("frame", "frame_ix", "t"),
    "sigma_nm": (
        "sigma_nm",
        "precision",
        "uncertainty_xy",
        "uncertainty",
        "uncertainty_x",
        "x_precision",
        "locprec",
    ),
    "photons": ("photons", "intensity", "phot"),
    "background": ("background", "local_background", "bg"),
    "channel": ("channel",),
}
_DTYPES = {
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float",
    "double",
    "int",
    "uint",
}


def read_manifest(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        with zf.open("manifest.json") as fh:
            return json.loads(fh.read(1 << 20).decode("utf-8"))


def _table_entry(manifest: dict, path) -> tuple[dict, dict]:
    """(file entry, format dict) of the first table in the manifest."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list):
        raise FormatError(f"{path_name(path)}: .smlm manifest has no 'files' list")
    formats = manifest.get("formats") if isinstance(manifest.get("formats"), dict) else {}
    for entry in files:
        if not isinstance(entry, dict) or entry.get("type", "table") != "table":
            continue
        fmt = entry.get("format")
        if isinstance(fmt, str) and fmt in formats:
            fmt = formats[fmt]
        if not isinstance(fmt, dict):
            fmt = entry
        return entry, fmt
    raise FormatError(f"{path_name(path)}: .smlm manifest lists no table")


def _int_field(value, what: str, path) -> int:
    """An integer manifest field that may be a JSON number or a numeric string (protobuf)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number != int(number) or number < 0:
        raise FormatError(
            f"{path_name(path)}: .smlm manifest field {what!r}: expected a non-negative integer, "
            f"found {value!r}"
        )
    return int(number)


def _offsets(entry: dict, fmt: dict, headers: list[str], path) -> tuple[int, dict[int, float]]:
    """(byte offset into the member, {column index: value offset}) from the manifest."""
    raw = entry.get("offset", fmt.get("offset", 0))
    if raw is None or raw == "":
        return 0, {}
    if not isinstance(raw, dict):
        return _int_field(raw, "offset", path), {}
    values = {}
    for column, value in raw.items():
        name = str(column).strip().lower()
        if name not in headers:
            raise FormatError(
                f"{path_name(path)}: .smlm 'offset' names column {column!r}, which is not in "
                f"the headers {headers}"
            )
        try:
            values[headers.index(name)] = float(value)
        except (TypeError, ValueError) as exc:
            raise FormatError(
                f"{path_name(path)}: .smlm 'offset' of column {column!r}: expected a number, "
                f"found {value!r}"
            ) from exc
    return 0, values


def _record_dtype(dtypes: list[str], shapes, path) -> np.dtype:
    """The row record; a column of shape n (or [a, b]) holds that many values per row."""
    if not isinstance(shapes, list) or len(shapes) != len(dtypes):
        shapes = [1] * len(dtypes)
    fields = []
    for i, (name, shape) in enumerate(zip(dtypes, shapes)):
        base = "<" + np.dtype(name).str[1:]
        dims = shape if isinstance(shape, list) else [shape]
        dims = tuple(_int_field(d, "shape", path) for d in dims)
        fields.append((f"c{i}", base) if dims in ((), (1,)) else (f"c{i}", base, dims))
    return np.dtype(fields)


def _read_member(zf, member, offset, record, rows, path, max_rows):
    """Bytes of the table (offset + rows records), checking the sizes the zip declares first:
    never inflates more than the table needs, refuses zip bombs and truncated members."""
    info = zf.getinfo(member)
    what = f".smlm table {member!r}"
    check_stored(
        path_name(path),
        what,
        info.file_size,
        info.compress_size,
        compressed=info.compress_type != zipfile.ZIP_STORED,
        max_ratio=MAX_TABLE_COMPRESSION_RATIO,
        min_bytes=64 << 20,
    )
    if not 0 <= offset <= info.file_size:
        raise FormatError(
            f"{path_name(path)}: {what}: offset {offset} is outside the {info.file_size}-byte table"
        )
    available = (info.file_size - offset) // record.itemsize
    if rows < 0:
        rows = available
    check_rows(path_name(path), what, rows, max_rows)
    if rows > available:
        raise FormatError(
            f"{path_name(path)}: {what} is truncated: manifest says {rows} rows "
            f"of {record.itemsize} bytes, found {available}"
        )
    with zf.open(member) as fh:
        raw = fh.read(offset + rows * record.itemsize)
    if len(raw) < offset + rows * record.itemsize:
        raise FormatError(f"{path_name(path)}: {what} is shorter than its zip entry declares")
    return raw, rows


def read_smlm(path, pixel_size_nm=None, max_localisations=None):
    given = check_pixel_size(pixel_size_nm, path)
    manifest = read_manifest(path)
    entry, fmt = _table_entry(manifest, path)
    mode = str(fmt.get("mode", "binary")).strip().lower()
    if mode != "binary":
        raise FormatError(
            f"{path_name(path)}: .smlm table format mode {mode!r} is not supported; expected "
            "'binary' (text tables belong in a .zip, export them as CSV)"
        )
    headers = [str(h).strip().lower() for h in (fmt.get("headers") or entry.get("headers") or [])]
    dtypes = [str(d).strip().lower() for d in (fmt.get("dtype") or entry.get("dtype") or [])]
    units = list(fmt.get("units") or entry.get("units") or [None] * len(headers))
    if not headers or len(headers) != len(dtypes) or any(d not in _DTYPES for d in dtypes):
        raise FormatError(
            f"{path_name(path)}: .smlm manifest needs matching 'headers' and numeric 'dtype' "
            f"lists; found headers {headers} and dtype {dtypes}"
        )
    n_columns = fmt.get("columns")
    if isinstance(n_columns, (int, str)) and _int_field(n_columns, "columns", path) != len(headers):
        raise FormatError(
            f"{path_name(path)}: .smlm manifest says 'columns': {n_columns} but lists "
            f"{len(headers)} headers"
        )
    if len(units) != len(headers):
        units = [None] * len(headers)
    dtypes = [
        {"float": "float32", "double": "float64", "int": "int32", "uint": "uint32"}.get(d, d)
        for d in dtypes
    ]
    record = _record_dtype(dtypes, fmt.get("shape"), path)
    rows = entry.get("rows", fmt.get("rows"))
    # rows -1 (or absent): as many as the table holds
    rows = -1 if rows is None or str(rows).strip() == "-1" else _int_field(rows, "rows", path)
    offset, value_offsets = _offsets(entry, fmt, headers, path)
    member = entry.get("name") or entry.get("data") or entry.get("file")
    with zipfile.ZipFile(path) as zf:
        if member not in zf.namelist():
            raise FormatError(
                f"{path_name(path)}: .smlm table {member!r} not in the archive; found "
                f"{', '.join(zf.namelist())}"
            )
        raw, rows = _read_member(zf, member, offset, record, rows, path, max_localisations)
    table = np.frombuffer(raw, dtype=record, count=rows, offset=offset)
    by_name = {}
    for i, h in enumerate(headers):
        by_name.setdefault(h, i)
        by_name.setdefault(parse_unit(h)[0], i)
    columns, original, px_used = {}, {}, None
    for canonical, aliases in _NAMES.items():
        idx = next((by_name[a] for a in aliases if a in by_name), None)
        if idx is None:
            continue
        values = table[f"c{idx}"].astype(np.float64)
        if values.ndim != 1:
            raise FormatError(
                f"{path_name(path)}: .smlm column {headers[idx]!r} holds {values.shape[1:]} "
                "values per localisation; expected one"
            )
        values = values + value_offsets.get(idx, 0.0)
        if canonical in ("x_nm", "y_nm", "z_nm", "sigma_nm"):
            unit = units[idx] or parse_unit(headers[idx])[1] or "nm"
            factor = unit_factor(str(unit), given, path=path, column=headers[idx])
            if str(unit).lower() in ("px", "pixel", "pixels"):
                px_used = given
            values = values * factor
        columns[canonical], original[canonical] = values, headers[idx]
    for axis in ("x_nm", "y_nm"):
        if axis not in columns:
            raise FormatError(
                f"{path_name(path)}: no {axis[0]} column in the .smlm table: found headers "
                f"{', '.join(headers)}"
            )
    return build_localisations(
        columns,
        path=path,
        fmt="smlm",
        original_columns=original,
        pixel_size_nm=px_used,
        pixel_size_source="argument" if px_used else None,
    )
