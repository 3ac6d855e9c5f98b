"""Property-based tests: mutated headers, truncated files and random bytes given to every
reader raise FormatError and nothing else; sniff_format never raises."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_mollifier.io import FormatError, read_image, read_localisations, sniff_format

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

VALID_TEXT = {
    "ts.csv": '"id","frame","x [nm]","y [nm]","uncertainty_xy [nm]"\n1,1,10.5,20.5,8\n'
    "2,2,30,40,9\n",
    "ely.txt": "Index\tFirst Frame\tPosition X [nm]\tPosition Y [nm]\tPrecision [nm]\r\n"
    "1\t1\t10\t20\t5\r\n\x00footer\xb5\r\n",
    "ns.txt": "Channel Name\tX\tY\tXc\tYc\tFrame\nA\t1\t2\t3\t4\t5\n",
    "oni.csv": "Channel,Frame,X (nm),Y (nm)\n0,1,2,3\n",
    "rs.txt": '# <localizations><field identifier="Position-0-0" unit="nanometer" />'
    '<field identifier="Position-1-0" unit="nanometer" /></localizations>\n1 2\n',
    "gen.tsv": "x_px\ty_px\tframe\n1\t2\t3\n",
}


def _check(path, pixel_size_nm=None):
    sniff_format(path)  # must not raise
    try:
        read_localisations(path, pixel_size_nm=pixel_size_nm)
    except FormatError:
        pass


@SETTINGS
@given(name=st.sampled_from(sorted(VALID_TEXT)), data=st.data())
def test_mutated_text_only_format_error(name, data):
    text = VALID_TEXT[name].encode("latin-1")
    op = data.draw(st.sampled_from(["truncate", "flip", "insert", "header"]))
    if op == "truncate":
        text = text[: data.draw(st.integers(0, len(text)))]
    elif op == "flip":
        i = data.draw(st.integers(0, len(text) - 1))
        text = text[:i] + bytes([data.draw(st.integers(0, 255))]) + text[i + 1 :]
    elif op == "insert":
        i = data.draw(st.integers(0, len(text)))
        text = text[:i] + data.draw(st.binary(max_size=20)) + text[i:]
    else:
        header = data.draw(st.text(alphabet='xyzXYZ_[]()",\t ;#<>nmpu\'"', max_size=40))
        text = header.encode("utf-8") + b"\n" + text.split(b"\n", 1)[-1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(text)
        _check(path, pixel_size_nm=data.draw(st.sampled_from([None, 100.0])))


@SETTINGS
@given(
    blob=st.binary(max_size=2000),
    suffix=st.sampled_from(
        [".csv", ".tsv", ".txt", ".h5", ".hdf5", ".mat", ".smlm", ".tif", ".npy"]
    ),
    magic=st.sampled_from([b"", b"\x89HDF\r\n\x1a\n", b"PK\x03\x04", b"II*\x00", b"\x93NUMPY"]),
)
def test_random_bytes_only_format_error(blob, suffix, magic):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"f{suffix}"
        path.write_bytes(magic + blob)
        _check(path)
        try:
            read_image(path, pixel_size_nm=10.0)
        except FormatError:
            pass


def _valid_hdf5(kind: str, path: Path):
    with h5py.File(path, "w") as f:
        if kind == "picasso":
            arr = np.zeros(3, [("frame", "<u4"), ("x", "<f4"), ("y", "<f4")])
            f["locs"] = arr
            f["metadata"] = json.dumps({"Pixelsize": 100})
        elif kind == "smap":
            g = f.create_group("saveloc/loc")
            g["xnm"] = np.ones((1, 3))
            g["ynm"] = np.ones((1, 3))
        else:
            f.create_group("data")["xyz"] = np.ones((3, 3))
            f.create_group("meta").attrs["xy_unit"] = "px"


@SETTINGS
@given(kind=st.sampled_from(["picasso", "smap", "decode"]), data=st.data())
def test_corrupted_hdf5_only_format_error(kind, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.h5"
        _valid_hdf5(kind, path)
        raw = path.read_bytes()
        if data.draw(st.booleans()):
            raw = raw[: data.draw(st.integers(0, len(raw)))]
        else:
            for _ in range(data.draw(st.integers(1, 20))):
                i = data.draw(st.integers(0, len(raw) - 1))
                raw = raw[:i] + bytes([data.draw(st.integers(0, 255))]) + raw[i + 1 :]
        path.write_bytes(raw)
        _check(path)


@SETTINGS
@given(
    manifest=st.recursive(
        st.none() | st.booleans() | st.integers(-5, 50) | st.text(max_size=8),
        lambda ch: (
            st.lists(ch, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "files",
                        "formats",
                        "headers",
                        "dtype",
                        "units",
                        "rows",
                        "name",
                        "format",
                        "type",
                        "offset",
                    ]
                ),
                ch,
                max_size=5,
            )
        ),
        max_leaves=20,
    ),
    payload=st.binary(max_size=200),
)
def test_mutated_smlm_manifest_only_format_error(manifest, payload):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.smlm"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("manifest.json", json.dumps(manifest))
            zf.writestr("t.bin", payload)
        path.write_bytes(buf.getvalue())
        _check(path, pixel_size_nm=1.0)
