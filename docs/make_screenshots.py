"""Regenerate the screenshots of docs/usage.md from a real napari viewer.

    xvfb-run -a python docs/make_screenshots.py

Opens the sample nucleus, docks the "Infer rates" widget, clicks Preview (the direct estimator)
and saves docs/images/widget.png (the whole window) and docs/images/ratio_over_density.png (the
canvas), then clicks Infer rates (the PINN, default settings, under a minute on a 2-core CPU)
and saves docs/images/pinn_widget.png, pinn_ratio_over_density.png and pinn_uncertainty.png;
then nuclei_widget.png: Preview with a Labels mask over two nuclei (the sample nucleus and its
mirror image side by side). ``--only nuclei`` makes the last one alone.
"""

import os
import sys
import time
from pathlib import Path

# no notification pop-ups over the screenshots (a public napari setting, not saved to the profile)
os.environ.setdefault("NAPARI_APPLICATION_GUI_NOTIFICATION_LEVEL", "none")

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

OUT = Path(__file__).parent / "images"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    if sys.argv[1:] != ["--only", "nuclei"]:
        sample()
    nuclei()
    _shrink(OUT / "nuclei_widget.png")


def sample() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1280, 820)
    viewer.open_sample("napari-mollifier", "nucleus")
    _, widget = viewer.window.add_plugin_dock_widget("napari-mollifier", "Infer rates")
    app = QApplication.instance()
    _run(widget.preview_button, widget, app)
    _show(viewer, ("density", "density ratio"))
    # napari >= 0.9 moved the scale bar to the canvas overlays
    canvas = getattr(viewer, "canvas", None)
    (canvas.overlays.scale_bar if canvas is not None else viewer.scale_bar).visible = True
    viewer.reset_view()
    app.processEvents()
    viewer.screenshot(str(OUT / "widget.png"), canvas_only=False)
    viewer.screenshot(str(OUT / "ratio_over_density.png"), canvas_only=True)

    _run(widget.run_button, widget, app)
    _show(viewer, ("density", "density ratio"))
    app.processEvents()
    viewer.screenshot(str(OUT / "pinn_widget.png"), canvas_only=False)
    viewer.screenshot(str(OUT / "pinn_ratio_over_density.png"), canvas_only=True)
    _show(viewer, ("density", "density uncertainty"))
    for layer in viewer.layers:
        if layer.name.endswith("uncertainty"):
            layer.opacity = 0.75
            layer.colorbar.visible = True
            viewer.layers.selection.active = layer
    app.processEvents()
    viewer.screenshot(str(OUT / "pinn_uncertainty.png"), canvas_only=True)
    viewer.close()
    for name in (
        "widget.png",
        "ratio_over_density.png",
        "pinn_widget.png",
        "pinn_ratio_over_density.png",
        "pinn_uncertainty.png",
    ):
        _shrink(OUT / name)


def nuclei() -> None:
    """Two nuclei in one image, a Labels mask, Preview: the per-nucleus table and layer."""
    import numpy as np
    from scipy import ndimage

    from napari_mollifier import io as mio
    from napari_mollifier._sample_data import sample_files

    density = mio.read_image(sample_files()["density"])
    gap = np.zeros((density.data.shape[0], 40), density.data.dtype)  # the nuclei must not touch
    image = np.hstack([density.data, gap, density.data[:, ::-1]])
    smooth = ndimage.gaussian_filter(image, 10.0)
    inside = ndimage.binary_fill_holes(smooth > 0.5 * np.percentile(smooth, 99))
    labels, _ = ndimage.label(inside)
    px = float(density.pixel_size_nm)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1280, 820)
    layer = viewer.add_image(image, name="two nuclei", scale=(px, px), units="nm")
    mask = viewer.add_labels(labels, name="nucleus labels", scale=(px, px), units="nm")
    mask.opacity = 0.25
    _, widget = viewer.window.add_plugin_dock_widget("napari-mollifier", "Infer rates")
    widget.select_layer(layer)
    widget.select_mask(mask)
    app = QApplication.instance()
    _run(widget.preview_button, widget, app)
    canvas = getattr(viewer, "canvas", None)
    (canvas.overlays.scale_bar if canvas is not None else viewer.scale_bar).visible = True
    viewer.reset_view()
    app.processEvents()
    viewer.screenshot(str(OUT / "nuclei_widget.png"), canvas_only=False)
    viewer.close()


def _run(button, widget, app) -> None:
    button.native.click()
    while widget.is_running:
        app.processEvents()
        time.sleep(0.02)  # a bare spin would take a core from the worker on a 2-core machine
    if widget.last_error:
        raise SystemExit(f"inference failed: {widget.last_error}")


def _show(viewer, suffixes) -> None:
    for layer in viewer.layers:
        layer.visible = layer.name.endswith(suffixes)


def _shrink(path: Path) -> None:
    """Palette PNG: a few times smaller, no visible change for screenshots."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


if __name__ == "__main__":
    main()
