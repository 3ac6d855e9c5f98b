"""The "Domain analysis" widget through the manifest, on the sample localisations (Xvfb)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

PLUGIN = "napari-mollifier"
SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "napari_mollifier"
    / "sample_data"
    / "nucleus_localisations.csv"
)
TIMEOUT_MS = 120_000


@pytest.fixture
def viewer_and_widget(make_napari_viewer, qtbot):
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} missing (python sample_data/make_sample_data.py)")
    viewer = make_napari_viewer()
    viewer.open(str(SAMPLE), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Domain analysis")
    yield viewer, widget
    widget.stop()  # a worker must not outlive its widget
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT_MS)


def _points(viewer):
    return next(lay for lay in viewer.layers if lay.metadata.get("napari_mollifier_kind")
                == "localisations")  # fmt: skip


def test_widget_adds_aligned_layers_and_summary(qtbot, viewer_and_widget, tmp_path):
    viewer, widget = viewer_and_widget
    points = _points(viewer)
    assert widget.layer.value is points
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: widget.report is not None and not widget.is_running, timeout=TIMEOUT_MS)
    report = widget.report
    # ran on the whole file, not the 20 000 points shown
    assert report.summary["n_localisations"] > points.metadata["n_shown"]
    name = points.name.split(" localisations")[0]
    domains = viewer.layers[f"{name} domains"]
    assert len(domains.data) == report.summary["n_domains"] > 0
    assert list(domains.features["radius_nm"]) == list(report.domains["radius_nm"])
    np.testing.assert_allclose(domains.size, 2 * report.domains["radius_nm"], rtol=1e-6)
    shapes = viewer.layers[f"{name} boundary and LAD band"]
    assert len(shapes.data) == 2
    labels = viewer.layers[f"{name} domain labels"]
    assert labels.data.max() == report.summary["n_domains"]
    law = viewer.layers[f"{name} scaling-law ratio"]
    assert law.data.shape == labels.data.shape and np.isfinite(law.data).any()
    assert "scaling law" in law.metadata["note"]
    # labels on the same world grid as the rendered density (same pixel, edges on multiples)
    density = next(lay for lay in viewer.layers if lay.metadata.get("napari_mollifier_kind")
                   == "density")  # fmt: skip
    np.testing.assert_allclose(labels.scale, density.scale)
    offset = (np.asarray(labels.translate) - np.asarray(density.translate)) / density.scale
    np.testing.assert_allclose(offset, np.round(offset), atol=1e-6)
    # every domain centre lies inside the outline, on top of localisations
    from skimage.measure import points_in_poly

    assert points_in_poly(domains.data, shapes.data[0]).all()
    assert "scaling law" in widget.summary.value
    assert "nucleus radius" in widget.summary.value
    viewer.window.resize(1500, 900)
    viewer.reset_view()
    shot = tmp_path / "domains_widget.png"
    viewer.screenshot(str(shot), canvas_only=False)
    assert shot.stat().st_size > 10_000
    out = Path(__file__).resolve().parents[1] / "docs" / "images" / "domains_widget.png"
    if not out.exists():  # the docs picture; delete it to remake it
        viewer.screenshot(str(out), canvas_only=False)


def test_widget_reports_bad_input_without_crashing(qtbot, viewer_and_widget):
    viewer, widget = viewer_and_widget
    widget.use_file.value = False
    widget.threshold_method.value = "absolute"
    widget.absolute.value = 1e8  # no localisation is that dense: no domain
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT_MS)
    assert widget.report is None
    assert "no heterochromatin domain found" in widget.status.value


def test_stop_ends_the_worker(qtbot, viewer_and_widget):
    _, widget = viewer_and_widget
    widget.run_button.native.click()
    widget.stop_button.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT_MS)
    assert widget.run_button.enabled
