"""The "Infer rates" widget through the manifest, on the sample nucleus (real viewer, Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

PLUGIN = "napari-mollifier"
TIMEOUT_MS = 60_000
#: A fixed mollifier width (nm) for the runs that test the GUI rather than the estimator: it skips
#: the automatic width search and is wide enough for pixels up to ~50 nm.
FIXED_WIDTH_NM = 400.0


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nucleus")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Infer rates")
    return viewer, widget


def _density(viewer):
    return viewer.layers["sample nucleus density"]


def _activity_movies(widget):
    from napari._qt.dialogs.qt_activity_dialog import ActivityToggleItem

    items = widget.window().findChildren(ActivityToggleItem)
    return [item._inProgressIndicator.movie() for item in items]


def _run(qtbot, widget):
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT_MS)


def _pinn(widget, steps, ensemble=1):
    widget.method.setCurrentText("pinn")
    widget.backbone.setCurrentText("pinn")
    widget.steps.setValue(steps)
    widget.ensemble.setValue(ensemble)
    widget.patch_size.setValue(32)
    widget.device.setCurrentText("cpu")
    widget.width_nm.setValue(FIXED_WIDTH_NM)


def test_widget_is_in_the_layers_menu(make_napari_viewer):
    from napari._app_model import get_app_model

    make_napari_viewer()
    items = get_app_model().menus.get_menu("napari/layers/measure")
    commands = [getattr(getattr(item, "command", None), "id", "") for item in items]
    assert any(c.startswith("napari-mollifier") for c in commands), commands


def test_direct_inference_adds_aligned_layers(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    density = _density(viewer)
    assert widget.layer_combo.currentText() == density.name
    assert widget.pixel_size.value() == pytest.approx(float(density.scale[-1]), rel=1e-4)
    assert widget.method.currentText() == "direct"
    assert not widget.pinn_box.isEnabled()

    _run(qtbot, widget)
    assert widget.last_error is None, widget.last_error
    for name in ("ratio", "phi_h", "residual"):
        layer = viewer.layers[f"{density.name} {name}"]
        np.testing.assert_allclose(layer.scale, density.scale)
        np.testing.assert_allclose(layer.translate, density.translate)
        assert layer.data.shape == density.data.shape
        assert layer.metadata["config"]["method"] == "direct"
        assert layer.metadata["config"]["seed"] == widget.seed.value()
        assert "napari_mollifier_version" in layer.metadata
    ratio_layer = viewer.layers[f"{density.name} ratio"]
    assert viewer.layers.index(ratio_layer) == len(viewer.layers) - 1  # on top of the density
    ratio = np.asarray(ratio_layer.data, dtype=float)
    valid = np.isfinite(ratio)
    assert valid.mean() > 0.02  # the estimator leaves a border of about one mollifier width
    low, high = ratio_layer.contrast_limits
    assert 0 <= low < high

    # against the ground truth shipped with the sample (same grid): a coarse sanity check only;
    # the accuracy numbers are tested in the library
    truth_layers = [lay for lay in viewer.layers if lay.name == "sample nucleus true ratio"]
    if truth_layers and truth_layers[0].data.shape == ratio.shape:
        truth = np.asarray(truth_layers[0].data, dtype=float)
        both = valid & np.isfinite(truth)
        r = np.corrcoef(ratio[both], truth[both])[0, 1]
        assert r > 0.5, r
    assert "median ratio" in widget.status.text()


def test_short_pinn_run_adds_layers_with_device_and_seed(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    density = _density(viewer)
    _pinn(widget, steps=20, ensemble=2)
    widget.seed.setValue(3)
    assert widget.pinn_box.isEnabled()
    assert "cpu" in widget.device_label.text()

    _run(qtbot, widget)
    assert widget.last_error is None, widget.last_error
    for name in ("ratio", "phi_h", "residual", "uncertainty"):
        layer = viewer.layers[f"{density.name} {name}"]
        np.testing.assert_allclose(layer.scale, density.scale)
        np.testing.assert_allclose(layer.translate, density.translate)
        meta = layer.metadata
        assert meta["config"]["method"] == "pinn" and meta["config"]["steps"] == 20
        assert meta["seed"] == 3 and meta["device"] == "cpu"
        assert meta["device_reason"]
    uncertainty = np.asarray(viewer.layers[f"{density.name} uncertainty"].data, dtype=float)
    assert np.nanmax(uncertainty) > 0  # two ensemble members disagree somewhere
    assert widget.last_result.diagnostics["steps_done"] >= 1


def test_stop_returns_best_so_far_and_widget_recovers(viewer_and_widget, qtbot, monkeypatch):
    import napari_mollifier._widget as widget_module

    # the pause path runs whatever renderer this machine has (its detection: test below)
    monkeypatch.setattr(widget_module, "software_opengl", lambda: True)
    viewer, widget = viewer_and_widget
    density = _density(viewer)
    _pinn(widget, steps=100_000)
    widget.run_button.click()
    assert widget.is_running and not widget.run_button.isEnabled()
    assert not widget.progress_bar.isHidden() and widget.progress_bar.maximum() == 100_000
    # napari's activity dock has the job, cancellable; on software OpenGL the status bar's
    # spinning GIF is paused for the run
    from napari.utils import progress
    from qtpy.QtGui import QMovie

    jobs = [p for p in progress._all_instances if p.desc.startswith("Infer rates")]
    assert len(jobs) == 1 and jobs[0].total == 100_000
    indicators = _activity_movies(widget)
    assert indicators and all(m.state() == QMovie.MovieState.Paused for m in indicators)
    qtbot.waitUntil(
        lambda: widget.last_event is not None and widget.last_event.step > 0, timeout=TIMEOUT_MS
    )
    assert widget.progress_bar.value() == min(widget.last_event.step, 100_000)
    widget.stop_button.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT_MS)
    assert widget.last_error is None, widget.last_error
    diagnostics = widget.last_result.diagnostics
    assert diagnostics["stopped"] is True
    assert 0 < diagnostics["steps_done"] < 100_000
    assert f"{density.name} ratio" in viewer.layers
    assert widget.run_button.isEnabled() and not widget.stop_button.isEnabled()
    assert widget.progress_bar.isHidden()
    assert not [p for p in progress._all_instances if p.desc.startswith("Infer rates")]
    # napari stops its indicator once no job is left (asynchronously with Qt 6); our resume must
    # not have restarted it
    qtbot.waitUntil(
        lambda: all(m.state() == QMovie.MovieState.NotRunning for m in _activity_movies(widget)),
        timeout=5_000,
    )


def test_bad_input_notifies_and_widget_still_works(viewer_and_widget, qtbot):
    from napari.utils.notifications import NotificationSeverity, notification_manager

    viewer, widget = viewer_and_widget
    # a stack is refused before anything runs
    viewer.add_image(np.zeros((3, 32, 32)), name="stack")
    widget.layer_combo.setCurrentText("stack")
    before = len(notification_manager.records)
    widget.run_button.click()
    assert not widget.is_running
    assert "2D" in widget.last_error
    errors = [
        n for n in notification_manager.records[before:] if n.severity == NotificationSeverity.ERROR
    ]
    assert errors and "stack" in str(errors[-1].message)

    # an empty image fails inside the worker: notification, buttons back
    viewer.add_image(np.zeros((64, 64)), name="empty", scale=(20.0, 20.0))
    widget.layer_combo.setCurrentText("empty")
    before = len(notification_manager.records)
    _run(qtbot, widget)
    assert widget.last_error
    assert any(
        n.severity == NotificationSeverity.ERROR for n in notification_manager.records[before:]
    )
    assert widget.run_button.isEnabled()
    assert "empty ratio" not in viewer.layers

    # the widget still works on good data
    widget.layer_combo.setCurrentText("sample nucleus density")
    widget.width_nm.setValue(FIXED_WIDTH_NM)
    _run(qtbot, widget)
    assert widget.last_error is None, widget.last_error
    assert "sample nucleus density ratio" in viewer.layers


def test_widget_fields_make_the_config(make_napari_viewer):
    from napari_mollifier._widget import InferRatesWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.ones((16, 16)), name="plain")  # no physical scale
    widget = InferRatesWidget(viewer)
    assert "no physical scale" in widget.pixel_hint.text()
    widget.pixel_size.setValue(12.5)
    widget.nm_per_unit.setValue(250.0)
    widget.width_nm.setValue(150.0)
    widget.phi_max.setValue(0.8)
    widget.method.setCurrentText("pinn")
    widget.backbone.setCurrentText("pinnsformer")
    widget.steps.setValue(321)
    widget.seed.setValue(11)
    config = widget.config()
    assert config.mollifier_width == pytest.approx(150.0 / 250.0)  # nm -> model units
    assert config.model.nm_per_unit == 250.0 and config.model.phi_max == pytest.approx(0.8)
    assert config.pixel_size_nm == 12.5
    assert (config.method, config.pinn.backbone, config.pinn.steps, config.seed) == (
        "pinn",
        "pinnsformer",
        321,
        11,
    )
    widget.width_nm.setValue(0.0)
    assert widget.width_nm.text() == "auto" and widget.config().mollifier_width is None
    assert widget.config().calibration.anchor == "percentiles"
    assert widget.config().calibration.phi_e is None and not widget.phi_e.isEnabled()
    widget.anchor.setCurrentText("mean")
    widget.phi_e.setValue(0.2)
    assert widget.phi_e.isEnabled()
    calibration = widget.config().calibration
    assert calibration.anchor == "mean" and calibration.phi_e == pytest.approx(0.2)


def test_every_value_fits_its_box_when_docked(make_napari_viewer, qtbot):
    """In the freshly docked widget (before any run widens it) no spin box clips its value."""
    from qtpy.QtWidgets import QAbstractSpinBox

    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "nucleus")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Infer rates")
    qtbot.waitUntil(lambda: widget.isVisible(), timeout=5_000)
    widget.anchor.setCurrentText("mean")  # enables every box of the model group
    clipped = []
    for box in widget.findChildren(QAbstractSpinBox):
        edit = box.lineEdit()
        needed = edit.fontMetrics().horizontalAdvance(box.text())
        if edit.width() < needed:
            clipped.append((box.toolTip() or box.text(), edit.width(), needed))
    assert not clipped, clipped


def test_software_opengl_reads_the_renderer(make_napari_viewer):
    """The detection asks the real GL context (a failing query would silently say False)."""
    from napari._vispy.utils.gl import _opengl_context
    from vispy.gloo import gl

    from napari_mollifier._widget import software_opengl

    make_napari_viewer()
    with _opengl_context():
        renderer = str(gl.glGetParameter(gl.GL_RENDERER)).lower()
    assert renderer  # a context answered
    # Xvfb (CI) renders with Mesa llvmpipe; on a GPU desktop this is False
    assert software_opengl.__wrapped__() == ("llvmpipe" in renderer or "softpipe" in renderer)
