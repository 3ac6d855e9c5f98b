"""Cheap format detection and the localisation-reader dispatcher."""

from __future__ import annotations

from pathlib import Path

from .errors import FormatError

SUPPORTED_LOCALISATION_SUFFIXES = (
    ".csv",
    ".tsv",
    ".txt",
    ".hdf5",
    ".h5",
    ".mat",
    ".smlm",
)
SUPPORTED_IMAGE_SUFFIXES = (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".npy")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff_format(path) -> str | None:
    """Name of the format of ``path`` from its first bytes / HDF5 keys / zip manifest.

    Returns one of "thunderstorm", "elyra", "nstorm", "oni", "rapidstorm", "generic",
    "picasso", "smap", "decode", "smlm", "ome-tiff", "tiff", "npy", or None. Never loads the
    whole file and never raises.
    """
    try:
        return _sniff(Path(path))
    except Exception:  # contract: never raises, whatever the bytes are
        return None


def _sniff(path: Path) -> str | None:
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if head[:4] in _TIFF_MAGIC:
        return (
            "ome-tiff"
            if b"<OME" in head or path.name.lower().endswith((".ome.tif", ".ome.tiff"))
            else "tiff"
        )
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if head[:4] == b"PK\x03\x04":
        from .readers.smlm import read_manifest

        manifest = read_manifest(path)
        return "smlm" if isinstance(manifest, dict) and "files" in manifest else None
    from .readers.hdf5 import detect_hdf5, is_hdf5

    if is_hdf5(path):
        return detect_hdf5(path)
    from .readers.text import detect_text

    info = detect_text(head)
    return info["format"] if info else None


def read_localisations(
    path, pixel_size_nm: float | None = None, max_localisations: int | None = None
):
    """Read any supported localisation file into a :class:`Localisations` table in nm.

    Parameters
    ----------
    path : str or Path
    pixel_size_nm : float, optional
        Camera pixel size in nm, used (and required) for files that store camera pixels and
        carry no pixel size themselves (Picasso without sidecar, DECODE px without px_size,
        ``x_px`` columns). When given it overrides the file's own value.
    max_localisations : int, optional
        Binary formats (HDF5, ``.smlm``) declaring more rows are refused before reading;
        default :data:`napari_mollifier.io.limits.MAX_LOCALISATIONS`.

    Raises
    ------
    FormatError
        Unknown, corrupt or truncated files, missing columns, missing pixel size, declared
        sizes over the limits (see :mod:`napari_mollifier.io.limits`). Every failure while
        reading an existing file is a FormatError naming the file (zlib, struct, h5py,
        decoding errors, even a MemoryError).
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: expected a localisation file, found a directory")
    if not path.is_file():  # stat only: opening a FIFO would block
        raise FormatError(f"{path}: expected a regular file, found a FIFO, device or socket")
    try:
        return _dispatch(path, pixel_size_nm, max_localisations)
    except FormatError:
        raise
    except MemoryError as exc:
        raise FormatError(
            f"{path}: not enough memory to read it ({str(exc)[:200] or 'MemoryError'})"
        ) from exc
    except Exception as exc:  # noqa: BLE001
        # Corrupt / truncated / garbage input: libraries (h5py, zipfile, zlib, pandas, struct)
        # raise many types; the reader contract is a single documented exception.
        raise FormatError(
            f"{path}: could not read as a localisation file ({type(exc).__name__}: "
            f"{str(exc)[:200]})"
        ) from exc


def _dispatch(path: Path, pixel_size_nm, max_localisations):
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] == b"PK\x03\x04" or path.suffix.lower() == ".smlm":
        from .readers.smlm import read_smlm

        if head[:4] != b"PK\x03\x04":
            raise FormatError(f"{path}: expected a .smlm zip archive; found no zip signature")
        return read_smlm(path, pixel_size_nm, max_localisations)
    from .readers.hdf5 import is_hdf5, read_hdf5

    if is_hdf5(path) or path.suffix.lower() in (".h5", ".hdf5", ".mat"):
        return read_hdf5(path, pixel_size_nm, max_localisations)
    from .readers.text import read_text_table

    return read_text_table(path, pixel_size_nm)
