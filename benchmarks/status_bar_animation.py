"""Does napari's status-bar "in progress" animation slow a PINN run in the widget?

    xvfb-run -a python benchmarks/status_bar_animation.py [--steps 200] [--repeats 2]

Runs "Infer rates" (PINN, one network, fixed width) on the sample nucleus in a shown viewer,
alternating runs with the job in napari's activity dock (which shows the spinning icon in the
status bar) and runs without it (the widget's own progress bar only), and prints the wall time
of each and the median ratio. Prints the OpenGL renderer (software renderers redraw the GL
window for every frame of the animation). Timings on a shared machine are noisy: compare the
two columns of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import statistics
import time

import napari
from qtpy.QtWidgets import QApplication


def _renderer() -> str:
    from qtpy.QtGui import QOffscreenSurface, QOpenGLContext
    from vispy.gloo import gl

    surface = QOffscreenSurface()
    surface.create()
    context = QOpenGLContext()
    context.create()
    context.makeCurrent(surface)
    try:
        return str(gl.glGetParameter(gl.GL_RENDERER))
    finally:
        context.doneCurrent()


def _run(widget, app, with_dock: bool) -> float:
    import napari.utils as napari_utils

    original = napari_utils.cancelable_progress
    if not with_dock:  # the widget asks napari for its progress object at start()
        napari_utils.cancelable_progress = lambda *a, **k: original(*a, disable=True, **k)
    try:
        t0 = time.perf_counter()
        widget.run_button.native.click()
        while widget.is_running:
            app.processEvents()
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
    finally:
        napari_utils.cancelable_progress = original
    if widget.last_error:
        raise SystemExit(widget.last_error)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    viewer = napari.Viewer(show=True)
    viewer.open_sample("napari-mollifier", "nucleus")
    _, widget = viewer.window.add_plugin_dock_widget("napari-mollifier", "Infer rates")
    pinn = {"steps": args.steps, "ensemble_size": 1, "patch_size": 32}
    widget.set_config(widget.config().replace(pinn=pinn, device="cpu", mollifier_width=1.3))
    app = QApplication.instance()
    print(f"OpenGL renderer: {_renderer()}")
    times = {True: [], False: []}
    for _ in range(args.repeats):
        for with_dock in (True, False):
            times[with_dock].append(_run(widget, app, with_dock))
    viewer.close()
    print(f"PINN, {args.steps} steps, 1 network, sample nucleus (150 x 150 px)")
    print("| run | activity dock + status-bar animation (s) | widget bar only (s) |")
    print("|---|---|---|")
    for i, (a, b) in enumerate(zip(times[True], times[False]), 1):
        print(f"| {i} | {a:.1f} | {b:.1f} |")
    ratio = statistics.median(times[True]) / statistics.median(times[False])
    print(f"median ratio (with / without): {ratio:.2f}")


if __name__ == "__main__":
    main()
