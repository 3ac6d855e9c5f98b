"""Readers of every localisation format (fixtures written from FORMATS.md), sniffing, errors."""

from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np
import pytest

from napari_mollifier.io import FormatError, read_localisations, sniff_format

X = np.array([100.5, 2000.25, 3050.0])
Y = np.array([50.0, 1500.75, 2999.5])


def _write(path, text, encoding="utf-8", newline="\n"):
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def test_thunderstorm_plain_and_doubled_quotes(tmp_path):
    header = (
        '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",'
        '"offset [photon]","bkgstd [photon]","chi2","uncertainty_xy [nm]"'
    )
    rows = "".join(
        f"{i + 1},{i + 1},{x},{y},120,500,10,3,1.1,{8 + i}\n" for i, (x, y) in enumerate(zip(X, Y))
    )
    p1 = _write(tmp_path / "ts.csv", header + "\n" + rows)
    doubled = '"' + ",".join(f'""{n.strip(chr(34))}""' for n in header.split(",")) + '"'
    p2 = _write(tmp_path / "ts2.csv", doubled + "\n" + rows)
    for p in (p1, p2):
        assert sniff_format(p) == "thunderstorm"
        locs = read_localisations(p)
        np.testing.assert_array_equal(locs.table["x_nm"], X)
        np.testing.assert_array_equal(locs.table["y_nm"], Y)
        # precision is uncertainty_xy, NOT the PSF sigma (120 nm)
        np.testing.assert_allclose(locs.table["sigma_nm"], [8, 9, 10])
        np.testing.assert_allclose(locs.table["photons"], 500)
        assert locs.metadata["original_columns"]["sigma_nm"] == "uncertainty_xy [nm]"


def test_thunderstorm_old_uncertainty_3d_and_px(tmp_path):
    p = _write(
        tmp_path / "old.csv",
        '"id","frame","x [px]","y [px]","z [nm]","uncertainty [px]"\n1,1,1.5,2.0,-40,0.1\n',
    )
    with pytest.raises(FormatError, match="pixel_size_nm"):
        read_localisations(p)
    locs = read_localisations(p, pixel_size_nm=160.0)
    assert locs.table["x_nm"][0] == pytest.approx(240.0)
    assert locs.table["y_nm"][0] == pytest.approx(320.0)
    assert locs.table["z_nm"][0] == -40.0
    assert locs.table["sigma_nm"][0] == pytest.approx(16.0)
    assert locs.metadata["pixel_size_nm"] == 160.0


def _picasso(path, with_meta=False):
    dt = np.dtype(
        [
            ("frame", "<u4"),
            ("x", "<f4"),
            ("y", "<f4"),
            ("photons", "<f4"),
            ("sx", "<f4"),
            ("sy", "<f4"),
            ("bg", "<f4"),
            ("lpx", "<f4"),
            ("lpy", "<f4"),
        ]
    )
    arr = np.zeros(3, dt)
    arr["frame"] = [0, 1, 2]
    arr["x"] = [1.0, 2.5, 10.0]
    arr["y"] = [3.0, 4.25, 0.5]
    arr["lpx"] = [0.1, 0.2, 0.1]
    arr["lpy"] = [0.1, 0.2, 0.3]
    with h5py.File(path, "w") as f:
        f["locs"] = arr
        if with_meta:
            f["metadata"] = json.dumps({"Pixelsize": 130.0})
    return path


def test_picasso_yaml_metadata_and_missing(tmp_path):
    p = _picasso(tmp_path / "a_locs.hdf5")
    assert sniff_format(p) == "picasso"
    with pytest.raises(FormatError, match=r"\.yaml.*/metadata|pixel_size_nm"):
        read_localisations(p)
    (tmp_path / "a_locs.yaml").write_text(
        "Byte Order: <\nCamera: Andor\n---\nLocalized: true\nPixelsize: 108\n---\nx: 1\n"
    )
    locs = read_localisations(p)
    np.testing.assert_allclose(locs.table["x_nm"], [108.0, 270.0, 1080.0])
    np.testing.assert_allclose(locs.table["y_nm"], [324.0, 459.0, 54.0])
    np.testing.assert_allclose(locs.table["sigma_nm"], [10.8, 21.6, 21.6], rtol=1e-5)
    assert list(locs.table["frame"]) == [0, 1, 2]
    p2 = _picasso(tmp_path / "b_locs.hdf5", with_meta=True)
    locs2 = read_localisations(p2)
    np.testing.assert_allclose(locs2.table["x_nm"], [130.0, 325.0, 1300.0])
    assert locs2.metadata["pixel_size_source"] == "hdf5:/metadata"


def test_smap_v73(tmp_path):
    p = tmp_path / "cell_sml.mat"
    with h5py.File(p, "w", userblock_size=512) as f:
        g = f.create_group("saveloc/loc")
        g["xnm"] = X[None, :]
        g["ynm"] = Y[None, :]
        g["frame"] = np.array([[1, 2, 3]], dtype=float)
        g["locprecnm"] = np.array([[5.0, 6.0, 7.0]])
        g["channel"] = np.array([[0, 1, 1]], dtype=float)
        f.create_group("saveloc/file")["big"] = np.zeros((50, 50))
    assert sniff_format(p) == "smap"
    locs = read_localisations(p)
    np.testing.assert_array_equal(locs.table["x_nm"], X)
    np.testing.assert_array_equal(locs.table["y_nm"], Y)
    assert list(locs.table["channel"]) == [0, 1, 1]


def _decode(path, unit="px", px_size=(100.0, 120.0), n=3):
    with h5py.File(path, "w") as f:
        d = f.create_group("data")
        scale = 10.0 if unit == "px" else 1.0
        d["xyz"] = np.column_stack([X / scale, Y / scale, [1.0, 2.0, 3.0]])[:n]
        d["xyz_sig"] = np.full((n, 3), 0.1)
        d["phot"] = np.full(n, 1000.0)
        d["frame_ix"] = np.arange(n)
        d.create_dataset("bg", data=h5py.Empty("f"))  # null dataset
        m = f.create_group("meta")
        m.attrs["xy_unit"] = unit
        if px_size is not None:
            m.attrs["px_size"] = np.asarray(px_size)
    return path


def test_decode_px_anisotropic_nm_and_empty(tmp_path):
    p = _decode(tmp_path / "d.h5")
    assert sniff_format(p) == "decode"
    locs = read_localisations(p)
    np.testing.assert_allclose(locs.table["x_nm"], X / 10 * 100.0)
    np.testing.assert_allclose(locs.table["y_nm"], Y / 10 * 120.0)
    np.testing.assert_allclose(locs.table["z_nm"], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(locs.table["sigma_nm"], 0.5 * (10 + 12), rtol=1e-6)
    locs_nm = read_localisations(_decode(tmp_path / "n.h5", unit="nm", px_size=None))
    np.testing.assert_array_equal(locs_nm.table["x_nm"], X)
    with pytest.raises(FormatError, match="px_size"):
        read_localisations(_decode(tmp_path / "m.h5", px_size=None))
    empty = read_localisations(_decode(tmp_path / "e.h5", n=0))
    assert len(empty) == 0 and "no localisations" in empty.metadata["message"]


def test_elyra_latin1_crlf_nul_footer(tmp_path):
    header = (
        "Index\tFirst Frame\tNumber Frames\tFrames Missing\tPosition X [nm]\t"
        "Position Y [nm]\tPrecision [nm]\tNumber Photons\tBackground variance\t"
        "Chi square\tPSF half width [nm]\tChannel\tZ Slice"
    )
    rows = "".join(
        f"{i + 1}\t{i + 5}\t1\t0\t{x}\t{y}\t12.5\t800\t3\t1\t150\t1\t0\n"
        for i, (x, y) in enumerate(zip(X, Y))
    )
    body = (header + "\n" + rows).replace("\n", "\r\n").encode("latin-1")
    footer = b"\x00VoxelSizeX=0.1 \xb5m\r\nGarbage\t\t\r\n1\t2\r\n"
    p = tmp_path / "elyra.txt"
    p.write_bytes(body + footer)
    assert sniff_format(p) == "elyra"
    locs = read_localisations(p)
    np.testing.assert_array_equal(locs.table["x_nm"], X)
    np.testing.assert_array_equal(locs.table["y_nm"], Y)
    assert list(locs.table["frame"]) == [5, 6, 7]
    np.testing.assert_allclose(locs.table["sigma_nm"], 12.5)


def test_nstorm_prefers_xwc(tmp_path):
    header = (
        "Channel Name\tX\tY\tXc\tYc\tHeight\tFrame\tPhotons\t"
        "Lateral Localization Accuracy\tXw\tYw\tXwc\tYwc"
    )
    rows = "".join(
        f"647\t{x + 9}\t{y + 9}\t{x + 5}\t{y + 5}\t1\t{i}\t900\t11\t0\t0\t{x}\t{y}\n"
        for i, (x, y) in enumerate(zip(X, Y))
    )
    p = _write(tmp_path / "ns.txt", header + "\n" + rows)
    assert sniff_format(p) == "nstorm"
    locs = read_localisations(p)
    np.testing.assert_array_equal(locs.table["x_nm"], X)
    np.testing.assert_array_equal(locs.table["y_nm"], Y)
    assert locs.metadata["original_columns"]["x_nm"] == "xwc"
    # without the warped columns, Xc/Yc are used
    p2 = _write(
        tmp_path / "ns2.txt",
        "Name\tX\tY\tXc\tYc\tFrame\n"
        + "".join(f"a\t{x + 9}\t{y + 9}\t{x}\t{y}\t{i}\n" for i, (x, y) in enumerate(zip(X, Y))),
    )
    np.testing.assert_array_equal(read_localisations(p2).table["x_nm"], X)


def test_oni_csv(tmp_path):
    p = _write(
        tmp_path / "oni.csv",
        "Channel,Frame,X (nm),Y (nm),Z (nm),Photons,Background\n"
        + "".join(f"0,{i},{x},{y},0,500,20\n" for i, (x, y) in enumerate(zip(X, Y))),
    )
    assert sniff_format(p) == "oni"
    locs = read_localisations(p)
    np.testing.assert_array_equal(locs.table["x_nm"], X)
    np.testing.assert_allclose(locs.table["background"], 20)


RAPID = (
    '# <localizations insequence="true" repetitions="variable"><field identifier='
    '"Position-0-0" syntax="floating point" semantic="position in sample space in X" '
    'unit="{u}" min="0 m" max="3e-05 m" /><field identifier="Position-1-0" '
    'syntax="floating point" unit="{u}" /><field identifier="ImageNumber-0-0" '
    'unit="frame" /><field identifier="Amplitude-0-0" unit="A/D count" />'
    "{nested}</localizations>\n"
)


def test_rapidstorm_units_and_track_file(tmp_path):
    rows = "".join(f"{x} {y} {i} 1000\n" for i, (x, y) in enumerate(zip(X, Y)))
    p = _write(tmp_path / "r.txt", RAPID.format(u="nanometer", nested="") + rows)
    assert sniff_format(p) == "rapidstorm"
    locs = read_localisations(p)
    np.testing.assert_array_equal(locs.table["x_nm"], X)
    np.testing.assert_array_equal(locs.table["y_nm"], Y)
    assert list(locs.table["frame"]) == [0, 1, 2]
    p_um = _write(tmp_path / "ru.txt", RAPID.format(u="micrometer", nested="") + "1.5 2.5 0 10\n")
    assert read_localisations(p_um).table["x_nm"][0] == pytest.approx(1500.0)
    nested = '<localizations insequence="true"><field identifier="Position-0-0" /></localizations>'
    p_t = _write(tmp_path / "rt.txt", RAPID.format(u="nanometer", nested=nested) + "1 2 3 4 5\n")
    with pytest.raises(FormatError, match="track"):
        read_localisations(p_t)


def _smlm(path, headers, units, rows=3, truncate=0):
    dt = np.dtype([(h, "<f4") for h in headers])
    arr = np.zeros(rows, dt)
    arr[headers[0]] = 0
    arr[headers[1]] = X[:rows]
    arr[headers[2]] = Y[:rows]
    manifest = {
        "format_version": "0.2",
        "formats": {
            "smlm-table(binary)": {
                "type": "table",
                "mode": "binary",
                "headers": headers,
                "dtype": ["float32"] * len(headers),
                "units": units,
                "offset": 0,
            }
        },
        "files": [
            {"name": "table0.bin", "type": "table", "format": "smlm-table(binary)", "rows": rows}
        ],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        data = arr.tobytes()
        zf.writestr("table0.bin", data[: len(data) - truncate])
    path.write_bytes(buf.getvalue())
    return path


def test_smlm_zip(tmp_path):
    p = _smlm(tmp_path / "a.smlm", ["frame", "position_x", "position_y"], ["frame", "nm", "nm"])
    assert sniff_format(p) == "smlm"
    locs = read_localisations(p)
    np.testing.assert_allclose(locs.table["x_nm"], X.astype(np.float32))
    p_px = _smlm(tmp_path / "b.smlm", ["frame", "x", "y"], ["frame", "px", "px"])
    with pytest.raises(FormatError, match="pixel_size_nm"):
        read_localisations(p_px)
    np.testing.assert_allclose(
        read_localisations(p_px, pixel_size_nm=2.0).table["y_nm"], 2 * Y.astype(np.float32)
    )
    with pytest.raises(FormatError, match="truncated"):
        read_localisations(
            _smlm(tmp_path / "c.smlm", ["frame", "x", "y"], ["", "nm", "nm"], truncate=5)
        )


@pytest.mark.parametrize(
    "header,sep,factor,px",
    [
        ("x_nm,y_nm,frame", ",", 1.0, None),
        ("x [nm]\ty [nm]\tframe", "\t", 1.0, None),
        ("frame;x (um);y (um)", ";", 1000.0, None),
        ("x_px,y_px,frame", ",", 65.0, 65.0),
        ("xnm ynm frame", " ", 1.0, None),
    ],
)
def test_generic_tables(tmp_path, header, sep, factor, px):
    names = header.split(sep)
    rows = []
    for i, (x, y) in enumerate(zip(X, Y)):
        values = {"x": x, "y": y, "frame": i}
        rows.append(sep.join(str(values[n.strip()[0] if n[0] in "xy" else "frame"]) for n in names))
    p = _write(
        tmp_path / ("g.tsv" if sep == "\t" else "g.csv"), header + "\n" + "\n".join(rows) + "\n"
    )
    assert sniff_format(p) == "generic"
    locs = read_localisations(p, pixel_size_nm=px)
    np.testing.assert_allclose(locs.table["x_nm"], X * factor, rtol=1e-12)
    np.testing.assert_allclose(locs.table["y_nm"], Y * factor, rtol=1e-12)


def test_bad_inputs_name_file_expected_found(tmp_path):
    p = _write(tmp_path / "bad.csv", "id,frame,xpos_a\n1,2,3\n")
    with pytest.raises(FormatError) as exc:
        read_localisations(p)
    assert "bad.csv" in str(exc.value) and "xpos_a" in str(exc.value)
    p2 = _write(tmp_path / "nox.csv", "id,frame,x [nm],z [nm]\n1,2,3,4\n")
    with pytest.raises(FormatError, match="no y column.*found columns id, frame"):
        read_localisations(p2)
    p3 = _write(tmp_path / "nounit.csv", "x,y,frame\n1,2,3\n")
    with pytest.raises(FormatError, match="no unit"):
        read_localisations(p3)
    with pytest.raises(FileNotFoundError):
        read_localisations(tmp_path / "missing.csv")
    assert sniff_format(tmp_path / "missing.csv") is None
    p4 = _write(tmp_path / "text.csv", "x_nm,y_nm\n1,abc\n")
    with pytest.raises(FormatError, match="parse"):
        read_localisations(p4)


def test_nonfinite_rows_dropped_and_counted(tmp_path):
    p = _write(tmp_path / "nan.csv", "x_nm,y_nm,frame\n1,2,0\nnan,3,1\n4,inf,2\n5,6,3\n")
    locs = read_localisations(p)
    assert len(locs) == 2
    assert locs.metadata["n_dropped_nonfinite"] == 2
    assert locs.metadata["n_rows_read"] == 4
    np.testing.assert_array_equal(locs.table["x_nm"], [1.0, 5.0])


def test_header_only_csv_is_empty_table(tmp_path):
    p = _write(tmp_path / "empty.csv", '"id","frame","x [nm]","y [nm]"\n')
    locs = read_localisations(p)
    assert len(locs) == 0 and list(locs.table.columns)[:2] == ["x_nm", "y_nm"]


@pytest.mark.slow
def test_three_million_row_csv_memory(tmp_path):
    """A 3-million-row ThunderSTORM CSV loads with peak memory below 1.5x the file size."""
    import subprocess
    import sys

    import pandas as pd

    n = 3_000_000
    rng = np.random.default_rng(0)
    path = tmp_path / "big.csv"
    with open(path, "w") as fh:
        fh.write(
            '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",'
            '"offset [photon]","bkgstd [photon]","chi2","uncertainty_xy [nm]"\n'
        )
        pd.DataFrame(rng.uniform(0, 16000, (n, 10))).to_csv(
            fh, header=False, index=False, float_format="%.4f"
        )
    code = (
        "import resource, sys; import napari_mollifier.io as m;"
        "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        f"L = m.read_localisations({str(path)!r}); assert len(L) == {n};"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) * 1024)"
    )
    grown = int(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()[-1]
    )
    assert grown < 1.5 * path.stat().st_size
