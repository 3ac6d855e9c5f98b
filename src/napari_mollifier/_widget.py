"""The "Infer rates" dock widget: density image layer -> Gamma_me / Gamma_ac map layers.

Only glue: the widget turns its fields into an :class:`~napari_mollifier.inverse.InferenceConfig`,
runs :func:`napari_mollifier.inverse.iter_inference` in a napari thread worker and turns the
:class:`~napari_mollifier.inverse.RateMaps` into layers aligned with the image.

Threading: the worker is a generator that prepares the chromatin fields and forwards the
estimator's :class:`~napari_mollifier.inverse.ProgressEvent` objects; every viewer or widget
change happens in the worker's signal handlers, which Qt runs on the main thread. Stop sets a
:class:`~napari_mollifier.inverse.StopToken`; the estimator then returns its best result so far.
torch and the engine are imported inside the worker (or when a PINN device is described), never
when this module is imported, so napari starts as fast as without the plugin.
"""

from __future__ import annotations

import functools
import math
import uuid
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QMovie
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._layer_keys import KIND_KEY, MAP_KEY, MAP_STYLE, RESULT_ID_KEY, SOURCE_KEY
from ._reader import robust_limits
from .choices import BACKBONES, CALIBRATION_ANCHORS, DEVICES

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from .inverse.config import InferenceConfig
    from .inverse.result import RateMaps

METHOD_CHOICES = ("direct", "pinn")  # the widget offers these two of the registered estimators
BACKBONE_CHOICES = BACKBONES
DEVICE_CHOICES = DEVICES
ANCHOR_CHOICES = CALIBRATION_ANCHORS
#: narrowest dock at which every row of the widget shows its values (napari's default style)
MIN_WIDTH_PX = 360


def run_inference(
    image: np.ndarray,
    pixel_size_nm: float,
    origin_nm: tuple[float, float],
    config: InferenceConfig,
    stop=None,
    source: str = "",
):
    """Generator run in the worker thread: fields from the density, then the estimator.

    Parameters
    ----------
    image : ndarray (H, W)
        Chromatin density (any positive units), a copy owned by the worker.
    pixel_size_nm : float
        Physical pixel size used for the model-unit conversion (nm per pixel).
    origin_nm : (float, float)
        World coordinate (y, x) in nm of the centre of pixel [0, 0].
    config : InferenceConfig
    stop : StopToken or None
    source : str
        Name of the source layer, recorded in the result metadata.

    Yields
    ------
    ProgressEvent
        The estimator's events (a first "preparing" event comes from here).

    Returns
    -------
    RateMaps
        The final (or, after Stop, best-so-far) result.
    """
    from . import io as mio
    from .pipeline import iter_pipeline

    density = mio.DensityImage(
        data=np.asarray(image, dtype=np.float64),
        pixel_size_nm=float(pixel_size_nm),
        origin_nm=(float(origin_nm[0]), float(origin_nm[1])),
        metadata={"source_layer": source},
        path=None,
    )
    result = None
    for event in iter_pipeline(density, config, stop=stop):
        if event.result is not None:
            result = event.result
        yield event
    if result is None:  # the estimator contract says the last event carries it
        raise RuntimeError("the estimator finished without a result")
    result.metadata.setdefault("source_layer", source)
    return result


class InferRatesWidget(QWidget):
    """Dock widget: pick a density image, set the physics, infer the rate-ratio map.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari when the widget is opened from the Plugins or Layers menu.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        from .inverse.config import InferenceConfig

        self.viewer = napari_viewer
        self.worker = None
        self._stop_token = None
        self._progress = None  # napari's progress (activity dock) of the running job
        self._paused_indicators: list = []
        self._source_layer = None
        self._device_checked = False
        self.last_result: RateMaps | None = None
        self.last_error: str | None = None
        self.last_event = None  # the latest ProgressEvent of the current run
        defaults = InferenceConfig()

        # --- input -----------------------------------------------------------------------
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("2D image layer with the chromatin density")
        self.pixel_size = _spin(0.001, 10_000.0, 4, 20.0, " nm")
        self.pixel_size.setToolTip(
            "Physical pixel size of the image (nm per pixel); prefilled from the layer"
        )
        self.pixel_hint = QLabel("")
        self.pixel_hint.setWordWrap(True)
        self.nm_per_unit = _spin(1.0, 100_000.0, 1, defaults.model.nm_per_unit, " nm")
        self.nm_per_unit.setToolTip(
            "Length of one model unit (typical heterochromatin domain spacing, 250-350 nm)"
        )
        input_form = QFormLayout()
        input_form.addRow("Image", self.layer_combo)
        input_form.addRow("Pixel size", self.pixel_size)
        input_form.addRow("", self.pixel_hint)
        input_form.addRow("Model unit", self.nm_per_unit)

        # --- physics ---------------------------------------------------------------------
        self.phi_max = _spin(0.05, 1.0, 3, defaults.model.phi_max)
        self.phi_max.setToolTip("Maximal heterochromatin packing fraction phi_max")
        self.interface_length = _spin(0.001, 1.0, 4, defaults.model.interface_length)
        self.interface_length.setToolTip("Interface length l (model units)")
        self.mean_nucleoplasm = _spin(0.01, 0.99, 3, defaults.model.mean_nucleoplasm)
        self.mean_nucleoplasm.setToolTip("Mean nucleoplasm fraction <phi_w> inside the nucleus")
        cal = defaults.calibration
        self.percentile_low = _spin(0.0, 50.0, 1, cal.percentile_low)
        self.percentile_high = _spin(50.0, 100.0, 1, cal.percentile_high)
        self.phi_h_low = _spin(0.0, 1.0, 3, cal.phi_h_low)
        self.phi_h_high = _spin(0.0, 1.0, 3, cal.phi_h_high)
        self.anchor = QComboBox()
        self.anchor.addItems(ANCHOR_CHOICES)
        self.anchor.setToolTip(
            "What sets the level of phi_h: 'percentiles' maps the low percentile onto the low "
            "phi_h; 'mean' shifts the map so that <phi_w> = Mean <phi_w> with the given "
            "euchromatin fraction phi_e. The mean rate ratio follows from this choice."
        )
        self.phi_e = _spin(0.01, 0.9, 3, 0.25)
        self.phi_e.setToolTip("Euchromatin volume fraction (uniform), used by the 'mean' level")
        for box, tip in (
            (self.percentile_low, "Density percentile mapped to the lowest phi_h"),
            (self.percentile_high, "Density percentile mapped to the highest phi_h"),
            (self.phi_h_low, "Heterochromatin fraction at the low density percentile"),
            (self.phi_h_high, "Heterochromatin fraction at the high density percentile"),
        ):
            box.setToolTip(tip)
        model_form = QFormLayout()
        model_form.addRow("phi_max", self.phi_max)
        model_form.addRow("Interface l", self.interface_length)
        model_form.addRow("Mean <phi_w>", self.mean_nucleoplasm)
        model_form.addRow("Percentiles", _row(self.percentile_low, self.percentile_high))
        model_form.addRow("phi_h range", _row(self.phi_h_low, self.phi_h_high))
        model_form.addRow("Level from", self.anchor)
        # a row of its own: next to the combo box a narrow dock squeezed its value out of sight
        model_form.addRow("phi_e", self.phi_e)
        model_box = QGroupBox("Model and calibration")
        model_box.setLayout(model_form)

        # --- estimator -------------------------------------------------------------------
        self.width_nm = _spin(0.0, 100_000.0, 1, 0.0, " nm")
        self.width_nm.setSpecialValueText("auto")
        self.width_nm.setToolTip("Mollifier support radius in nm; 'auto' chooses it from the data")
        self.method = QComboBox()
        self.method.addItems(METHOD_CHOICES)
        self.method.setToolTip("direct: instant weak-form preview; pinn: mollified PINN training")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(defaults.seed)
        self.backbone = QComboBox()
        self.backbone.addItems(BACKBONE_CHOICES)
        self.backbone.setCurrentText(defaults.backbone)
        self.steps = QSpinBox()
        self.steps.setRange(1, 1_000_000)
        self.steps.setValue(defaults.steps)
        self.steps.setToolTip("Training steps (total over the ensemble)")
        self.ensemble = QSpinBox()
        self.ensemble.setRange(1, 32)
        self.ensemble.setValue(defaults.ensemble_size)
        self.ensemble.setToolTip("Ensemble members; 2 or more give the uncertainty map")
        self.patch_size = QSpinBox()
        self.patch_size.setRange(8, 4096)
        self.patch_size.setValue(defaults.patch_size)
        self.patch_size.setSuffix(" px")
        self.device = QComboBox()
        self.device.addItems(DEVICE_CHOICES)
        self.device_label = QLabel("")
        self.device_label.setWordWrap(True)
        method_form = QFormLayout()
        method_form.addRow("Mollifier width", self.width_nm)
        method_form.addRow("Method", self.method)
        method_form.addRow("Seed", self.seed)
        pinn_form = QFormLayout()
        pinn_form.addRow("Backbone", self.backbone)
        pinn_form.addRow("Steps", self.steps)
        pinn_form.addRow("Ensemble", self.ensemble)
        pinn_form.addRow("Patch size", self.patch_size)
        pinn_form.addRow("Device", self.device)
        # below the form, not in it: a word-wrapped label in a QFormLayout row gets one line's
        # height and its second line is clipped
        pinn_layout = QVBoxLayout()
        pinn_layout.addLayout(pinn_form)
        pinn_layout.addWidget(self.device_label)
        self.pinn_box = QGroupBox("PINN")
        self.pinn_box.setLayout(pinn_layout)
        method_box = QGroupBox("Estimator")
        method_box.setLayout(method_form)

        # --- run -------------------------------------------------------------------------
        self.run_button = QPushButton("Infer rates")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        # a bar in the widget too: napari's activity dock is collapsed by default
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setVisible(False)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.addLayout(input_form)
        layout.addWidget(model_box)
        layout.addWidget(method_box)
        layout.addWidget(self.pinn_box)
        layout.addLayout(_row(self.run_button, self.stop_button))
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addStretch(1)
        # napari docks a widget at its size hint, which the two-box rows (percentiles, phi_h
        # range) overflow: their spin boxes were clipped until a long status line widened it
        self.setMinimumWidth(MIN_WIDTH_PX)

        # --- signals ---------------------------------------------------------------------
        self.run_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.layer_combo.currentTextChanged.connect(self._on_layer_selected)
        self.method.currentTextChanged.connect(self._on_method_changed)
        self.anchor.currentTextChanged.connect(self._on_anchor_changed)
        self._on_anchor_changed(self.anchor.currentText())
        self.device.currentTextChanged.connect(self._on_device_changed)
        events = self.viewer.layers.events
        events.inserted.connect(self._refresh_layers)
        events.removed.connect(self._refresh_layers)
        events.reordered.connect(self._refresh_layers)
        events.inserted.connect(self._watch_names)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_layers)
        self._refresh_layers()
        self._on_method_changed(self.method.currentText())

    # --- layer picker ------------------------------------------------------------------
    def image_layers(self) -> list:
        """2D-displayable image layers that can be inferred (not our own result maps)."""
        from napari.layers import Image

        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image) and not layer.rgb and MAP_KEY not in layer.metadata
        ]

    def _watch_names(self, event) -> None:
        event.value.events.name.connect(self._refresh_layers)

    def _refresh_layers(self, event=None) -> None:
        current = self.layer_combo.currentText()
        names = [layer.name for layer in self.image_layers()]
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        if current in names:
            self.layer_combo.setCurrentText(current)
        elif names:
            # prefer a density layer this plugin opened, else the top-most image
            densities = [
                layer.name
                for layer in self.image_layers()
                if layer.metadata.get(KIND_KEY) == "density"
            ]
            self.layer_combo.setCurrentText(densities[-1] if densities else names[-1])
        self.layer_combo.blockSignals(False)
        if self.layer_combo.currentText() != current:
            self._on_layer_selected(self.layer_combo.currentText())

    def selected_layer(self):
        name = self.layer_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _on_layer_selected(self, name: str) -> None:
        layer = self.selected_layer()
        if layer is None:
            self.pixel_hint.setText("")
            return
        meta_px = layer.metadata.get("pixel_size_nm")
        scale = [float(s) for s in layer.scale[-2:]]
        if meta_px:
            self.pixel_size.setValue(float(meta_px))
            self.pixel_hint.setText("from the file's pixel size")
        elif not np.allclose(scale, 1.0):
            self.pixel_size.setValue(scale[-1])
            self.pixel_hint.setText("from the layer scale")
        else:
            self.pixel_hint.setText(
                "<span style='color:orange'>the layer has no physical scale: "
                "enter the pixel size in nm</span>"
            )

    def _on_anchor_changed(self, anchor: str) -> None:
        self.phi_e.setEnabled(anchor == "mean")

    # --- method / device ------------------------------------------------------------------
    def _on_method_changed(self, method: str) -> None:
        is_pinn = method != "direct"
        self.pinn_box.setEnabled(is_pinn)
        if is_pinn and not self._device_checked:
            self._on_device_changed(self.device.currentText())

    def _on_device_changed(self, name: str) -> None:
        """Show which torch device a PINN run would use and why (imports torch lazily)."""
        if self.method.currentText() == "direct":
            self.device_label.setText("")
            return
        self._device_checked = True
        self.device_label.setText(describe_device(name))

    # --- config ------------------------------------------------------------------------
    def config(self) -> InferenceConfig:
        """The :class:`InferenceConfig` the widget's fields describe (raises ValueError)."""
        from .inverse.config import InferenceConfig
        from .physics.params import CalibrationParams, ModelParams

        nm_per_unit = float(self.nm_per_unit.value())
        width_nm = float(self.width_nm.value())
        model = ModelParams(
            phi_max=float(self.phi_max.value()),
            interface_length=float(self.interface_length.value()),
            mean_nucleoplasm=float(self.mean_nucleoplasm.value()),
            nm_per_unit=nm_per_unit,
        )
        calibration = CalibrationParams(
            percentile_low=float(self.percentile_low.value()),
            percentile_high=float(self.percentile_high.value()),
            phi_h_low=float(self.phi_h_low.value()),
            phi_h_high=float(self.phi_h_high.value()),
            anchor=self.anchor.currentText(),
            phi_e=float(self.phi_e.value()) if self.anchor.currentText() == "mean" else None,
        )
        pinn = {
            "backbone": self.backbone.currentText(),
            "steps": int(self.steps.value()),
            "ensemble_size": int(self.ensemble.value()),
            "patch_size": int(self.patch_size.value()),
        }
        return InferenceConfig(
            method=self.method.currentText(),
            mollifier_width=(width_nm / nm_per_unit) if width_nm > 0 else None,
            model=model,
            calibration=calibration,
            pinn=pinn,
            device=self.device.currentText(),
            seed=int(self.seed.value()),
            pixel_size_nm=float(self.pixel_size.value()),
        )

    # --- running -------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self.worker is not None

    def start(self) -> None:
        """Validate the inputs and start the worker (main thread)."""
        if self.is_running:
            return
        self.last_error = None
        self.last_event = None
        try:
            layer = self.selected_layer()
            if layer is None:
                raise ValueError("no image layer selected: open a density image first")
            image = _layer_image(layer)
            config = self.config()
        except ValueError as exc:
            self._fail(str(exc))
            return
        from napari.qt.threading import create_worker
        from napari.utils import cancelable_progress

        from .inverse.events import StopToken

        self._source_layer = layer
        self._stop_token = StopToken()
        total = 1 if config.method == "direct" else int(config.pinn.steps)
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(0)
        self.progress_bar.setVisible(True)
        self._progress = cancelable_progress(
            total=total, desc=f"Infer rates ({config.method})", cancel_callback=self.stop
        )
        self._paused_indicators = _pause_activity_animation(self.window())
        origin = tuple(float(t) for t in layer.translate[-2:])
        self.worker = create_worker(
            run_inference,
            image,
            float(self.pixel_size.value()),
            origin,
            config,
            stop=self._stop_token,
            source=layer.name,
            _start_thread=False,
            _connect={"errored": self._on_error},
        )
        # "errored" is connected through _connect so that the worker does not also re-raise the
        # exception in the main thread; _on_error turns it into a notification
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(self._on_result)
        self.worker.finished.connect(self._on_finished)
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText(f"Running {config.method} on {layer.name!r}...")
        self.worker.start()

    def stop(self) -> None:
        """Ask the estimator to stop; it returns the best result so far."""
        if self._stop_token is not None:
            self._stop_token.set()
            self.status.setText("Stopping: finishing the best result so far...")
            self.stop_button.setEnabled(False)

    def _on_progress(self, event) -> None:
        self.last_event = event
        self.status.setText(format_progress(event))  # first: see below
        if event.total and self.progress_bar.maximum() != int(event.total):
            self.progress_bar.setRange(0, int(event.total))
        self.progress_bar.setValue(min(int(event.step), self.progress_bar.maximum()))
        # updating napari's bar can process queued Qt events ("returned", "finished") right
        # here: hence the local reference, and the status text set before
        pbar = self._progress
        if pbar is not None and not pbar.disable:
            if event.total and pbar.total != event.total:
                pbar.total = int(event.total)
            if event.step > pbar.n:
                pbar.update(int(event.step) - int(pbar.n))
            if event.message:
                pbar.set_description(f"Infer rates: {event.message}")

    def _on_result(self, result) -> None:
        self.last_result = result
        layer = self._source_layer
        if layer is None or layer not in self.viewer.layers:
            self.status.setText("The source layer was removed; result not shown.")
            return
        self.add_result_layers(result, layer)
        elapsed = self.last_event.elapsed_s if self.last_event is not None else None
        self.status.setText(format_summary(result, elapsed_s=elapsed))

    def _on_error(self, exc: Exception) -> None:
        # ValueErrors are the library's "bad input" messages; anything else gets its type
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        self._fail(message)

    def _fail(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.last_error = message
        self.status.setText(f"<span style='color:#e05050'>Error: {message}</span>")
        show_error(f"Infer rates: {message}")

    def _on_finished(self) -> None:
        self.progress_bar.setVisible(False)
        if self._progress is not None:
            self._progress.close()
        self._progress = None
        for movie in self._paused_indicators:
            if movie.state() == QMovie.MovieState.Paused:  # napari stops it when nothing runs
                movie.setPaused(False)
        self._paused_indicators = []
        self.worker = None
        self._stop_token = None
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)

    # --- result layers ---------------------------------------------------------------------
    def add_result_layers(self, result: RateMaps, source) -> list:
        """Add (or update) the result maps as image layers aligned with ``source``.

        Returns the layers in :data:`MAP_NAMES` order (uncertainty only when the method gives
        one). Each layer's metadata holds ``result.full_metadata()`` (config, versions, device,
        seed, timings, diagnostics) plus the map name, a result id and the source layer name.
        """
        from .inverse.result import MAP_NAMES

        maps = result.maps()
        common = result.full_metadata()
        common[SOURCE_KEY] = source.name
        common[RESULT_ID_KEY] = uuid.uuid4().hex
        common[KIND_KEY] = "rate_map"
        layers = []
        # companions first and hidden, the ratio last so it sits on top of the density
        for map_name in (*[m for m in MAP_NAMES if m != "ratio"], "ratio"):
            if map_name == "uncertainty" and result.uncertainty is None:
                continue
            data = maps[map_name]
            style = MAP_STYLE[map_name]
            limits = robust_limits(data, 1.0, 99.0)
            if style["symmetric"]:
                half = max(abs(limits[0]), abs(limits[1]))
                limits = (-half, half)
            elif map_name == "ratio" and limits[1] > 0:
                limits = (max(limits[0], 0.0), limits[1])  # a rate ratio is positive
            kwargs = {
                "scale": tuple(source.scale[-2:]),
                "translate": tuple(source.translate[-2:]),
                "units": tuple(source.units[-2:]),
                "colormap": style["colormap"],
                "contrast_limits": limits,
                "metadata": {**common, MAP_KEY: map_name},
                "opacity": 0.75 if map_name == "ratio" else 1.0,
                "visible": map_name == "ratio",
            }
            name = f"{source.name} {map_name}"
            if name in self.viewer.layers and MAP_KEY in self.viewer.layers[name].metadata:
                layer = self.viewer.layers[name]
                layer.data = data
                for key in ("scale", "translate", "contrast_limits", "metadata"):
                    setattr(layer, key, kwargs[key])
            else:
                layer = self.viewer.add_image(data, name=name, **kwargs)
                if map_name == "ratio" and hasattr(layer, "colorbar"):
                    layer.colorbar.visible = True  # the ratio scale belongs with the map
            layers.append(layer)
        return layers[-1:] + layers[:-1]

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.stop()
        super().closeEvent(event)


# --- helpers (no viewer access) -------------------------------------------------------------
def _layer_image(layer) -> np.ndarray:
    """A float64 (H, W) copy of an image layer's data, or a ValueError naming the layer."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
    array = np.asarray(data)
    array = np.squeeze(array)
    if array.ndim != 2:
        raise ValueError(
            f"layer {layer.name!r}: expected a 2D (Y, X) density image, found shape "
            f"{np.shape(layer.data)}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"layer {layer.name!r}: expected real numbers, found dtype {array.dtype}")
    array = array.astype(np.float64, copy=True)
    if not np.isfinite(array).any():
        raise ValueError(f"layer {layer.name!r}: the image holds no finite values")
    return array


_SOFTWARE_GL_NAMES = ("llvmpipe", "softpipe", "swiftshader", "software", "gdi generic",
                      "basic render")  # fmt: skip


@functools.cache
def software_opengl() -> bool:
    """True when napari draws with a software OpenGL renderer (Mesa llvmpipe and the like).

    Typical of virtual machines, remote desktops and Xvfb. Any failure to ask (no GL context,
    a napari without the helper) counts as "not software". Asked once per process: the
    renderer does not change while napari runs.
    """
    try:
        from napari._vispy.utils.gl import _opengl_context
        from vispy.gloo import gl

        with _opengl_context():
            renderer = str(gl.glGetParameter(gl.GL_RENDERER)).lower()
    except Exception:  # noqa: BLE001 - a query that fails must not break a run
        return False
    return any(name in renderer for name in _SOFTWARE_GL_NAMES)


def _pause_activity_animation(window: QWidget) -> list:
    """Pause the spinning "in progress" GIF of napari's status bar, on software OpenGL only.

    Each of its frames re-composites the GL window; with llvmpipe on a 2-core machine that took
    enough CPU from the training to make a PINN run 1.7x slower (39 s against 23 s, 400 steps
    on the sample, PyQt6). The progress bar in the activity dock keeps updating. ``window``: the
    top-level window the widget is docked in (``QWidget.window()``). Returns the paused
    movies, to resume when the run ends; an empty list where nothing was paused.
    """
    if not software_opengl():
        return []
    try:  # napari private widgets: a napari that changed them just keeps its animation
        from napari._qt.dialogs.qt_activity_dialog import ActivityToggleItem

        movies = [
            item._inProgressIndicator.movie() for item in window.findChildren(ActivityToggleItem)
        ]
    except Exception:  # noqa: BLE001
        return []
    paused = []
    for movie in movies:
        if movie is not None:
            movie.setPaused(True)
            paused.append(movie)
    return paused


def describe_device(name: str) -> str:
    """ "Uses cpu: <reason>" for a device choice; imports torch (lazily) to find out."""
    try:
        from .inverse.device import resolve_device
    except ImportError:  # pragma: no cover - the PINN part is missing from this install
        return "device check not available in this install"
    try:
        device, reason = resolve_device(name)
    except ValueError as exc:  # DeviceError: an explicit device that is not available
        return f"<span style='color:#e05050'>{exc}</span>"
    return f"uses <b>{device}</b>: {reason}"


def format_progress(event) -> str:
    """One-line live readout: step, losses, elapsed time, message."""
    parts = []
    if event.total and event.total > 1:
        parts.append(f"step {event.step}/{event.total}")
    for key, value in list((event.losses or {}).items())[:4]:
        if isinstance(value, (int, float)) and math.isfinite(value):
            parts.append(f"{key} {value:.3g}")
    parts.append(f"{event.elapsed_s:.1f} s")
    if event.message:
        parts.append(event.message)
    return " · ".join(parts)


def format_summary(result, elapsed_s: float | None = None) -> str:
    """Short description of a finished result for the status line.

    The device's reason (e.g. why "auto" chose the CPU) is left to the device row and the
    result's metadata; ``elapsed_s`` is the run's wall time from its last progress event.
    """
    summary = result.summary()
    meta = result.metadata or {}
    nbsp = "\u00a0"  # keeps numbers with their units when the status line wraps
    text = f"Done: {summary.get('n_valid', 0)} valid pixels"
    if summary.get("n_valid"):
        text += (
            f"; median ratio {summary['ratio_median']:.3g},"
            f" p5{nbsp}{summary.get('ratio_p05', float('nan')):.3g},"
            f" p95{nbsp}{summary.get('ratio_p95', float('nan')):.3g}"
        )
    width = meta.get("mollifier_width")
    if isinstance(width, (int, float)):
        text += f"; width {width * result.config.model.nm_per_unit:.0f}{nbsp}nm"
    if meta.get("device"):
        text += f"; device {meta['device']}"
    if elapsed_s is not None and math.isfinite(elapsed_s):
        text += f"; {elapsed_s:.1f}{nbsp}s"
    if (result.diagnostics or {}).get("stopped"):
        text += f"; stopped at step {result.diagnostics.get('steps_done')}"
    return text


def _spin(low: float, high: float, decimals: int, value: float, suffix: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setValue(value)
    box.setSingleStep(10 ** (-decimals + 1) if decimals > 1 else 1.0)
    if suffix:
        box.setSuffix(suffix)
    return box


def _row(*widgets) -> QHBoxLayout:
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row
