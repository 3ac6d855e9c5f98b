"""Small files that declare huge contents are refused before anything is allocated, and any
corruption of a real file (deflate streams, HDF5 internals, TIFF tags) ends in FormatError.

Nothing here allocates the declared sizes: every check is asserted to refuse BEFORE reading
(``tracemalloc`` peak of a few MiB) on files of a few KB that claim gigabytes.
"""

from __future__ import annotations

import io
import json
import tempfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_mollifier.io import FormatError, read_image, read_localisations, sniff_format

SAMPLE_CSV = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "napari_mollifier"
    / "sample_data"
    / "nucleus_localisations.csv"
)
#: Declared rows larger than this machine's memory (the old code asked for tens of GB).
HUGE_ROWS = 5_000_000_000


def _peak_mib(func) -> float:
    tracemalloc.start()
    try:
        func()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def _refused(path, match, reader=read_localisations, **kwargs):
    def run():
        with pytest.raises(FormatError, match=match) as info:
            reader(path, **kwargs)
        assert Path(path).name in str(info.value)

    assert _peak_mib(run) < 16  # refused before allocating the declared size


# --- HDF5 datasets that declare billions of rows ----------------------------------------------
def _declared_only(group, name, shape, dtype, **kwargs):
    """A dataset with a declared shape and no data written (HDF5 allocates storage lazily)."""
    group.create_dataset(name, shape=shape, dtype=dtype, **kwargs)


@pytest.mark.parametrize("kind", ["picasso", "smap", "decode", "picasso-gzip"])
def test_hdf5_declaring_billions_of_rows_is_refused(tmp_path, kind):
    path = tmp_path / ("f.mat" if kind == "smap" else "f.hdf5")
    with h5py.File(path, "w") as f:
        if kind.startswith("picasso"):
            dtype = [("frame", "<u4"), ("x", "<f4"), ("y", "<f4"), ("lpx", "<f4"), ("lpy", "<f4")]
            extra = {"chunks": (1 << 16,), "compression": "gzip"} if kind.endswith("gzip") else {}
            _declared_only(f, "locs", (HUGE_ROWS,), dtype, **extra)
            f["metadata"] = json.dumps({"Pixelsize": 100})
        elif kind == "smap":
            loc = f.create_group("saveloc/loc")
            for name in ("xnm", "ynm"):
                _declared_only(loc, name, (1, HUGE_ROWS), "<f8")
        else:
            _declared_only(f.create_group("data"), "xyz", (HUGE_ROWS, 3), "<f4")
            f.create_group("meta").attrs["xy_unit"] = "nm"
    assert path.stat().st_size < 100_000
    _refused(path, f"declares {HUGE_ROWS} localisations")


def test_hdf5_rows_limit_keyword_and_unwritten_dataset(tmp_path):
    path = tmp_path / "small.h5"
    with h5py.File(path, "w") as f:
        f.create_group("data")["xyz"] = np.ones((1000, 3))
        f.create_group("meta").attrs["xy_unit"] = "nm"
    assert len(read_localisations(path).table) == 1000
    with pytest.raises(FormatError, match="declares 1000 localisations; at most 10"):
        read_localisations(path, max_localisations=10)
    # within the row limit, but declared and never written: stores 0 of 48 MB
    unwritten = tmp_path / "unwritten.h5"
    with h5py.File(unwritten, "w") as f:
        _declared_only(f.create_group("data"), "xyz", (2_000_000, 3), "<f8")
        f.create_group("meta").attrs["xy_unit"] = "nm"
    _refused(unwritten, "never written")


# --- .smlm zip bombs and declared rows --------------------------------------------------------
def _manifest(rows) -> str:
    """A .smlm manifest: one table ``t.bin`` of float32 x, y in nm."""
    table_format = {
        "type": "table",
        "headers": ["x", "y"],
        "dtype": ["float32", "float32"],
        "units": ["nm", "nm"],
    }
    files = [{"name": "t.bin", "type": "table", "format": "t", "rows": rows}]
    return json.dumps({"format_version": "0.2", "formats": {"t": table_format}, "files": files})


def _smlm_bytes(table: bytes, rows, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        zf.writestr("manifest.json", _manifest(rows))
        zf.writestr("t.bin", table)
    return buf.getvalue()


def _bomb(path: Path, n_bytes: int) -> None:
    """A .smlm whose table is ``n_bytes`` of zeros, deflated (about 1000:1), written in
    chunks so the test never holds the inflated table."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", _manifest(-1))
        with zf.open("t.bin", "w", force_zip64=True) as fh:
            chunk = bytes(1 << 20)
            for _ in range(n_bytes >> 20):
                fh.write(chunk)


def test_smlm_zip_bomb_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.smlm"
    _bomb(path, 192 << 20)  # 192 MiB of zeros in about 190 KB
    assert path.stat().st_size < 1 << 20
    assert sniff_format(path) == "smlm"
    _refused(path, "decompression bomb")


def test_smlm_reads_only_the_rows_the_manifest_declares(tmp_path):
    # manifest says 3 rows; the member holds 1 MiB more: only 24 bytes are inflated
    table = np.arange(6, dtype="<f4").tobytes() + bytes(1 << 20)
    path = tmp_path / "three.smlm"
    path.write_bytes(_smlm_bytes(table, 3))
    locs = read_localisations(path)
    assert len(locs.table) == 3
    np.testing.assert_allclose(locs.table["x_nm"], [0, 2, 4])
    with pytest.raises(FormatError, match="declares 3 localisations; at most 2"):
        read_localisations(path, max_localisations=2)
    path.write_bytes(_smlm_bytes(table, HUGE_ROWS))
    _refused(path, f"declares {HUGE_ROWS} localisations")


def test_corrupt_deflate_stream_is_a_format_error(tmp_path):
    table = np.random.default_rng(0).normal(size=2000).astype("<f4").tobytes()
    raw = bytearray(_smlm_bytes(table, 1000))
    info = zipfile.ZipFile(io.BytesIO(bytes(raw))).getinfo("t.bin")
    start = info.header_offset + 30 + len(info.filename)  # local header, no extra field
    for i in range(start + 10, start + 60):
        raw[i] ^= 0x5A
    path = tmp_path / "corrupt.smlm"
    path.write_bytes(bytes(raw))
    with pytest.raises(zlib.error):  # what the standard library raises on this file ...
        zipfile.ZipFile(path).read("t.bin")
    with pytest.raises(FormatError, match="corrupt.smlm"):  # ... is a FormatError here
        read_localisations(path)


# --- images that declare huge or impossible shapes ---------------------------------------------
def test_tiny_tiff_declaring_900_megapixels_is_refused(tmp_path):
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint8), compression="zlib", tile=(32, 32))
    with tifffile.TiffFile(path, mode="r+") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(30000)
        tif.pages[0].tags["ImageLength"].overwrite(30000)
    assert path.stat().st_size < 2000
    _refused(path, r"\(30000, 30000\) \(900 megapixels", reader=read_image, pixel_size_nm=10.0)
    with pytest.raises(FormatError, match="limit is 0.001 megapixels"):
        read_image(path, pixel_size_nm=10.0, max_megapixels=1e-3)


def test_truncated_uncompressed_tiff_and_npy_are_refused_before_reading(tmp_path):
    tif = tmp_path / "cut.tif"
    tifffile.imwrite(tif, shape=(3000, 3000), dtype="uint8")
    with open(tif, "r+b") as fh:
        fh.truncate(5000)
    _refused(tif, "truncated", reader=read_image, pixel_size_nm=10.0)
    npy = tmp_path / "cut.npy"
    np.save(npy, np.zeros((300, 300), np.float32))
    with open(npy, "r+b") as fh:
        fh.truncate(1000)
    _refused(npy, "truncated", reader=read_image, pixel_size_nm=10.0)
    big = tmp_path / "big.npy"  # header only, declaring 3.6 GB
    with open(big, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (30000, 30000)}
        )
    _refused(big, "900 megapixels", reader=read_image, pixel_size_nm=10.0)


def test_stack_is_refused_from_its_declared_shape(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((12, 8, 8), np.float32))
    with pytest.raises(FormatError, match=r"found shape \(12, 8, 8\)"):
        read_image(path, pixel_size_nm=10.0)


# --- fuzz: mutated copies of real small files -----------------------------------------------------
def _valid_files(folder: Path) -> dict[str, bytes]:
    files = {}
    with open(SAMPLE_CSV, "rb") as fh:  # first 40 rows of the sample ThunderSTORM table
        files["ts.csv"] = b"".join(fh.readline() for _ in range(41))
    rng = np.random.default_rng(5)
    table = np.zeros(50, [("x", "<f4"), ("y", "<f4")])
    table["x"], table["y"] = rng.uniform(0, 5000, 50), rng.uniform(0, 5000, 50)
    files["deflated.smlm"] = _smlm_bytes(table.tobytes(), 50)
    files["stored.smlm"] = _smlm_bytes(table.tobytes(), "50", zipfile.ZIP_STORED)
    builders = {
        "picasso.hdf5": lambda f: f.update(
            locs=np.zeros(20, [("frame", "<u4"), ("x", "<f4"), ("y", "<f4")]),
            metadata=json.dumps({"Pixelsize": 100}),
        ),
        "smap.mat": lambda f: [
            f.create_dataset(f"saveloc/loc/{c}", data=rng.uniform(0, 1e4, (1, 30)))
            for c in ("xnm", "ynm", "locprecnm")
        ],
        "decode.h5": lambda f: (
            f.create_dataset("data/xyz", data=rng.uniform(0, 50, (30, 3)), compression="gzip"),
            f.create_group("meta").attrs.update({"xy_unit": "px", "px_size": [100.0, 100.0]}),
        ),
    }
    for name, build in builders.items():
        with h5py.File(folder / name, "w") as f:
            build(f)
        files[name] = (folder / name).read_bytes()
    tifffile.imwrite(folder / "d.ome.tif", rng.random((16, 16), np.float32), ome=True)
    files["d.ome.tif"] = (folder / "d.ome.tif").read_bytes()
    np.save(folder / "d.npy", rng.random((2, 8, 8)))
    files["d.npy"] = (folder / "d.npy").read_bytes()
    return files


with tempfile.TemporaryDirectory() as _tmp:
    VALID = _valid_files(Path(_tmp))


def test_the_unmutated_files_read():
    with tempfile.TemporaryDirectory() as tmp:
        for name, raw in VALID.items():
            path = Path(tmp) / name
            path.write_bytes(raw)
            if name.endswith((".tif", ".npy")):
                assert read_image(path, pixel_size_nm=10.0).data.size > 0
            else:
                assert len(read_localisations(path)) > 0


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(sorted(VALID)), rnd=st.randoms(use_true_random=False))
def test_mutated_real_files_raise_only_format_error(name, rnd):
    # positions drawn uniformly (hypothesis' own integers cluster at the start of the file)
    raw = bytearray(VALID[name])
    for _ in range(rnd.randint(1, 4)):
        if not raw:
            break
        op = rnd.choice(["flip", "zero", "truncate", "insert", "dup"])
        i = rnd.randrange(len(raw))
        if op == "flip":
            raw[i] ^= 1 << rnd.randrange(8)
        elif op == "zero":
            n = min(rnd.randint(1, 64), len(raw) - i)
            raw[i : i + n] = bytes(n)
        elif op == "truncate":
            del raw[i:]
        elif op == "insert":
            raw[i:i] = rnd.randbytes(rnd.randint(1, 16))
        else:
            raw[i:i] = raw[i : i + rnd.randint(1, 256)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(bytes(raw))
        sniff_format(path)  # never raises
        reader = read_image if name.endswith((".tif", ".npy")) else read_localisations
        try:
            reader(path, pixel_size_nm=10.0 if reader is read_image else None)
        except FormatError as exc:
            assert name in str(exc)


# --- absurd pixel sizes, given or stored ------------------------------------------------------
def test_absurd_pixel_sizes_fail_naming_the_file(tmp_path):
    tif = tmp_path / "tiny_px.ome.tif"
    meta = {"axes": "YX", "PhysicalSizeX": 1e-30, "PhysicalSizeXUnit": "nm"}
    meta.update(PhysicalSizeY=1e-30, PhysicalSizeYUnit="nm")
    tifffile.imwrite(tif, np.ones((16, 16), np.float32), ome=True, metadata=meta)
    with pytest.raises(FormatError, match=r"tiny_px.ome.tif: pixel size 1e-30 nm .* outside"):
        read_image(tif)
    picasso = tmp_path / "p_locs.hdf5"
    with h5py.File(picasso, "w") as f:
        f["locs"] = np.zeros(3, [("frame", "<u4"), ("x", "<f4"), ("y", "<f4")])
        f["metadata"] = json.dumps({"Pixelsize": 1e-30})
    with pytest.raises(FormatError, match=r"p_locs.hdf5: pixel size 1e-30 nm"):
        read_localisations(picasso)
    table = tmp_path / "px.csv"
    table.write_text("x_px,y_px\n1,2\n3,4\n")
    with pytest.raises(FormatError, match=r"px.csv: pixel size 1e-30 nm .*argument"):
        read_localisations(table, pixel_size_nm=1e-30)
    assert len(read_localisations(table, pixel_size_nm=100.0)) == 2
