"""Regenerate the screenshots of docs/usage.md from a real napari viewer.

    xvfb-run -a python docs/make_screenshots.py

Opens the sample nucleus, docks the "Infer rates" widget, runs the direct estimator and saves
docs/images/widget.png (the whole window) and docs/images/ratio_over_density.png (the canvas).
"""

from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).parent / "images"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1280, 820)
    viewer.open_sample("napari-mollifier", "nucleus")
    _, widget = viewer.window.add_plugin_dock_widget("napari-mollifier", "Infer rates")
    widget.run_button.click()
    app = QApplication.instance()
    while widget.is_running:
        app.processEvents()
    if widget.last_error:
        raise SystemExit(f"inference failed: {widget.last_error}")
    for layer in viewer.layers:
        layer.visible = layer.name.endswith(("density", "density ratio"))
    viewer.scale_bar.visible = True
    viewer.reset_view()
    _close_toasts(viewer)
    app.processEvents()
    viewer.screenshot(str(OUT / "widget.png"), canvas_only=False)
    viewer.screenshot(str(OUT / "ratio_over_density.png"), canvas_only=True)
    viewer.close()
    for name in ("widget.png", "ratio_over_density.png"):
        _shrink(OUT / name)


def _shrink(path: Path) -> None:
    """Palette PNG: a few times smaller, no visible change for screenshots."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def _close_toasts(viewer) -> None:
    """Close notification pop-ups (e.g. backend deprecation warnings) before a screenshot."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


if __name__ == "__main__":
    main()
