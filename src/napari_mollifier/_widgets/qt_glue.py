"""Small Qt pieces of the Infer rates widget: the scroll area, stop-on-close, mask arrays."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .infer import InferRatesWidget


def mask_array(layer, shape) -> object:
    import numpy as np

    data = np.asarray(layer.data[0] if getattr(layer, "multiscale", False) else layer.data)
    data = np.squeeze(data)
    if data.shape != tuple(shape):
        raise ValueError(
            f"nucleus mask {layer.name!r}: expected labels of the image's shape {tuple(shape)}, "
            f"found {data.shape}"
        )
    return data.astype(np.int64, copy=True)


#: Least height (pixels) of the scrolled form: the rest of the widget stays in view below it.
FORM_MIN_HEIGHT_PX = 220


def scroll_form(widget: InferRatesWidget) -> None:
    """Put the generated form in a vertical scroll area above the device line.

    The form has a row per config field (over 30): unscrolled it made napari's main window
    taller than a laptop screen. napari docks ``widget.native``, so magicgui's own
    ``scrollable`` (a scroll area around ``native``) does not apply there.
    """
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea

    scroll = QScrollArea()
    scroll.setObjectName("config form")
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(widget.form.native)
    bar = scroll.verticalScrollBar().sizeHint().width()
    scroll.setMinimumWidth(widget.form.native.minimumSizeHint().width() + bar)
    scroll.setMinimumHeight(FORM_MIN_HEIGHT_PX)
    layout = widget.native.layout()
    layout.insertWidget(layout.indexOf(widget.device_info.native), scroll, 1)
    widget._form_scroll = scroll


def stop_on_close(widget: InferRatesWidget) -> None:
    """Closing (or deleting) the widget stops a running inference."""
    from qtpy.QtCore import QEvent, QObject

    class _CloseWatcher(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt API
            if event.type() == QEvent.Type.Close:
                widget.stop()
            return False

    watcher = _CloseWatcher(widget.native)
    widget.native.installEventFilter(watcher)
    tokens = widget._live_tokens
    widget.native.destroyed.connect(lambda *_: [token.set() for token in tokens])
    widget._close_watcher = watcher
