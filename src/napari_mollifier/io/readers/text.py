"""Delimited-text localisation tables: ThunderSTORM, Zeiss Elyra, Nikon N-STORM, ONI,
rapidSTORM and generic CSV/TSV.

The header is parsed by hand from the first bytes (robust to quoting variants); the numbers are
read by pandas' C parser with ``usecols`` so only the needed columns are ever materialised.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from .._table import (
    build_localisations,
    check_pixel_size,
    norm_header,
    parse_unit,
    path_name,
    split_header,
    unit_factor,
)
from ..errors import FormatError

HEAD_BYTES = 65536

#: Per format: canonical column -> accepted (normalised) names in order of preference.
#: A name matches either the full normalised header or its base without the unit.
_X = ["x", "xnm", "xpos", "x_pos", "pos_x", "position_x", "position x", "x position", "x0"]
_Y = ["y", "ynm", "ypos", "y_pos", "pos_y", "position_y", "position y", "y position", "y0"]
_Z = ["z", "znm", "zpos", "z_pos", "pos_z", "position_z", "position z", "z position", "z0"]
ALIASES = {
    "thunderstorm": {
        "x_nm": ["x"],
        "y_nm": ["y"],
        "z_nm": ["z"],
        "frame": ["frame"],
        "sigma_nm": ["uncertainty_xy", "uncertainty"],
        "photons": ["intensity"],
        "background": ["offset"],
    },
    "elyra": {
        "x_nm": ["position x"],
        "y_nm": ["position y"],
        "z_nm": ["position z"],
        "frame": ["first frame"],
        "sigma_nm": ["precision"],
        "photons": ["number photons"],
        "channel": ["channel"],
    },
    "nstorm": {
        "x_nm": ["xwc", "xc", "x"],
        "y_nm": ["ywc", "yc", "y"],
        "z_nm": ["zc", "z"],
        "frame": ["frame"],
        "sigma_nm": ["lateral localization accuracy"],
        "photons": ["photons"],
        "background": ["bg"],
        "channel": ["channel name", "name"],
    },
    "oni": {
        "x_nm": ["x"],
        "y_nm": ["y"],
        "z_nm": ["z"],
        "frame": ["frame"],
        "photons": ["photons"],
        "background": ["background"],
        "channel": ["channel"],
    },
    "generic": {
        "x_nm": _X,
        "y_nm": _Y,
        "z_nm": _Z,
        "frame": ["frame", "frames", "frame_ix", "first frame", "t", "time_point"],
        "sigma_nm": [
            "sigma_nm",
            "precision",
            "uncertainty_xy",
            "uncertainty",
            "locprec",
            "loc_precision",
            "localization_precision",
            "localisation_precision",
        ],
        "photons": ["photons", "phot", "intensity", "number photons", "n_photons"],
        "background": ["background", "bg", "offset"],
        "channel": ["channel", "channel name", "probe"],
    },
}
#: Units of columns that carry none in their header, per format (None = must be stated).
DEFAULT_UNIT = {"thunderstorm": None, "elyra": "nm", "nstorm": "nm", "oni": "nm", "generic": None}
#: Header spellings like "xnm" that carry their unit glued to the name.
_GLUED = {
    "xnm": ("x", "nm"),
    "ynm": ("y", "nm"),
    "znm": ("z", "nm"),
    "xpx": ("x", "px"),
    "ypx": ("y", "px"),
}
_LENGTH_COLUMNS = ("x_nm", "y_nm", "z_nm", "sigma_nm")


def read_head(path, n_bytes: int = HEAD_BYTES) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n_bytes)


def _first_line(head: bytes) -> tuple[str, int] | None:
    """First non-empty line (latin-1) and its index, or None for binary / empty input."""
    text = head.split(b"\x00", 1)[0].decode("latin-1")
    lines = text.splitlines()
    for i, line in enumerate(lines[:50]):
        if line.strip():
            if sum(ch.isprintable() or ch in "\t" for ch in line) < 0.95 * len(line):
                return None
            return line, i
    return None


def _delimiter(line: str) -> str | None:
    counts = {d: line.count(d) for d in ("\t", ",", ";")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


def detect_text(head: bytes) -> dict | None:
    """Format, delimiter, header line index and names from the first bytes; None if unknown."""
    first = _first_line(head)
    if first is None:
        return None
    line, index = first
    if line.lstrip().startswith("#") and "<localizations" in line:
        return {"format": "rapidstorm", "delimiter": None, "header_index": index, "line": line}
    delim = _delimiter(line)
    names = split_header(line, delim)
    name_set = set(names)
    info = {"delimiter": delim, "header_index": index, "names": names, "line": line}
    if {"position x [nm]", "position y [nm]"} <= name_set or (
        "first frame" in name_set and any(n.startswith("position x") for n in names)
    ):
        return {**info, "format": "elyra"}
    if (
        "frame" in name_set
        and {"x", "y"} <= name_set
        and ({"xc", "yc"} <= name_set or {"xwc", "ywc"} <= name_set)
    ):
        return {**info, "format": "nstorm"}
    if (
        delim == ","
        and "frame" in name_set
        and ("id" in name_set or '"' in line)
        and any(re.fullmatch(r"x \[[^\]]+\]", n) for n in names)
    ):
        return {**info, "format": "thunderstorm"}
    if "x (nm)" in name_set and "y (nm)" in name_set and "frame" in name_set:
        return {**info, "format": "oni"}
    if len(names) >= 2 and any(_base_unit(n)[0] in _X for n in names):
        return {**info, "format": "generic"}
    return None


def _base_unit(name: str) -> tuple[str, str | None]:
    if name in _GLUED:
        return _GLUED[name]
    return parse_unit(name)


def _resolve(names: list[str], fmt: str, path) -> dict:
    """canonical -> (column index, header name, unit or None) for the columns present."""
    by_full, by_base = {}, {}
    for i, name in enumerate(names):
        by_full.setdefault(name, (i, name, None))
        base, unit = _base_unit(name)
        by_base.setdefault(base, (i, name, unit))
    found = {}
    for canonical, aliases in ALIASES[fmt].items():
        for alias in aliases:
            hit = by_base.get(alias) or by_full.get(alias)
            if hit is not None:
                found[canonical] = hit
                break
    for axis in ("x_nm", "y_nm"):
        if axis not in found:
            shown = ", ".join(n for n in names if n) or "none"
            raise FormatError(
                f"{path_name(path)}: no {axis[0]} column ({fmt} table): found columns {shown}"
            )
    return found


def _factors(found: dict, fmt: str, pixel_size_nm, path) -> dict:
    """nm-per-unit factor for each length column (x's unit for a unitless sigma)."""
    factors = {}
    default = DEFAULT_UNIT[fmt]
    for canonical in _LENGTH_COLUMNS:
        if canonical not in found:
            continue
        _, name, unit = found[canonical]
        if unit is None and canonical == "sigma_nm" and fmt == "generic":
            unit = found["x_nm"][2]
        if unit is None:
            unit = default
        if unit is None:
            raise FormatError(
                f"{path_name(path)}: column {name!r} has no unit; expected a unit in the "
                f"header such as '{canonical[0]}_nm', '{canonical[0]} [nm]' or "
                f"'{canonical[0]}_px'"
            )
        factors[canonical] = unit_factor(unit, pixel_size_nm, path=path, column=name)
    return factors


def _read_table(source, *, delimiter, skiprows, usecols: dict, comment=None, path=None):
    """Read only ``usecols`` (index -> 'float'|'str') with pandas' C parser."""
    indices = sorted(usecols)
    dtype = {i: (np.float64 if usecols[i] == "float" else str) for i in indices}
    try:
        frame = pd.read_csv(
            source,
            sep=r"\s+" if delimiter is None else delimiter,
            header=None,
            skiprows=skiprows,
            usecols=indices,
            dtype=dtype,
            encoding="latin-1",
            comment=comment,
            engine="c",
            skip_blank_lines=True,
            na_values=["", "nan", "NaN", "NA", "-nan", "inf?"],
            low_memory=True,  # the C parser then tokenises in chunks: bounded peak
        )
    except pd.errors.EmptyDataError:
        return {i: np.empty(0, dtype=np.float64) for i in indices}
    except (ValueError, pd.errors.ParserError) as exc:
        raise FormatError(
            f"{path_name(path)}: could not parse the table body as numbers in the expected "
            f"columns: {str(exc).splitlines()[0][:200]}"
        ) from None
    return {i: frame[i].to_numpy() for i in indices}


def read_delimited(path, info: dict, pixel_size_nm=None):
    """Read a delimited table whose header was recognised by :func:`detect_text`."""
    fmt = info["format"]
    if fmt == "rapidstorm":
        return read_rapidstorm(path, info, pixel_size_nm)
    pixel_size_nm = check_pixel_size(pixel_size_nm, path)
    names = info["names"]
    found = _resolve(names, fmt, path)
    factors = _factors(found, fmt, pixel_size_nm, path)
    usecols = {idx: ("str" if c == "channel" else "float") for c, (idx, _, _) in found.items()}
    source = path
    if fmt == "elyra":
        source = _elyra_body(path)
    raw = _read_table(
        source,
        delimiter=info["delimiter"],
        skiprows=info["header_index"] + 1,
        usecols=usecols,
        path=path,
    )
    columns = {}
    for canonical, (idx, _, _) in found.items():
        values = raw[idx]
        if canonical in factors and factors[canonical] != 1.0:
            values = values * factors[canonical]
        columns[canonical] = values
    px_used = (
        pixel_size_nm
        if any((found[c][2] or "").lower() in ("px", "pix", "pixel", "pixels") for c in found)
        else None
    )
    return build_localisations(
        columns,
        path=path,
        fmt=fmt,
        original_columns={c: name for c, (_, name, _) in found.items()},
        pixel_size_nm=px_used,
        pixel_size_source="argument" if px_used else None,
    )


def _elyra_body(path) -> io.BytesIO:
    """Zeiss Elyra: the table ends at the first NUL byte; a metadata footer follows."""
    chunks = []
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 22)
            if not block:
                break
            cut = block.find(b"\x00")
            if cut >= 0:
                chunks.append(block[:cut])
                break
            chunks.append(block)
    return io.BytesIO(b"".join(chunks))


_RAPID_CANONICAL = {
    "Position-0-0": "x_nm",
    "Position-1-0": "y_nm",
    "Position-2-0": "z_nm",
    "ImageNumber-0-0": "frame",
    "LocalBackground-0-0": "background",
    "PositionUncertainty-0-0": "sigma_nm",
}


def read_rapidstorm(path, info: dict, pixel_size_nm=None):
    """rapidSTORM: line 1 is ``# <localizations ...><field identifier=... unit=.../>...``."""
    pixel_size_nm = check_pixel_size(pixel_size_nm, path)
    line = info["line"].lstrip()[1:].strip()
    try:
        root = ET.fromstring(line)
    except ET.ParseError as exc:
        raise FormatError(
            f"{path_name(path)}: rapidSTORM XML header could not be parsed ({exc})"
        ) from None
    if root.find("localizations") is not None:
        raise FormatError(
            f"{path_name(path)}: rapidSTORM track file (nested <localizations>): rows vary in "
            "length; export plain localisations (no track grouping) from rapidSTORM"
        )
    fields = [f for f in root if f.tag == "field"]
    identifiers = [f.get("identifier", "") for f in fields]
    found, factors = {}, {}
    for idx, field in enumerate(fields):
        canonical = _RAPID_CANONICAL.get(field.get("identifier", ""))
        if canonical is None or canonical in found:
            continue
        found[canonical] = (idx, field.get("identifier"), field.get("unit"))
        if canonical in _LENGTH_COLUMNS:
            unit = (field.get("unit") or "").strip().lower()
            if not unit:
                raise FormatError(
                    f"{path_name(path)}: rapidSTORM field {field.get('identifier')} has no unit"
                )
            factors[canonical] = unit_factor(
                unit, pixel_size_nm, path=path, column=field.get("identifier")
            )
        if canonical == "frame" and "frame" not in (field.get("unit") or "frame"):
            raise FormatError(
                f"{path_name(path)}: rapidSTORM frame unit is "
                f"{field.get('unit')!r}; expected 'frame'"
            )
    for axis in ("x_nm", "y_nm"):
        if axis not in found:
            raise FormatError(
                f"{path_name(path)}: no {axis[0]} column (rapidSTORM field "
                f"Position-{0 if axis == 'x_nm' else 1}-0): found fields "
                f"{', '.join(identifiers) or 'none'}"
            )
    raw = _read_table(
        path,
        delimiter=None,
        skiprows=0,
        comment="#",
        usecols={i: "float" for i, _, _ in found.values()},
        path=path,
    )
    columns = {c: raw[i] * factors.get(c, 1.0) for c, (i, _, _) in found.items()}
    px = any((u or "").lower() in ("px", "pixel", "pixels") for _, _, u in found.values())
    return build_localisations(
        columns,
        path=path,
        fmt="rapidstorm",
        original_columns={c: name for c, (_, name, _) in found.items()},
        pixel_size_nm=pixel_size_nm if px else None,
        pixel_size_source="argument" if px else None,
        extra={"fields": identifiers},
    )


def read_text_table(path, pixel_size_nm=None):
    """Detect and read any delimited-text localisation table."""
    info = detect_text(read_head(path))
    if info is None:
        raise FormatError(
            f"{path_name(path)}: not a recognised localisation table; expected a text header "
            "naming x and y columns with units (e.g. 'x [nm]', 'x_nm', 'x (nm)', 'x_px') or a "
            f"known format (ThunderSTORM, Elyra, N-STORM, ONI, rapidSTORM); found "
            f"{_describe_head(path)}"
        )
    return read_delimited(path, info, pixel_size_nm)


def _describe_head(path) -> str:
    first = _first_line(read_head(path, 4096))
    if first is None:
        return "binary or empty content"
    return f"header {first[0][:120]!r}"


__all__ = ["detect_text", "read_text_table", "read_delimited", "norm_header", "Path"]
