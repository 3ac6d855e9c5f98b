"""Run inside the fresh venv of wheel_check.py, under Xvfb: the plugin as a user meets it.

    python wheel_smoke.py REPO_ROOT

REPO_ROOT is only used to make sure nothing is imported from the checkout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

PLUGIN = "napari-mollifier"
TIMEOUT_S = 240.0


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"wheel smoke: {message}")


def main(repo: Path) -> None:
    import napari_mollifier

    where = Path(napari_mollifier.__file__).resolve()
    check(repo not in where.parents, f"imported from the checkout ({where}), not the wheel")
    from npe2 import PluginManager

    manager = PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest(PLUGIN)
    check(manifest is not None, "npe2 did not discover the plugin")
    keys = {s.key for s in manifest.contributions.sample_data or []}
    check({"nucleus", "localisations"} <= keys, f"sample contributions: {keys}")

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=False)
    try:
        viewer.open_sample(PLUGIN, "nucleus")
        check("sample nucleus density" in viewer.layers, f"layers: {list(viewer.layers)}")
        density = viewer.layers["sample nucleus density"]
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Infer rates")
        run_short_pinn(widget, density, QApplication.instance())
        ratio = viewer.layers["sample nucleus density ratio"]
        values = np.asarray(ratio.data)
        check(values.shape == density.data.shape, f"ratio shape {values.shape}")
        finite = float(np.isfinite(values).mean())
        check(finite > 0.05, f"ratio map almost all NaN ({finite:.1%} finite)")
        check(np.allclose(ratio.scale, density.scale), "ratio not on the density's grid")
        check(ratio.metadata.get("config", {}).get("method") == "pinn", "not a PINN result")
        viewer.open_sample(PLUGIN, "localisations")
        check(
            any(
                layer.name.endswith("density") and "localisations" in layer.name
                for layer in viewer.layers
            ),
            f"localisation sample: {list(viewer.layers)}",
        )
        print(f"wheel smoke: ok ({', '.join(layer.name for layer in viewer.layers)})")
    finally:
        viewer.close()


def run_short_pinn(widget, density, app) -> None:
    """Select the sample, a short PINN run (few steps, one network), wait for the layers."""
    pinn = {"steps": 30, "ensemble_size": 1, "patch_size": 32}
    widget.set_config(widget.config().replace(pinn=pinn))
    widget.select_layer(density)
    widget.run_button.native.click()  # "Infer rates": the PINN
    check(widget.is_running, f"the run did not start: {widget.last_error}")
    deadline = time.monotonic() + TIMEOUT_S
    while widget.is_running and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.05)
    check(not widget.is_running, f"no result within {TIMEOUT_S:.0f} s")
    check(widget.last_error is None, f"the run failed: {widget.last_error}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
