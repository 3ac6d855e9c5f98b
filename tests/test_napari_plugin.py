"""napari glue: manifest, lazy imports, reader and writer (real viewer under Xvfb)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

PLUGIN = "napari-mollifier"


# --- manifest and imports (no viewer) -----------------------------------------------------------
def test_manifest_validates_with_imports():
    proc = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", PLUGIN, "--imports"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout + proc.stderr


def test_glue_imports_neither_torch_nor_engine():
    code = (
        "import sys\n"
        "import napari_mollifier._widgets, napari_mollifier._reader\n"
        "import napari_mollifier._writer, napari_mollifier._sample_data\n"
        "heavy = [m for m in ('torch', 'napari_mollifier.mollifier', 'napari_mollifier.nets',"
        " 'napari_mollifier.inverse.pinn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_reader_patterns_cover_every_io_suffix():
    import yaml

    from napari_mollifier import io as mio

    manifest = Path(__file__).parents[1] / "src" / "napari_mollifier" / "napari.yaml"
    patterns = yaml.safe_load(manifest.read_text())["contributions"]["readers"][0][
        "filename_patterns"
    ]
    globbed = {p.lstrip("*").lower() for p in patterns}
    suffixes = set(mio.SUPPORTED_LOCALISATION_SUFFIXES) | set(mio.SUPPORTED_IMAGE_SUFFIXES)
    for suffix in suffixes:
        last = "." + suffix.lower().rsplit(".", 1)[-1]
        assert last in globbed, f"{suffix} is read by io but not offered by the manifest"


def test_reader_hook_declines_what_it_does_not_understand(tmp_path):
    from napari_mollifier._reader import napari_get_reader

    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\neggs\nmilk\n")
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 8)
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    for path in (notes, garbage, picture, tmp_path / "missing.csv", tmp_path):
        assert napari_get_reader(str(path)) is None, path
    assert napari_get_reader([str(notes), str(garbage)]) is None


# --- files written for the reader tests ---------------------------------------------------------
CLUSTERS_NM = ((600.0, 1000.0), (1500.0, 1800.0))  # (y, x) centres


def _write_thunderstorm(path: Path, n_per_cluster: int = 400, seed: int = 1) -> np.ndarray:
    """Two tight clusters of localisations; returns the (y, x) nm coordinates written."""
    rng = np.random.default_rng(seed)
    yx = np.concatenate(
        [rng.normal(c, 8.0, size=(n_per_cluster, 2)) for c in CLUSTERS_NM]
        + [rng.uniform((200, 300), (2000, 2300), size=(200, 2))]
    )
    lines = [
        '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",'
        '"offset [photon]","bkgstd [photon]","uncertainty_xy [nm]"'
    ]
    for i, (y, x) in enumerate(yx):
        lines.append(f"{i + 1},{i % 50 + 1},{x:.3f},{y:.3f},120.0,1500.0,40.0,5.0,10.0")
    path.write_text("\n".join(lines) + "\n")
    return yx


def test_open_localisations_gives_aligned_density_and_points(make_napari_viewer, tmp_path):
    from napari_mollifier._reader import RENDER_PIXEL_SIZE_NM

    path = tmp_path / "cell_thunderstorm.csv"
    yx = _write_thunderstorm(path)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    image = next(layer for layer in layers if layer._type_string == "image")
    points = next(layer for layer in layers if layer._type_string == "points")

    np.testing.assert_allclose(image.scale, (RENDER_PIXEL_SIZE_NM, RENDER_PIXEL_SIZE_NM))
    assert image.metadata["pixel_size_nm"] == pytest.approx(RENDER_PIXEL_SIZE_NM)
    assert image.metadata["n_localisations"] == len(yx)
    # points are world nm (y, x), the same numbers as in the file
    np.testing.assert_allclose(np.sort(points.data[:, 0]), np.sort(yx[:, 0]), atol=1e-3)
    np.testing.assert_allclose(np.sort(points.data[:, 1]), np.sort(yx[:, 1]), atol=1e-3)

    # overlay: the brightest pixel of each cluster's neighbourhood sits on the cluster centre
    data = np.asarray(image.data, dtype=float)
    rows, cols = np.indices(data.shape)
    world_y = image.translate[0] + rows * image.scale[0]
    world_x = image.translate[1] + cols * image.scale[1]
    for cy, cx in CLUSTERS_NM:
        near = (np.abs(world_y - cy) < 200) & (np.abs(world_x - cx) < 200)
        peak = np.unravel_index(np.argmax(np.where(near, data, -np.inf)), data.shape)
        assert abs(world_y[peak] - cy) <= RENDER_PIXEL_SIZE_NM
        assert abs(world_x[peak] - cx) <= RENDER_PIXEL_SIZE_NM
    # every localisation lies inside the image's world extent
    lo = np.asarray(image.translate) - np.asarray(image.scale) / 2
    hi = lo + np.asarray(data.shape) * np.asarray(image.scale)
    assert np.all(points.data >= lo) and np.all(points.data <= hi)


def test_open_ome_tiff_uses_its_pixel_size(make_napari_viewer, tmp_path):
    import tifffile

    path = tmp_path / "density.ome.tif"
    data = np.random.default_rng(0).random((48, 64)).astype(np.float32)
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "YX",
            "PhysicalSizeX": 12.5,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 12.5,
            "PhysicalSizeYUnit": "nm",
        },
    )
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    np.testing.assert_allclose(layer.scale, (12.5, 12.5))
    np.testing.assert_allclose(layer.data, data)
    assert layer.metadata["pixel_size_nm"] == pytest.approx(12.5)


def test_unknown_file_is_declined_and_bad_file_notifies(make_napari_viewer, tmp_path):
    from napari.utils.notifications import NotificationSeverity, notification_manager

    viewer = make_napari_viewer()
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\neggs\n")
    with pytest.raises(Exception, match="(?i)napari-mollifier|no .*reader|cannot|could not"):
        viewer.open(str(notes), plugin=PLUGIN)
    assert len(viewer.layers) == 0

    # recognised as a localisation table, but in camera pixels without a pixel size: opened
    # as points in camera pixels, with a warning that the widget asks for the size
    pixels = tmp_path / "pixels.csv"
    pixels.write_text("frame,x_px,y_px\n1,10.5,20.25\n2,11.0,21.0\n")
    before = len(notification_manager.records)
    viewer.open(str(pixels), plugin=PLUGIN)
    [points] = viewer.layers
    assert points.metadata["camera_pixels"] is True
    np.testing.assert_allclose(points.data, [[20.25, 10.5], [21.0, 11.0]])
    warnings = [
        n
        for n in notification_manager.records[before:]
        if n.severity == NotificationSeverity.WARNING
    ]
    assert warnings and "pixels.csv" in str(warnings[-1].message)
    assert "camera pixel" in str(warnings[-1].message).lower()

    # a table without a y column: an error notification naming the file, no layer
    viewer.layers.clear()
    broken = tmp_path / "broken.csv"
    broken.write_text("frame,x [nm],photons\n1,10.5,200\n2,11.0,300\n")
    before = len(notification_manager.records)
    viewer.open(str(broken), plugin=PLUGIN)
    assert len(viewer.layers) == 0
    errors = [
        n for n in notification_manager.records[before:] if n.severity == NotificationSeverity.ERROR
    ]
    assert errors and "broken.csv" in str(errors[-1].message)


# --- writer ---------------------------------------------------------------------------------
def _fake_result(shape=(40, 56), pixel_size_nm=15.0, origin_nm=(300.0, -120.0)):
    """A RateMaps with known numbers (the writer must not care how it was computed)."""
    from napari_mollifier.inverse import InferenceConfig, RateMaps

    rng = np.random.default_rng(3)
    config = InferenceConfig(method="direct", seed=7, pixel_size_nm=pixel_size_nm)
    ratio = rng.uniform(0.5, 1.5, shape)
    ratio[:3] = np.nan
    return RateMaps(
        ratio=ratio,
        phi_h=rng.uniform(0.1, 0.6, shape),
        residual=rng.normal(0, 1e-3, shape),
        uncertainty=rng.uniform(0, 0.1, shape),
        valid_mask=np.isfinite(ratio),
        config=config,
        spacing=pixel_size_nm / config.model.nm_per_unit,
        pixel_size_nm=pixel_size_nm,
        origin_nm=origin_nm,
        metadata={"seed": 7, "device": "cpu", "mollifier_width": 0.3},
    )


def test_writer_round_trip(make_napari_viewer, tmp_path):
    import tifffile

    from napari_mollifier._widgets.layers import add_result_layers

    viewer = make_napari_viewer()
    source = viewer.add_image(
        np.ones((40, 56)), name="cell", scale=(15.0, 15.0), translate=(300.0, -120.0)
    )
    result = _fake_result()
    layers = add_result_layers(viewer, result, source)
    assert [lay.name for lay in layers][0] == "cell ratio"
    for layer in layers:
        np.testing.assert_allclose(layer.scale, source.scale)
        np.testing.assert_allclose(layer.translate, source.translate)
        assert layer.metadata["config"]["seed"] == 7
        assert layer.metadata["device"] == "cpu"

    viewer.layers.selection = set(layers)
    out = tmp_path / "cell_maps.ome.tif"
    written = viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    written = [Path(p) for p in written]
    assert out in written and out.exists()
    sidecars = [p for p in written if p.suffix == ".json"]
    assert sidecars, written
    meta = json.loads(sidecars[0].read_text())
    assert meta["config"]["seed"] == 7 and meta["config"]["method"] == "direct"
    assert meta["pixel_size_nm"] == pytest.approx(15.0)

    with tifffile.TiffFile(out) as tif:
        stack = tif.asarray()
        ome = tif.ome_metadata or ""
    assert 'PhysicalSizeX="15.0"' in ome or 'PhysicalSizeX="15"' in ome
    stack = np.asarray(stack, dtype=np.float32).reshape(-1, 40, 56)
    maps = result.maps()
    for index, name in enumerate(("ratio", "phi_h", "residual", "uncertainty")):
        np.testing.assert_array_equal(stack[index], maps[name], err_msg=name)

    # the maps file opens again through the reader, one aligned layer per map
    reopened = viewer.open(str(out), plugin=PLUGIN)
    assert [lay.name for lay in reopened] == [f"cell_maps {m}" for m in maps]
    for layer in reopened:
        np.testing.assert_allclose(layer.scale, source.scale)
        np.testing.assert_allclose(layer.translate, source.translate)
    np.testing.assert_array_equal(reopened[0].data, maps["ratio"])

    # a plain image layer is not a rate map: nothing written, a clear error notification
    from napari.utils.notifications import NotificationSeverity, notification_manager

    viewer.layers.selection = {source}
    before = len(notification_manager.records)
    with pytest.warns(UserWarning):
        written = viewer.layers.save(str(tmp_path / "plain.ome.tif"), selected=True, plugin=PLUGIN)
    assert written == [] and not (tmp_path / "plain.ome.tif").exists()
    errors = [
        n for n in notification_manager.records[before:] if n.severity == NotificationSeverity.ERROR
    ]
    assert errors and "not a napari-mollifier rate map" in str(errors[-1].message)
