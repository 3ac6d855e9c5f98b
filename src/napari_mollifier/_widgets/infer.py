"""The "Infer rates" dock widget: a magicgui form generated from the inference config.

Pick the input (a density Image layer or a localisation Points layer) and, optionally, a Labels
layer as the nucleus mask (each label one nucleus). "Infer rates" runs the mollified PINN,
"Preview" the direct estimator (seconds). The run is a napari thread worker (progress here and in
napari's activity dock; Stop returns the best result so far; closing the widget stops it); every
viewer change happens in the worker's signal handlers, on the main thread. The config can be
loaded from / saved to the YAML the batch runner takes (or any output's JSON sidecar).

torch and the engine are imported in the worker (or when a device is described), never when this
module is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui import widgets

from .config_form import ConfigForm
from .file_actions import FileActions
from .inputs import (
    PLANE_CHOICES,
    is_result_layer,
    is_stack,
    layer_origin_nm,
    layer_pixel_size_nm,
    plane_of,
    render_layer_data,
)
from .layers import add_nuclei_layer, add_result_layers, format_progress, format_summary
from .qt_glue import mask_array, scroll_form, stop_on_close

if TYPE_CHECKING:  # pragma: no cover
    import napari

#: Methods of the two run buttons: "Infer rates" keeps a PINN variant of a loaded config.
PINN_METHODS = ("pinn", "pinn-autodiff")
#: Config fields set by the buttons (method) or by the code (layout version), not in the form.
BUTTON_FIELDS = ("method", "version")
#: Fields the form does not show: buttons set them, or they concern files, not layers (napari's
#: own sliders pick the plane of a stack layer).
HIDDEN_FIELDS = (*BUTTON_FIELDS, "z_plane")
NO_MASK = "none"


class InferRatesWidget(FileActions, widgets.Container):
    """The dock widget (npe2 command ``napari-mollifier.make_infer_widget``)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        from ..inverse.config import InferenceConfig

        self.viewer = napari_viewer
        self.worker = None
        self.last_result = None
        self.last_error: str | None = None
        self.last_event = None
        self._stop_token = None
        self._live_tokens: list = []  # held apart: set even while the widget is torn down
        self._progress = None
        self._source_layer = None
        self._mask_layer = None

        self.input = widgets.ComboBox(
            label="Input",
            choices=self._input_choices,
            tooltip="Density image (Image layer) or localisations (Points layer)",
        )
        self.mask = widgets.ComboBox(
            label="Nucleus mask",
            choices=self._mask_choices,
            tooltip="Optional Labels layer: every label is one nucleus, inferred in turn",
        )
        self.plane = widgets.ComboBox(
            label="Z plane",
            choices=PLANE_CHOICES,
            visible=False,
            tooltip="The input is a stack: use the plane shown in the viewer, or a projection",
        )
        self.hint = widgets.Label(value="")
        self.form = ConfigForm(InferenceConfig(method="pinn"), exclude=HIDDEN_FIELDS)
        self.device_info = widgets.Label(value="")
        self.run_button = widgets.PushButton(text="Infer rates", tooltip="Mollified PINN")
        self.preview_button = widgets.PushButton(
            text="Preview", tooltip="Direct weak-form estimator: an instant first map"
        )
        self.stop_button = widgets.PushButton(text="Stop", enabled=False)
        self.render_button = widgets.PushButton(
            text="Render localisations", visible=False, tooltip="Render again with the settings"
        )
        self.load_button = widgets.PushButton(text="Load config...")
        self.save_button = widgets.PushButton(text="Save config...")
        self.save_results_button = widgets.PushButton(text="Save results...", enabled=False)
        self.progress_bar = widgets.ProgressBar(min=0, max=1, value=0, visible=False)
        self.status = widgets.Label(value="Ready.")
        self.table = widgets.Table(visible=False, label="Nuclei")
        for label in (self.hint, self.status, self.device_info):
            label.native.setWordWrap(True)

        self.extend(
            [
                widgets.Container(widgets=[self.input, self.mask, self.plane]),
                self.hint,
                self.render_button,
                self.device_info,
                widgets.Container(
                    widgets=[self.run_button, self.preview_button, self.stop_button],
                    layout="horizontal",
                    labels=False,
                ),
                self.progress_bar,
                self.status,
                self.table,
                widgets.Container(
                    widgets=[self.load_button, self.save_button, self.save_results_button],
                    layout="horizontal",
                    labels=False,
                ),
            ]
        )
        scroll_form(self)
        self.run_button.changed.connect(lambda: self.start("pinn"))
        self.preview_button.changed.connect(lambda: self.start("direct"))
        self.stop_button.changed.connect(self.stop)
        self.render_button.changed.connect(lambda: self.render_points())
        self.load_button.changed.connect(self._ask_load)
        self.save_button.changed.connect(self._ask_save)
        self.save_results_button.changed.connect(self._ask_save_results)
        self.input.changed.connect(self._on_input_changed)
        self.form.widget_for("device").changed.connect(self._on_device_changed)
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self._refresh)
        events.inserted.connect(self._watch_name)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh)
        stop_on_close(self)
        self._refresh()

    # --- layer pickers ----------------------------------------------------------------------
    def _input_choices(self, _widget=None) -> list[tuple[str, object]]:
        from napari.layers import Image, Points

        return [
            (layer.name, layer)
            for layer in reversed(self.viewer.layers)
            if isinstance(layer, (Image, Points)) and not is_result_layer(layer)
        ]

    def _mask_choices(self, _widget=None) -> list[tuple[str, object]]:
        from napari.layers import Labels

        labels = [(lay.name, lay) for lay in self.viewer.layers if isinstance(lay, Labels)]
        return [(NO_MASK, None), *labels]

    def _watch_name(self, event) -> None:
        event.value.events.name.connect(self._refresh)

    def _refresh(self, event=None) -> None:
        current = self.input.value
        self.reset_choices()
        if (
            current is not None
            and current in self.viewer.layers
            and current is not self.input.value
        ):
            self.input.value = current
        self._on_input_changed(self.input.value)

    def select_layer(self, layer) -> None:
        """Make ``layer`` (an Image or Points layer of the viewer) the input."""
        self.reset_choices()
        self.input.value = layer

    def select_mask(self, layer) -> None:
        """Use a Labels layer as the nucleus mask (None: no mask)."""
        self.reset_choices()
        self.mask.value = layer

    def _on_input_changed(self, layer) -> None:
        from napari.layers import Points

        points = isinstance(layer, Points)
        self.render_button.visible = points
        self.plane.visible = layer is not None and not points and is_stack(layer)
        hint = ""
        if layer is None:
            hint = "Open a density image or localisations (File > Open, or File > Open Sample)."
        elif points:
            meta = layer.metadata or {}
            if meta.get("camera_pixels") and not self.config().pixel_size_nm:
                hint = "Camera-pixel localisations: enter the camera pixel size (Pixel size)."
            else:
                hint = "Localisations: rendered with the render settings below."
        else:
            px = layer_pixel_size_nm(layer)
            box = self.form.widget_for("pixel_size_nm")
            if px is not None:
                box.value = px
                hint = f"Pixel size {px:g} nm from the layer."
            elif not self.config().pixel_size_nm:
                hint = f"{layer.name!r} has no physical scale: enter its pixel size in nm."
        self.hint.value = hint

    def _on_device_changed(self, name: str) -> None:
        from ..inverse.device import resolve_device

        try:
            device, reason = resolve_device(name)
        except ValueError as exc:  # an explicit device that is not available
            self.device_info.value = str(exc)
            return
        self.device_info.value = f"Device {device}: {reason}"

    # --- configuration ------------------------------------------------------------------
    def config(self):
        """The :class:`InferenceConfig` the form shows (raises ValueError on a bad value)."""
        return self.form.value

    def set_config(self, config) -> None:
        self.form.set_value(config)
        self._on_input_changed(self.input.value)

    # --- localisations ------------------------------------------------------------------
    def render_points(self, layer=None, config=None):
        """Render a Points layer to its density layer (replaced if it exists); returns it."""
        from napari.layers import Points

        layer = self.input.value if layer is None else layer
        if not isinstance(layer, Points):
            raise ValueError("select a Points layer of localisations to render")
        config = self.config() if config is None else config
        data, kwargs, _ = render_layer_data(layer, config)
        name = kwargs.pop("name")
        if name in self.viewer.layers:
            target = self.viewer.layers[name]
            target.data = data
            for key in ("scale", "translate", "contrast_limits", "metadata"):
                setattr(target, key, kwargs[key])
        else:
            target = self.viewer.add_image(data, name=name, **kwargs)
        self.status.value = (
            f"Rendered {kwargs['metadata']['n_localisations']} localisations at "
            f"{config.render.pixel_size_nm:g} nm ({config.render.method})."
        )
        return target

    # --- running ------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self.worker is not None

    def _prepare(self, method: str):
        """(image layer, image, pixel size nm, origin nm, labels, config, note) or ValueError."""
        from napari.layers import Points

        config = self.config()
        if method != "direct":
            method = config.method if config.method in PINN_METHODS else "pinn"
        layer = self.input.value
        if layer is None:
            raise ValueError("no input layer: open a density image or localisations first")
        if isinstance(layer, Points):
            layer = self.render_points(layer, config)
        image, note = plane_of(layer, self.viewer, self.plane.value)
        px = config.pixel_size_nm or layer_pixel_size_nm(layer)
        if px is None:
            raise ValueError(
                f"layer {layer.name!r} has no pixel size: enter it in 'Pixel size (nm)'"
            )
        labels = None
        self._mask_layer = self.mask.value
        if self._mask_layer is not None:
            labels = mask_array(self._mask_layer, image.shape)
        config = config.replace(method=method, pixel_size_nm=float(px))
        return layer, image, float(px), layer_origin_nm(layer), labels, config, note

    def start(self, method: str = "pinn") -> None:
        """Validate the inputs and start the worker (main thread). ``method``: "pinn" / "direct"."""
        if self.is_running:
            return
        self.last_error = None
        self.last_event = None
        try:
            layer, image, px, origin, labels, config, note = self._prepare(method)
        except ValueError as exc:
            self._fail(str(exc))
            return
        from napari.qt.threading import create_worker
        from napari.utils import cancelable_progress

        from ..inverse.events import StopToken
        from .run import run_inference

        self._source_layer = layer
        self._stop_token = StopToken()
        self._live_tokens[:] = [self._stop_token]
        n_runs = 1 if labels is None else max(len(set(labels.ravel().tolist()) - {0}), 1)
        total = n_runs * (1 if config.method == "direct" else int(config.pinn.steps))
        self.progress_bar.max = max(total, 1)
        self.progress_bar.value = 0
        self.progress_bar.visible = True
        self._progress = cancelable_progress(
            total=total, desc=f"Infer rates ({config.method})", cancel_callback=self.stop
        )
        self.worker = create_worker(
            run_inference,
            image,
            px,
            origin,
            config,
            labels=labels,
            stop=self._stop_token,
            source=layer.name,
            _start_thread=False,
            _connect={"errored": self._on_error},
        )
        # "errored" through _connect so the worker does not re-raise in the main thread
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(self._on_result)
        self.worker.finished.connect(self._on_finished)
        for button in (self.run_button, self.preview_button, self.render_button):
            button.enabled = False
        self.stop_button.enabled = True
        where = f" ({note})" if note else ""
        self.status.value = f"Running {config.method} on {layer.name!r}{where}..."
        self.worker.start()

    def stop(self) -> None:
        """Ask the estimator to stop; it returns the best result so far."""
        if self._stop_token is not None:
            self._stop_token.set()
            self.status.value = "Stopping: finishing the best result so far..."
            self.stop_button.enabled = False

    def _on_progress(self, event) -> None:
        self.last_event = event
        self.status.value = format_progress(event)  # first: see below
        if event.total and self.progress_bar.max != int(event.total):
            self.progress_bar.max = int(event.total)
        self.progress_bar.value = min(int(event.step), self.progress_bar.max)
        # updating napari's bar can process queued Qt events ("returned", "finished") here:
        # hence the local reference, and the status set before
        pbar = self._progress
        if pbar is not None and not pbar.disable:
            if event.total and pbar.total != event.total:
                pbar.total = int(event.total)
            if event.step > pbar.n:
                pbar.update(int(event.step) - int(pbar.n))
            if event.message:
                pbar.set_description(f"Infer rates: {event.message}"[:80])

    def _on_result(self, result) -> None:
        self.last_result = result
        layer = self._source_layer
        if layer is None or layer not in self.viewer.layers:
            self.status.value = "The source layer was removed; result not shown."
            return
        add_result_layers(self.viewer, result, layer)
        rows = result.metadata.get("nuclei")
        self.table.visible = bool(rows)
        if rows:
            self.table.value = {k: [r[k] for r in rows] for k in rows[0]}
            if self._mask_layer is not None and self._mask_layer in self.viewer.layers:
                add_nuclei_layer(self.viewer, rows, self._mask_layer, layer)
        self.save_results_button.enabled = True
        elapsed = self.last_event.elapsed_s if self.last_event is not None else None
        self.status.value = format_summary(result, elapsed_s=elapsed)

    def _on_error(self, exc: Exception) -> None:
        # ValueErrors are the library's "bad input" messages; anything else gets its type
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        self._fail(message)

    def _fail(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.last_error = message
        self.status.value = f"Error: {message}"
        show_error(f"Infer rates: {message}")

    def _on_finished(self) -> None:
        self.progress_bar.visible = False
        if self._progress is not None:
            self._progress.close()
        self._progress = None
        self.worker = None
        self._stop_token = None
        self._live_tokens.clear()
        for button in (self.run_button, self.preview_button, self.render_button):
            button.enabled = True
        self.stop_button.enabled = False
