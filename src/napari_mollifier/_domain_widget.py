"""napari "Domain analysis" widget: the Qt-free :mod:`napari_mollifier.analysis` on a layer.

Only glue: picks a Points layer of localisations (or the file behind it, which holds all of
them where the layer shows a subsample), runs :func:`analysis.iter_analyse_domains` in a napari
worker (progress per step, Stop between steps) and converts the report to layers on the same
world coordinates (nm) as the density and rate-map layers of this plugin:

- domain centres as Points sized by their diameter, the per-domain table as layer features;
- the nuclear boundary and the inner edge of the LAD band as Shapes (polygons);
- the clusters as Labels on the analysis grid (``scale = pixel``, ``translate = origin``);
- the per-domain scaling-law ratio as a (hidden) image on that grid, nearest domain per pixel;
- the per-nucleus summary in the widget and in the Points layer's metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    TextEdit,
)

from ._reader import KIND_KEY

#: Summary lines shown in the widget (key, label, format).
_SHOWN = (
    ("nucleus_radius_nm", "nucleus radius", "{:.0f} nm"),
    ("n_localisations", "localisations", "{:d}"),
    ("localisation_density_per_um2", "density", "{:.0f} /um^2"),
    ("n_domains", "domains", "{:d}"),
    ("n_lad_domains", "LAD domains", "{:d}"),
    ("domain_radius_nm", "domain radius (hull)", "{:.0f} nm"),
    ("domain_radius_corrected_nm", "domain radius (corrected)", "{:.0f} nm"),
    ("spacing_nm", "spacing", "{:.0f} nm"),
    ("lad_thickness_nm", "LAD thickness", "{:.0f} nm"),
    ("lad_fraction", "LAD fraction", "{:.2f}"),
    ("scaling_law_ratio", "scaling-law ratio*", "{:.3g}"),
)


class DomainAnalysisWidget(Container):
    """Dock widget; ``napari_viewer`` is injected by napari."""

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.worker = None
        self.report = None
        self.layer = ComboBox(label="localisations", choices=self._points_layers)
        self.use_file = CheckBox(value=True, text="all localisations of the layer's file")
        self.threshold_method = ComboBox(
            label="threshold", choices=["percentile", "otsu", "absolute"], value="percentile"
        )
        self.percentile = FloatSpinBox(label="percentile", value=75.0, min=0.0, max=99.9)
        self.absolute = FloatSpinBox(
            label="density (/um^2)", value=20000.0, min=1.0, max=1e9, step=1000.0
        )
        self.neighbours = SpinBox(label="density neighbours", value=0, min=0, max=50)
        self.eps = FloatSpinBox(label="DBSCAN eps (nm)", value=30.0, min=1.0, max=1000.0)
        self.min_samples = SpinBox(label="DBSCAN min points", value=3, min=1, max=1000)
        self.min_size = SpinBox(label="min cluster size", value=35, min=1, max=100000)
        self.lad_percent = FloatSpinBox(label="LAD band (% radius)", value=5.0, min=0.1, max=50.0)
        self.run_button = PushButton(text="Run")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=6, label="progress")
        self.status = Label(value="")
        self.summary = TextEdit(value="", label="summary")
        self.summary.native.setReadOnly(True)
        self.summary.native.setMinimumHeight(200)
        self.extend(
            [
                self.layer, self.use_file, self.threshold_method, self.percentile,
                self.absolute, self.neighbours, self.eps, self.min_samples, self.min_size,
                self.lad_percent, self.run_button, self.stop_button, self.progress,
                self.status, self.summary,
            ]
        )  # fmt: skip
        self.run_button.changed.connect(self.run)
        self.stop_button.changed.connect(self.stop)
        self.viewer.layers.events.inserted.connect(self.layer.reset_choices)
        self.viewer.layers.events.removed.connect(self.layer.reset_choices)

    # --- inputs -------------------------------------------------------------------------------
    def _points_layers(self, _widget=None):
        from napari.layers import Points

        return [lay for lay in self.viewer.layers if isinstance(lay, Points)]

    def params(self) -> dict:
        """The :class:`analysis.DomainParams` keywords set in the widget."""
        method = self.threshold_method.value
        return {
            "threshold_method": "otsu" if method == "otsu" else "percentile",
            "threshold_percentile": float(self.percentile.value),
            "threshold_density_per_um2": (
                float(self.absolute.value) if method == "absolute" else None
            ),
            "density_neighbours": int(self.neighbours.value),
            "eps_nm": float(self.eps.value),
            "min_samples": int(self.min_samples.value),
            "min_cluster_size": int(self.min_size.value),
            "lad_band_fraction": float(self.lad_percent.value) / 100.0,
        }

    def source(self):
        """The file behind the layer (all localisations) or the layer's points (x, y nm)."""
        import pandas as pd

        layer = self.layer.value
        if layer is None:
            raise ValueError("no Points layer of localisations: open a localisation file")
        path = getattr(layer.source, "path", None)
        if self.use_file.value and path and Path(path).is_file():
            return path
        world = np.asarray(layer.data, dtype=np.float64) * layer.scale + layer.translate
        return pd.DataFrame({"x_nm": world[:, -1], "y_nm": world[:, -2]})

    # --- run ----------------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self.worker is not None

    def run(self, *_):
        from napari.qt.threading import create_worker

        from .analysis import iter_analyse_domains

        if self.worker is not None:
            return
        try:
            source = self.source()
        except ValueError as err:
            self.status.value = str(err)
            return
        self.status.value = "running ..."
        self.progress.value = 0
        # errors are shown by _on_error; without _ignore_errors superqt re-raises them too
        worker = create_worker(iter_analyse_domains, source, _ignore_errors=True, **self.params())
        worker.yielded.connect(self._on_step)
        worker.returned.connect(self._on_done)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        worker.aborted.connect(lambda: setattr(self.status, "value", "stopped"))
        self.worker = worker
        self.run_button.enabled, self.stop_button.enabled = False, True
        worker.start()

    def stop(self, *_):
        if self.worker is not None:
            self.worker.quit()  # stops at the next step boundary

    def _on_step(self, step):
        index, total, name = step
        self.progress.max = total
        self.progress.value = index
        self.status.value = f"{name} ..."

    def _on_error(self, exc):
        from napari.utils.notifications import show_error

        self.status.value = f"error: {exc}"
        show_error(f"Domain analysis: {exc}")

    def _on_finished(self):
        self.worker = None
        self.run_button.enabled, self.stop_button.enabled = True, False

    def _on_done(self, report):
        self.report = report
        self.progress.value = self.progress.max
        self.status.value = "done"
        self.summary.value = summary_text(report.summary)
        for data, kwargs, kind in report_layers(report, _name(self.layer.value)):
            name = kwargs["name"]
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)


def _name(layer) -> str:
    name = getattr(layer, "name", "nucleus")
    return name.split(" localisations")[0].split(" (")[0]


def summary_text(summary: dict) -> str:
    lines = []
    for key, label, fmt in _SHOWN:
        value = summary.get(key)
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            text = "n/a"
        else:
            text = fmt.format(int(value) if fmt == "{:d}" else value)
        lines.append(f"{label}: {text}")
    lines.append("* " + summary.get("scaling_law_note", "scaling law"))
    return "\n".join(lines)


def report_layers(report, name: str) -> list[tuple]:
    """(data, kwargs, "points" | "shapes" | "labels") for a :class:`DomainReport`, world nm."""
    domains = report.domains
    centres = domains[["y_nm", "x_nm"]].to_numpy(np.float64)
    colours = np.where(domains["is_lad"].to_numpy(bool)[:, None], [[1.0, 0.5, 0.0, 1.0]],
                       [[0.2, 0.8, 1.0, 1.0]])  # fmt: skip
    points = (
        centres,
        {
            "name": f"{name} domains",
            "size": np.maximum(2.0 * domains["radius_nm"].to_numpy(np.float64), 1.0),
            "features": domains.reset_index(drop=True),
            "face_color": "transparent",
            "border_color": colours,
            "border_width": 0.08,
            "units": ("nm", "nm"),
            "metadata": {
                KIND_KEY: "domains",
                "summary": dict(report.summary),
                "source": report.source,
            },
        },  # fmt: skip
        "points",
    )
    outline = report.boundary.xy_nm[:, ::-1]
    inner = report.lad_inner_nm[:, ::-1]
    shapes = (
        [outline, inner],
        {
            "name": f"{name} boundary and LAD band",
            "shape_type": "polygon",
            "edge_color": ["yellow", "orange"],
            "face_color": "transparent",
            "edge_width": 8.0,
            "features": {"outline": ["nuclear boundary", "LAD band inner edge"]},
            "metadata": {KIND_KEY: "boundary"},
        },
        "shapes",
    )
    labels = (
        report.label_image(),
        {
            "name": f"{name} domain labels",
            "scale": (report.pixel_nm, report.pixel_nm),
            "translate": report.origin_nm,
            "opacity": 0.5,
            "metadata": {KIND_KEY: "domain_labels"},
        },
        "labels",
    )
    law = report.scaling_law_image()
    finite = law[np.isfinite(law)]
    scaling = (
        law,
        {
            "name": f"{name} scaling-law ratio",
            "scale": (report.pixel_nm, report.pixel_nm),
            "translate": report.origin_nm,
            "colormap": "turbo",
            "contrast_limits": _limits(finite),
            "visible": False,  # a scaling law: shown on demand, next to the rate map
            "metadata": {KIND_KEY: "scaling_law", "note": report.summary["scaling_law_note"]},
        },
        "image",
    )
    return [scaling, labels, shapes, points]


def _limits(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(values, [1, 99])
    return (float(lo), float(hi) if hi > lo else float(lo) + 1e-6)
