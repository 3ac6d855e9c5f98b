"""What users bring (issue 15): locan-style .smlm, TIFF axes and units, output permissions."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from napari_mollifier.io import FormatError, read_localisations

RNG = np.random.default_rng(4)
N_LOCS = 50
X_NM = RNG.uniform(0, 5000, N_LOCS)
Y_NM = RNG.uniform(0, 4000, N_LOCS)


def _locan_smlm(path, offsets=None, rows_as_string=True, columns=None) -> None:
    """A .smlm laid out as locan's save_SMLM writes it (protobuf manifest turned to JSON)."""
    headers = ["position_x", "position_y", "frame", "intensity", "local_background"]
    dtypes = ["float64", "float64", "int64", "float32", "float32"]
    record = np.dtype([(h, d) for h, d in zip(headers, dtypes)])
    table = np.zeros(N_LOCS, record)
    table["position_x"], table["position_y"] = X_NM, Y_NM
    table["frame"] = np.arange(N_LOCS)
    table["intensity"] = 1000.0
    table["local_background"] = 12.0
    offsets = offsets if offsets is not None else {h: 0 for h in headers}
    manifest = {
        "format_version": "0.2",
        "formats": {
            "smlm-table(binary)-0": {
                "name": "smlm-table(binary)-0",
                "type": "table",
                "mode": "binary",
                "columns": columns if columns is not None else len(headers),
                "headers": headers,
                "dtype": dtypes,
                "shape": [1] * len(headers),
                "units": [""] * len(headers),
                "description": "localization table generated from locan.LocData",
            }
        },
        "files": [
            {
                "name": "table-0.bin",
                "type": "table",
                "format": "smlm-table(binary)-0",
                "channel": "default",
                "rows": str(N_LOCS) if rows_as_string else N_LOCS,
                "offset": offsets,
                "min": {h: float(table[h].min()) for h in headers},
                "max": {h: float(table[h].max()) for h in headers},
            }
        ],
        "name": "locdata-1",
        "tags": ["SMLM"],
        "date": "2026-12-02 05:00:00",
        "locdata_meta": {"identifier": "1", "element_count": str(N_LOCS)},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("table-0.bin", table.tobytes())
    path.write_bytes(buf.getvalue())


def test_locan_smlm_reads_columns_and_offsets(tmp_path):
    plain = tmp_path / "locan.smlm"
    _locan_smlm(plain)
    locs = read_localisations(plain)
    np.testing.assert_allclose(locs.table["x_nm"], X_NM)
    np.testing.assert_allclose(locs.table["y_nm"], Y_NM)
    np.testing.assert_allclose(locs.table["photons"], 1000.0)
    np.testing.assert_allclose(locs.table["background"], 12.0)
    shifted = tmp_path / "shifted.smlm"
    _locan_smlm(shifted, offsets={"position_x": -100.0, "position_y": 250}, rows_as_string=False)
    locs = read_localisations(shifted)
    np.testing.assert_allclose(locs.table["x_nm"], X_NM - 100.0)
    np.testing.assert_allclose(locs.table["y_nm"], Y_NM + 250.0)


def test_locan_smlm_bad_fields_are_named(tmp_path):
    bad_offset = tmp_path / "bad_offset.smlm"
    _locan_smlm(bad_offset, offsets={"position_q": 1})
    with pytest.raises(FormatError, match="bad_offset.smlm.*position_q"):
        read_localisations(bad_offset)
    bad_columns = tmp_path / "bad_columns.smlm"
    _locan_smlm(bad_columns, columns=7)
    with pytest.raises(FormatError, match="bad_columns.smlm.*'columns': 7"):
        read_localisations(bad_columns)


# --- TIFF axes and resolution units -------------------------------------------------------------
def _tiff(path, data, **kwargs):
    import tifffile

    tifffile.imwrite(path, np.asarray(data, dtype=np.float32), **kwargs)
    return path


@pytest.mark.parametrize(
    "unit,per_unit,expected_nm",
    [("MICROMETER", 50.0, 20.0), ("MILLIMETER", 40_000.0, 25.0), ("CENTIMETER", 1e5, 100.0)],
)
def test_tiff_pixel_size_in_any_resolution_unit(tmp_path, unit, per_unit, expected_nm):
    from napari_mollifier.io import read_image

    path = _tiff(
        tmp_path / f"{unit}.tif",
        np.ones((6, 7)),
        resolution=(per_unit, per_unit),
        resolutionunit=unit,
    )
    image = read_image(path)
    assert image.pixel_size_nm == pytest.approx(expected_nm)
    assert image.metadata["pixel_size_source"] == "TIFF resolution tags"


def test_screen_dpi_is_not_a_pixel_size(tmp_path):
    from napari_mollifier.io import read_image

    path = _tiff(tmp_path / "dpi.tif", np.ones((6, 7)), resolution=(72, 72), resolutionunit="INCH")
    with pytest.raises(FormatError, match="no physical pixel size"):
        read_image(path)


def test_z_stack_is_not_read_as_channels(tmp_path):
    from napari_mollifier.io import read_image

    stack = np.stack([np.full((6, 7), k, dtype=np.float32) for k in (1.0, 5.0, 3.0)])
    path = _tiff(tmp_path / "stack.tif", stack, metadata={"axes": "ZYX"})
    with pytest.raises(FormatError, match=r"stack.tif: a Z stack of 3 planes.*z_plane"):
        read_image(path, pixel_size_nm=20)
    plane = read_image(path, pixel_size_nm=20, z_plane=2)
    assert plane.data.shape == (6, 7) and np.all(plane.data == 3.0)
    assert plane.metadata["axes"] == "YX" and plane.metadata["z_plane"] == "plane 2 of 3"
    assert np.all(read_image(path, pixel_size_nm=20, z_plane="max").data == 5.0)
    assert np.allclose(read_image(path, pixel_size_nm=20, z_plane="mean").data, 3.0)
    with pytest.raises(FormatError, match="z_plane: expected a plane 0..2"):
        read_image(path, pixel_size_nm=20, z_plane=3)
    two_channels = _tiff(tmp_path / "phases.tif", stack[:2], metadata={"axes": "CYX"})
    assert read_image(two_channels, pixel_size_nm=20).metadata["axes"] == "CYX"


def test_reader_claims_only_what_it_can_use(tmp_path):
    import tifffile

    from napari_mollifier._reader import napari_get_reader

    ones = np.ones((6, 7), dtype=np.float32)
    claimed = [
        _tiff(tmp_path / "plane.tif", ones),
        _tiff(tmp_path / "phases.tif", np.stack([ones, ones])),
        _tiff(tmp_path / "maps.ome.tif", np.stack([ones] * 4), ome=True, metadata={"axes": "CYX"}),
    ]
    np.save(tmp_path / "plane.npy", ones)
    np.save(tmp_path / "phases.npy", np.stack([ones, ones]))
    claimed += [tmp_path / "plane.npy", tmp_path / "phases.npy"]
    declined = [
        _tiff(tmp_path / "z.tif", np.stack([ones] * 3), metadata={"axes": "ZYX"}),
        _tiff(tmp_path / "t.ome.tif", np.stack([ones] * 2), ome=True, metadata={"axes": "TYX"}),
        _tiff(tmp_path / "zc.tif", np.stack([np.stack([ones] * 2)] * 3), metadata={"axes": "ZCYX"}),
    ]
    rgb = tmp_path / "photo.tif"
    tifffile.imwrite(rgb, np.zeros((6, 7, 3), np.uint8), photometric="rgb")
    np.save(tmp_path / "volume.npy", np.stack([ones] * 5))
    declined += [rgb, tmp_path / "volume.npy"]
    for path in claimed:
        assert napari_get_reader(str(path)) is not None, path.name
    for path in declined:
        assert napari_get_reader(str(path)) is None, path.name


def test_image_without_pixel_size_opens_in_pixels(tmp_path):
    from napari_mollifier._reader import KIND_KEY, read_file

    path = _tiff(tmp_path / "plain.tif", np.arange(42).reshape(6, 7))
    [(data, kwargs, kind)] = read_file(path)
    assert kind == "image" and data.shape == (6, 7)
    assert kwargs["scale"] == (1.0, 1.0) and kwargs["units"] == ("pixel", "pixel")
    assert kwargs["metadata"]["pixel_size_nm"] is None
    assert kwargs["metadata"][KIND_KEY] == "density"


# --- output permissions -------------------------------------------------------------------------
@pytest.fixture
def umask_022():
    import os

    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_outputs_follow_the_umask(tmp_path, umask_022):
    """Maps and their JSON are 0644 under umask 022, like any file the user writes."""
    import stat

    from napari_mollifier.batch import process_file
    from napari_mollifier.inverse.config import InferenceConfig

    density = np.zeros((48, 48), dtype=np.float32)
    yy, xx = np.mgrid[:48, :48] - 23.5
    density[np.hypot(yy, xx) < 20] = 1.0
    density += 0.3 * np.sin(xx / 3.0) * (np.hypot(yy, xx) < 20)
    path = _tiff(tmp_path / "cell.tif", density)
    config = InferenceConfig(method="direct", mollifier_width=0.7, pixel_size_nm=25.0)
    report = process_file(path, tmp_path / "out", config, "cell")
    assert report.status == "ok", report.error
    for name in (report.maps_path, report.json_path):
        mode = stat.S_IMODE((tmp_path / "out" / name).stat().st_mode)
        assert mode == 0o644, f"{name}: {oct(mode)}"
