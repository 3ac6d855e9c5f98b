"""The "Infer rates" widget through the manifest, on the sample nucleus (real viewer, Xvfb)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

pytestmark = pytest.mark.gui

PLUGIN = "napari-mollifier"
TIMEOUT_MS = 60_000
#: A fixed mollifier width (model units, 300 nm each) for the runs that test the GUI rather than
#: the estimator: it skips the automatic width search.
FIXED_WIDTH = 1.3


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nucleus")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Infer rates")
    return viewer, widget


def _density(viewer):
    return viewer.layers["sample nucleus density"]


def _wait(qtbot, widget):
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT_MS)


def _fast(widget, pinn=None, **changes):
    """A short PINN / a fixed-width direct run on the CPU."""
    pinn = {"backbone": "pinn", "steps": 20, "ensemble_size": 1, "patch_size": 32, **(pinn or {})}
    base = {"device": "cpu", "mollifier_width": FIXED_WIDTH}
    widget.set_config(widget.config().replace(pinn=pinn, **{**base, **changes}))


def two_nuclei(shape=(110, 190), pixel_nm=25.0, seed=0):
    """A density with two separate textured discs and their labels (1 left, 2 right)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    for label, centre_x in ((1, 50), (2, 140)):
        labels[np.hypot(yy - 55, xx - centre_x) < 36] = label
    blobs = ndimage.gaussian_filter(rng.normal(size=shape), 2.5)
    blobs = (blobs - blobs.min()) / np.ptp(blobs)
    density = np.where(labels > 0, 0.25 + blobs, 0.0)
    return ndimage.gaussian_filter(density, 1.0).astype(np.float32), labels


# --- the napari integration ---------------------------------------------------------------------
def test_widget_is_in_the_layers_menu(make_napari_viewer):
    from napari._app_model import get_app_model

    make_napari_viewer()
    items = get_app_model().menus.get_menu("napari/layers/measure")
    commands = [getattr(getattr(item, "command", None), "id", "") for item in items]
    assert any(c.startswith("napari-mollifier") for c in commands), commands


def test_widget_uses_no_private_napari_api():
    import ast
    from pathlib import Path

    import napari_mollifier

    package = Path(napari_mollifier.__file__).parent
    for path in [*package.glob("_*.py"), *(package / "_widgets").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                for name in names:
                    assert not name.startswith("napari._"), f"{path.name} imports {name}"


# --- runs -------------------------------------------------------------------------------------
def test_preview_adds_aligned_layers(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    density = _density(viewer)
    assert widget.input.value is density
    assert widget.config().pixel_size_nm == pytest.approx(float(density.scale[-1]), rel=1e-4)
    assert widget.config().method == "pinn"  # "Infer rates" is the PINN; Preview the direct one

    widget.preview_button.native.click()
    _wait(qtbot, widget)
    assert widget.last_error is None, widget.last_error
    for name in ("ratio", "phi_h", "residual"):
        layer = viewer.layers[f"{density.name} {name}"]
        np.testing.assert_allclose(layer.scale, density.scale)
        np.testing.assert_allclose(layer.translate, density.translate)
        assert layer.data.shape == density.data.shape
        assert layer.metadata["config"]["method"] == "direct"
        assert layer.metadata["config"]["seed"] == widget.config().seed
        assert "napari_mollifier_version" in layer.metadata
    ratio_layer = viewer.layers[f"{density.name} ratio"]
    assert viewer.layers.index(ratio_layer) == len(viewer.layers) - 1  # on top of the density
    ratio = np.asarray(ratio_layer.data, dtype=float)
    valid = np.isfinite(ratio)
    assert valid.mean() > 0.02
    truth = np.asarray(viewer.layers["sample nucleus true ratio"].data, dtype=float)
    both = valid & np.isfinite(truth)
    assert np.corrcoef(ratio[both], truth[both])[0, 1] > 0.5  # coarse: accuracy is tested in lib
    assert "median ratio" in widget.status.value


def test_infer_rates_runs_the_pinn_with_device_and_seed(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    density = _density(viewer)
    _fast(widget, pinn={"ensemble_size": 2}, seed=3)
    widget.form.widget_for("device").value = "cpu"
    assert "cpu" in widget.device_info.value

    widget.run_button.native.click()
    _wait(qtbot, widget)
    assert widget.last_error is None, widget.last_error
    for name in ("ratio", "phi_h", "residual", "uncertainty"):
        meta = viewer.layers[f"{density.name} {name}"].metadata
        assert meta["config"]["method"] == "pinn" and meta["config"]["pinn"]["steps"] == 20
        assert meta["seed"] == 3 and meta["device"] == "cpu" and meta["device_reason"]
    uncertainty = np.asarray(viewer.layers[f"{density.name} uncertainty"].data, dtype=float)
    assert np.nanmax(uncertainty) > 0  # two ensemble members disagree somewhere


def test_stop_returns_best_so_far_and_widget_recovers(viewer_and_widget, qtbot):
    from napari.utils import progress

    viewer, widget = viewer_and_widget
    density = _density(viewer)
    _fast(widget, pinn={"steps": 100_000})
    widget.run_button.native.click()
    assert widget.is_running and not widget.run_button.enabled
    assert not widget.progress_bar.native.isHidden() and widget.progress_bar.max == 100_000
    jobs = [p for p in progress._all_instances if p.desc.startswith("Infer rates")]
    assert len(jobs) == 1 and jobs[0].total == 100_000  # napari's activity dock has the job
    qtbot.waitUntil(
        lambda: widget.last_event is not None and widget.last_event.step > 0, timeout=TIMEOUT_MS
    )
    widget.stop_button.native.click()
    _wait(qtbot, widget)
    assert widget.last_error is None, widget.last_error
    diagnostics = widget.last_result.diagnostics
    assert diagnostics["stopped"] is True and 0 < diagnostics["steps_done"] < 100_000
    assert f"{density.name} ratio" in viewer.layers
    assert widget.run_button.enabled and not widget.stop_button.enabled
    assert widget.progress_bar.native.isHidden()
    assert not [p for p in progress._all_instances if p.desc.startswith("Infer rates")]


def test_closing_the_widget_stops_the_run(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    _fast(widget, pinn={"steps": 100_000})
    widget.run_button.native.click()
    qtbot.waitUntil(
        lambda: widget.last_event is not None and widget.last_event.step > 0, timeout=TIMEOUT_MS
    )
    widget.native.close()
    _wait(qtbot, widget)
    assert widget.last_result.diagnostics["stopped"] is True


def test_bad_input_notifies_and_widget_still_works(viewer_and_widget, qtbot):
    from napari.utils.notifications import NotificationSeverity, notification_manager

    viewer, widget = viewer_and_widget
    viewer.add_image(np.zeros((64, 64)), name="empty", scale=(20.0, 20.0), units="nm")
    widget.select_layer(viewer.layers["empty"])
    before = len(notification_manager.records)
    widget.preview_button.native.click()
    _wait(qtbot, widget)
    assert widget.last_error
    assert any(
        n.severity == NotificationSeverity.ERROR for n in notification_manager.records[before:]
    )
    assert widget.run_button.enabled and "empty ratio" not in viewer.layers
    widget.select_layer(_density(viewer))
    _fast(widget)
    widget.preview_button.native.click()
    _wait(qtbot, widget)
    assert widget.last_error is None, widget.last_error


def test_z_stack_asks_for_a_plane(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    density = np.asarray(_density(viewer).data, dtype=np.float32)
    stack = np.stack([np.zeros_like(density), density, 0.5 * density])
    layer = viewer.add_image(stack, name="stack", scale=(1, 20.0, 20.0), units="nm")
    widget.select_layer(layer)
    assert not widget.plane.native.isHidden()
    widget.set_config(widget.config().replace(mollifier_width=FIXED_WIDTH, pixel_size_nm=20.0))
    widget.plane.value = "max"
    widget.preview_button.native.click()
    assert "max projection" in widget.status.value
    _wait(qtbot, widget)
    assert widget.last_error is None, widget.last_error
    assert viewer.layers["stack ratio"].data.shape == density.shape


# --- pickers, form, config files --------------------------------------------------------------
def test_typed_layer_pickers(viewer_and_widget):
    viewer, widget = viewer_and_widget
    points = viewer.add_points(np.zeros((3, 2)), name="spots")
    labels = viewer.add_labels(np.zeros((8, 8), dtype=int), name="nuclei")
    viewer.add_shapes(name="drawing")
    inputs = {name for name, _ in widget._input_choices()}
    assert inputs == {"sample nucleus density", "spots"}  # not the true-ratio map, not labels
    masks = dict(widget._mask_choices())
    assert set(masks) == {"none", "nuclei"} and masks["nuclei"] is labels
    widget.select_layer(points)
    assert not widget.render_button.native.isHidden() and widget.plane.native.isHidden()
    assert widget.mask.value is None


def test_form_is_generated_from_the_config(make_napari_viewer):
    """Every config field has a widget; a field added to the dataclass appears by itself."""
    from napari_mollifier._widgets.config_form import ConfigForm
    from napari_mollifier._widgets.infer import HIDDEN_FIELDS, InferRatesWidget
    from napari_mollifier.inverse.config import InferenceConfig
    from napari_mollifier.schema import option

    def paths(cls, prefix=""):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.default_factory):
                yield from paths(f.default_factory, f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}"

    assert {"pinn.steps", "render.method", "direct.ladder_size"} <= set(paths(InferenceConfig))

    widget = InferRatesWidget(make_napari_viewer())
    expected = {p for p in paths(InferenceConfig) if p not in HIDDEN_FIELDS}
    assert set(widget.form.field_paths()) == expected

    @dataclasses.dataclass
    class Extended(InferenceConfig):
        smoothing_passes: int = option(2, low=0, high=9, doc="smoothing passes")
        weighting: str = option("flat", choices=("flat", "hann"), doc="patch weighting")

    form = ConfigForm(Extended())
    assert form.widget_for("smoothing_passes").value == 2
    assert form.widget_for("smoothing_passes").max == 9  # the schema's bound
    assert "smoothing passes" in form.widget_for("smoothing_passes").tooltip
    assert list(form.widget_for("weighting").choices) == ["flat", "hann"]
    form.widget_for("weighting").value = "hann"
    form.widget_for("model.nm_per_unit").value = 250.0
    form.widget_for("mollifier_width").value = 0.4
    value = form.value
    assert (value.weighting, value.model.nm_per_unit, value.mollifier_width) == ("hann", 250, 0.4)
    form.widget_for("mollifier_width").value = 0.0  # the "auto" end of the box
    assert form.value.mollifier_width is None
    assert form.widget_for("mollifier_width").native.text() == "auto"


def test_config_round_trip_through_the_widget(make_napari_viewer, tmp_path):
    from napari_mollifier._widgets.infer import InferRatesWidget
    from napari_mollifier.inverse.config import InferenceConfig
    from napari_mollifier.physics.params import CalibrationParams

    widget = InferRatesWidget(make_napari_viewer())
    original = InferenceConfig(
        method="pinn",
        pinn={"backbone": "pinnsformer", "steps": 321},
        seed=11,
        kernel="bump",
        mollifier_width=0.45,
        calibration=CalibrationParams(anchor="mean", phi_e=0.2),
        render={"method": "histogram", "pixel_size_nm": 15.0},
        device="cuda:1",  # shown as it is (and accepted by the config) on any machine
    )
    original.save(tmp_path / "run.yaml")
    widget.load_config(tmp_path / "run.yaml")
    assert widget.form.widget_for("pinn.backbone").value == "pinnsformer"
    assert widget.form.widget_for("device").value == "cuda:1"
    assert widget.config() == original
    steps = widget.form.widget_for("pinn.steps")
    widget.set_config(widget.config().replace(pinn={"steps": 10**7}))  # beyond the box: widened
    assert widget.config().pinn.steps == 10**7
    steps.value = 500
    widget.save_config(tmp_path / "again.yaml")
    expected = original.replace(pinn={"steps": 500})
    assert InferenceConfig.from_file(tmp_path / "again.yaml") == expected


def test_file_buttons_go_through_the_dialogs(make_napari_viewer, tmp_path, monkeypatch):
    """Save config... writes where the dialog says; Load config... of a bad file shows an error
    naming the file and keeps the form; a cancelled dialog does nothing."""
    from qtpy.QtWidgets import QFileDialog

    from napari_mollifier._widgets.infer import InferRatesWidget
    from napari_mollifier.inverse.config import InferenceConfig

    widget = InferRatesWidget(make_napari_viewer())
    widget.set_config(widget.config().replace(seed=5))
    answer = {"path": str(tmp_path / "saved.yaml")}
    dialog = lambda *args: (answer["path"], "")  # noqa: E731
    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", dialog)
    widget.save_button.clicked.emit()
    assert InferenceConfig.from_file(tmp_path / "saved.yaml").seed == 5
    (tmp_path / "broken.yaml").write_text("seed: [not, an, int]\n")
    answer["path"] = str(tmp_path / "broken.yaml")
    widget.load_button.clicked.emit()
    assert widget.last_error is not None and "broken.yaml" in widget.last_error
    assert widget.config().seed == 5
    answer["path"] = ""  # cancelled
    widget.last_error = None
    widget.save_results_button.clicked.emit()
    assert widget.last_error is None


def test_config_from_a_result_sidecar(viewer_and_widget, qtbot, tmp_path):
    """The JSON written next to saved maps loads back as the run's config."""
    viewer, widget = viewer_and_widget
    _fast(widget, seed=5, kernel="polynomial")
    widget.preview_button.native.click()
    _wait(qtbot, widget)
    assert widget.last_error is None, widget.last_error
    tiff, sidecar = widget.save_results(tmp_path / "maps.ome.tif")
    assert tiff.exists() and sidecar.suffix == ".json"
    used = widget.last_result.config
    widget.set_config(used.replace(seed=99, steps=7))
    widget.load_config(sidecar)
    assert widget.config() == used


# --- nuclei and localisations ---------------------------------------------------------------
def test_labels_mask_with_two_nuclei(make_napari_viewer, qtbot, tmp_path):
    from napari_mollifier._widgets.infer import InferRatesWidget

    viewer = make_napari_viewer()
    density, labels = two_nuclei()
    image = viewer.add_image(density, name="cells", scale=(25.0, 25.0), units="nm")
    mask = viewer.add_labels(labels, name="nuclei", scale=(25.0, 25.0), units="nm")
    widget = InferRatesWidget(viewer)
    widget.select_layer(image)
    widget.select_mask(mask)
    widget.set_config(widget.config().replace(mollifier_width=0.7, pixel_size_nm=25.0))
    widget.preview_button.native.click()
    _wait(qtbot, widget)
    assert widget.last_error is None, widget.last_error
    ratio = np.asarray(viewer.layers["cells ratio"].data, dtype=float)
    assert ratio.shape == labels.shape
    assert not np.isfinite(ratio[labels == 0]).any()  # NaN outside every nucleus
    for label in (1, 2):
        assert np.isfinite(ratio[labels == label]).mean() > 0.2, label
    rows = widget.last_result.metadata["nuclei"]
    assert [r["label"] for r in rows] == [1, 2]
    for row in rows:
        assert row["area_px"] == int((labels == row["label"]).sum())
        inside = ratio[(labels == row["label"]) & np.isfinite(ratio)]
        assert row["ratio_median"] == pytest.approx(np.median(inside), rel=1e-5)
    assert not widget.table.native.isHidden() and list(widget.table.value["data"][0][:1]) == [1]
    table_layer = viewer.layers["cells nuclei"]
    assert list(table_layer.features["label"]) == [1, 2]
    written = widget.save_results(tmp_path / "cells.ome.tif")
    csv_lines = written[-1].read_text().splitlines()
    assert written[-1].name == "cells_nuclei.csv" and len(csv_lines) == 3
    assert csv_lines[0].startswith("label,area_px,area_um2")
    # File > Save Selected Layers with the plugin's writer keeps the table with the maps
    from napari_mollifier._writer import MAP_KEY, write_rate_maps

    maps = [lay for lay in viewer.layers if MAP_KEY in lay.metadata]
    saved = write_rate_maps(
        str(tmp_path / "saved.ome.tif"), [m.as_layer_data_tuple() for m in maps]
    )
    assert saved[-1].endswith("saved_nuclei.csv")


def test_localisations_render_in_the_widget(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "localisations")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Infer rates")
    from napari.layers import Points

    points = next(layer for layer in viewer.layers if isinstance(layer, Points))
    widget.select_layer(points)
    widget.set_config(
        widget.config().replace(render={"pixel_size_nm": 40.0, "method": "histogram"})
    )
    widget.render_button.native.click()
    density = viewer.layers["nucleus_localisations density"]
    assert tuple(density.scale) == (40.0, 40.0)
    from napari_mollifier._sample_data import sample_data_dir

    with open(sample_data_dir() / "nucleus_localisations.csv") as fh:
        n_rows = sum(1 for _ in fh) - 1
    assert density.metadata["n_localisations"] == n_rows  # the file, not the shown subsample
    assert density.metadata["render_method"] == "histogram"


def test_camera_pixel_points_ask_for_a_pixel_size(make_napari_viewer):
    from napari_mollifier._widgets.infer import InferRatesWidget

    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    yx = rng.uniform(10, 40, size=(3000, 2))
    points = viewer.add_points(yx, name="cam localisations", metadata={"camera_pixels": True})
    widget = InferRatesWidget(viewer)
    widget.select_layer(points)
    assert "camera pixel size" in widget.hint.value
    widget.preview_button.native.click()
    assert not widget.is_running and "camera pixel size" in widget.last_error
    widget.set_config(widget.config().replace(pixel_size_nm=100.0))
    density = widget.render_points()
    assert density.metadata["n_localisations"] == 3000
    extent_nm = np.ptp(yx, axis=0).max() * 100.0
    assert density.data.shape[0] * 20.0 == pytest.approx(extent_nm, rel=0.2)


def test_every_value_fits_its_box_when_docked(make_napari_viewer, qtbot):
    """In the freshly docked widget no spin box clips its value."""
    from qtpy.QtWidgets import QAbstractSpinBox

    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "nucleus")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Infer rates")
    qtbot.waitUntil(lambda: widget.native.isVisible(), timeout=5_000)
    clipped = []
    for box in widget.native.findChildren(QAbstractSpinBox):
        edit = box.lineEdit()
        needed = edit.fontMetrics().horizontalAdvance(box.text())
        if box.isVisible() and edit.width() < needed:
            clipped.append((box.objectName() or box.text(), edit.width(), needed))
    assert not clipped, clipped
    # and the whole form fits napari's dock next to a 1280-pixel-wide window's canvas
    assert widget.native.minimumSizeHint().width() <= 420, widget.native.minimumSizeHint()
