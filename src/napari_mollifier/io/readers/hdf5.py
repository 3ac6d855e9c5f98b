"""HDF5-based localisation files: Picasso ``*_locs.hdf5``, SMAP ``*_sml.mat`` (MATLAB v7.3)
and DECODE ``.h5``. Only the needed datasets are read; large sibling structures are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._table import build_localisations, check_pixel_size, path_name
from ..errors import FormatError
from ..limits import check_rows, check_stored

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path) -> bool:
    """HDF5 signature at offset 0 or at a power-of-two user-block offset (MATLAB uses 512)."""
    try:
        with open(path, "rb") as fh:
            for offset in (0, 512, 1024, 2048, 4096):
                fh.seek(offset)
                if fh.read(8) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def detect_hdf5(path) -> str | None:
    """'picasso', 'smap', 'decode' or None from the top-level keys (no data is read)."""
    import h5py

    if not is_hdf5(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
            if "locs" in keys and isinstance(f["locs"], h5py.Dataset):
                return "picasso"
            if "saveloc" in keys:
                return "smap"
            if "data" in keys and isinstance(f["data"], h5py.Group) and "xyz" in f["data"]:
                return "decode"
    except Exception:  # sniffing never raises: h5py raises many types on corrupt files
        return None
    return None


def read_dataset(ds, path, max_rows=None, max_bytes=None):
    """Contents of ``ds`` after checking what it declares, before anything is read.

    Rows (the longest axis of a (1, N) MATLAB column, else the first) must be at most
    ``max_rows`` (default ``limits.MAX_LOCALISATIONS``) and the declared bytes at most
    ``max_bytes`` when given; an uncompressed dataset must store all its bytes, a compressed
    one at least 1/``MAX_COMPRESSION_RATIO`` of them (a declared, never-written dataset
    stores none).
    """
    name, what = path_name(path), f"HDF5 dataset {ds.name!r}"
    shape = tuple(int(n) for n in (ds.shape or ()))
    if len(shape) == 2 and min(shape) == 1:
        rows = max(shape)
    else:
        rows = shape[0] if shape else 1
    check_rows(name, what, rows, max_rows)
    declared = int(np.prod(shape, dtype=np.float64)) * ds.dtype.itemsize
    if max_bytes is not None and declared > max_bytes:
        raise FormatError(f"{name}: {what} declares {declared} bytes; at most {max_bytes} read")
    if declared and ds.dtype.kind != "O":  # variable-length data lives on the global heap
        compressed = ds.id.get_create_plist().get_nfilters() > 0
        check_stored(name, what, declared, int(ds.id.get_storage_size()), compressed)
    return ds[()]


def read_hdf5(path, pixel_size_nm=None, max_localisations=None):
    import h5py

    fmt = detect_hdf5(path)
    if fmt is None:
        if path_name(path).lower().endswith(".mat") and not is_hdf5(path):
            raise FormatError(
                f"{path_name(path)}: expected a MATLAB v7.3 (HDF5) SMAP _sml.mat file; found a "
                "pre-v7.3 or non-MATLAB file; save it in SMAP with the -v7.3 option"
            )
        raise FormatError(
            f"{path_name(path)}: expected an HDF5 localisation file with '/locs' (Picasso), "
            f"'/saveloc' (SMAP) or '/data/xyz' (DECODE); found {_keys(path)}"
        )
    with h5py.File(path, "r") as f:
        if fmt == "picasso":
            return _read_picasso(f, path, pixel_size_nm, max_localisations)
        if fmt == "smap":
            return _read_smap(f, path, max_localisations)
        return _read_decode(f, path, pixel_size_nm, max_localisations)


def _keys(path) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "keys " + (", ".join(sorted(f.keys())) or "none")
    except Exception:
        return "no readable HDF5 content"


# --- Picasso ----------------------------------------------------------------------------
def _picasso_pixel_size(f, path) -> tuple[float | None, str | None]:
    """``Pixelsize`` (nm) from the same-stem .yaml sidecar, else the ``/metadata`` JSON."""
    import yaml

    yaml_path = Path(path).with_suffix(".yaml")
    if yaml_path.is_file():
        try:
            with open(yaml_path, encoding="utf-8", errors="replace") as fh:
                docs = [d for d in yaml.safe_load_all(fh) if isinstance(d, dict)]
        except yaml.YAMLError as exc:
            raise FormatError(
                f"{yaml_path}: Picasso YAML sidecar is not valid YAML ({exc})"
            ) from None
        for doc in docs:
            for key in ("Pixelsize", "pixelsize", "Pixel Size", "pixel_size"):
                if key in doc:
                    return float(doc[key]), f"yaml:{yaml_path.name}"
    for holder in (f, f.get("locs")):
        if holder is None:
            continue
        raw = None
        if "metadata" in getattr(holder, "keys", lambda: [])():
            raw = read_dataset(holder["metadata"], path, max_bytes=1 << 20)
        elif "metadata" in holder.attrs:
            raw = holder.attrs["metadata"]
        if raw is None:
            continue
        if isinstance(raw, np.ndarray):
            raw = raw.ravel()[0] if raw.size else b""
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        try:
            meta = json.loads(raw)
        except (TypeError, ValueError):
            continue
        docs = meta if isinstance(meta, list) else [meta]
        for doc in docs:
            if isinstance(doc, dict) and "Pixelsize" in doc:
                return float(doc["Pixelsize"]), "hdf5:/metadata"
    return None, None


def _read_picasso(f, path, pixel_size_nm, max_rows=None):
    locs = read_dataset(f["locs"], path, max_rows)
    names = locs.dtype.names or ()
    for col in ("x", "y"):
        if col not in names:
            raise FormatError(
                f"{path_name(path)}: Picasso /locs has no {col} field: found fields "
                f"{', '.join(names) or 'none'}"
            )
    given = check_pixel_size(pixel_size_nm, path)
    px, source = _picasso_pixel_size(f, path)
    if given is not None:
        px, source = given, "argument"
    if px is None or not np.isfinite(px) or px <= 0:
        raise FormatError(
            f"{path_name(path)}: Picasso x/y are in camera pixels but no pixel size was found: "
            f"expected 'Pixelsize' in the sidecar {Path(path).with_suffix('.yaml').name} or in "
            "the HDF5 '/metadata' JSON; pass pixel_size_nm"
        )
    columns = {"x_nm": locs["x"] * px, "y_nm": locs["y"] * px}
    original = {"x_nm": "x", "y_nm": "y"}
    if "z" in names:  # Picasso stores z in nm already
        columns["z_nm"], original["z_nm"] = locs["z"], "z"
    if "frame" in names:
        columns["frame"], original["frame"] = locs["frame"], "frame"
    if "lpx" in names and "lpy" in names:
        columns["sigma_nm"] = 0.5 * (locs["lpx"] + locs["lpy"]) * px
        original["sigma_nm"] = "mean(lpx, lpy)"
    for canonical, name in (("photons", "photons"), ("background", "bg")):
        if name in names:
            columns[canonical], original[canonical] = locs[name], name
    return build_localisations(
        columns,
        path=path,
        fmt="picasso",
        original_columns=original,
        pixel_size_nm=px,
        pixel_size_source=source,
        extra={"frame_base": 0},
    )


# --- SMAP ---------------------------------------------------------------------------------
_SMAP = {
    "x_nm": "xnm",
    "y_nm": "ynm",
    "z_nm": "znm",
    "frame": "frame",
    "sigma_nm": "locprecnm",
    "photons": "phot",
    "background": "bg",
    "channel": "channel",
}


def _read_smap(f, path, max_rows=None):
    group = f.get("saveloc/loc")
    if group is None:
        raise FormatError(f"{path_name(path)}: SMAP file has no 'saveloc/loc' group")
    present = set(group.keys())
    for col in ("xnm", "ynm"):
        if col not in present:
            raise FormatError(
                f"{path_name(path)}: SMAP saveloc/loc has no {col}: found "
                f"{', '.join(sorted(present)) or 'nothing'}"
            )
    columns, original = {}, {}
    for canonical, name in _SMAP.items():
        if name in present:
            ds = group[name]
            if ds.shape is None or not hasattr(ds, "shape"):
                continue
            # stored (1, N): flatten
            columns[canonical] = np.asarray(read_dataset(ds, path, max_rows)).ravel()
            original[canonical] = f"saveloc/loc/{name}"
    return build_localisations(columns, path=path, fmt="smap", original_columns=original)


# --- DECODE -------------------------------------------------------------------------------
def _dataset(group, name, path, max_rows=None):
    """Dataset contents or None where missing, null (h5py.Empty) or zero-sized."""
    import h5py

    if name not in group:
        return None
    ds = group[name]
    if not isinstance(ds, h5py.Dataset) or ds.shape is None:
        return None
    return np.asarray(read_dataset(ds, path, max_rows))


def _attr_str(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip().lower()


def _read_decode(f, path, pixel_size_nm, max_rows=None):
    data = f["data"]
    meta = f["meta"].attrs if "meta" in f else {}
    xyz = _dataset(data, "xyz", path, max_rows)
    if xyz is None or xyz.size == 0:
        xyz = np.zeros((0, 3))
    if xyz.ndim != 2 or xyz.shape[1] < 2:
        raise FormatError(
            f"{path_name(path)}: DECODE data/xyz must be (N, 3); found shape {xyz.shape}"
        )
    n = xyz.shape[0]
    unit = _attr_str(meta["xy_unit"]) if "xy_unit" in meta else None
    if unit is None:
        raise FormatError(f"{path_name(path)}: DECODE meta has no 'xy_unit' ('px' or 'nm')")
    given = check_pixel_size(pixel_size_nm, path)
    source = None
    if unit == "nm":
        sx = sy = 1.0
        px_used = None
    elif unit == "px":
        px_size = None
        if "px_size" in meta:
            px_size = np.asarray(meta["px_size"], dtype=np.float64).ravel()
        if given is not None:
            px_size, source = np.array([given, given]), "argument"
        elif px_size is not None and px_size.size >= 1:
            source = "hdf5:meta.px_size"
            if px_size.size == 1:
                px_size = np.array([px_size[0], px_size[0]])
        if px_size is None or px_size.size < 2 or not np.all(np.isfinite(px_size[:2])):
            raise FormatError(
                f"{path_name(path)}: DECODE xy_unit is 'px' but meta has no px_size; "
                "pass pixel_size_nm"
            )
        sx, sy = float(px_size[0]), float(px_size[1])  # anisotropic: [x, y] nm
        px_used = [sx, sy] if sx != sy else sx
    else:
        raise FormatError(f"{path_name(path)}: DECODE xy_unit must be 'px' or 'nm'; found {unit!r}")
    columns = {"x_nm": xyz[:, 0] * sx, "y_nm": xyz[:, 1] * sy}
    original = {"x_nm": "data/xyz[:,0]", "y_nm": "data/xyz[:,1]"}
    if xyz.shape[1] >= 3:
        columns["z_nm"], original["z_nm"] = xyz[:, 2], "data/xyz[:,2]"
    sig = _dataset(data, "xyz_sig", path, max_rows)
    if sig is not None and sig.ndim == 2 and sig.shape[0] == n and sig.shape[1] >= 2:
        columns["sigma_nm"] = 0.5 * (sig[:, 0] * sx + sig[:, 1] * sy)
        original["sigma_nm"] = "mean(data/xyz_sig[:,0:2])"
    for canonical, name in (("frame", "frame_ix"), ("photons", "phot"), ("background", "bg")):
        values = _dataset(data, name, path, max_rows)
        if values is not None and values.size == n:
            columns[canonical], original[canonical] = values.ravel(), f"data/{name}"
    return build_localisations(
        columns,
        path=path,
        fmt="decode",
        original_columns=original,
        pixel_size_nm=px_used,
        pixel_size_source=source,
        extra={"xy_unit": unit},
    )
