"""A magicgui form generated from a configuration dataclass (nested sections become groups).

Nothing here is laid out by hand: each dataclass field becomes one magicgui widget chosen from
its type (bool -> CheckBox, int -> SpinBox, float -> FloatSpinBox, ``float | None`` -> a spin
box whose lowest value reads "auto" and means None, str -> ComboBox when the field has allowed
values, else LineEdit) and each nested dataclass a titled sub-form. The rules come from the
field's metadata as :func:`napari_mollifier.schema.option` writes it: ``choices`` (a tuple or a
function returning one), ``low`` / ``high`` (spin-box bounds), ``doc`` and ``unit`` (tooltip);
a ``Literal[...]`` annotation or :data:`CHOICES` (fields whose values are checked by a function,
such as the device, which also takes ``cuda:N``) give choices too. Tooltips also take the class
docstring's Attributes section. A field added to the config therefore appears in the widget
without any widget code.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing

from magicgui import widgets

#: Labels of the spin boxes of ``float | None`` fields at their lowest value (None).
AUTO_TEXT = "auto"
#: Spin-box upper bounds for fields without metadata bounds: this many times the default, at
#: least the floor. A spin box is as wide as its longest value, so 1e9 everywhere would make the
#: form wider than napari's dock.
_MAX_OVER_DEFAULT = 1000
_INT_MAX_FLOOR = 1_000_000
_FLOAT_MAX_FLOOR = 1000.0


def _choices_table() -> dict[str, tuple]:
    """Drop-down values of fields the schema checks with a function rather than a list."""
    from ..choices import DEVICES

    return {"device": tuple(DEVICES)}


CHOICES: dict[str, tuple] = {}


def field_docs(cls) -> dict[str, str]:
    """{field name: description} from a numpydoc "Attributes" section of ``cls.__doc__``.

    An entry may name several fields ("backbone, steps : ..."): each gets the description.
    """
    doc = cls.__doc__ or ""
    out: dict[str, str] = {}
    names: list[str] = []
    for line in doc.splitlines():
        head = re.match(r"^\s{4}([a-z_][\w, ]*?)(\s:\s.*)?$", line)
        if head and not line.startswith(" " * 8):
            names = [n.strip() for n in head.group(1).split(",") if n.strip()]
            continue
        text = line.strip()
        if names and text and line.startswith(" " * 8):
            for name in names:
                out[name] = f"{out.get(name, '')} {text}".strip()
        elif not text:
            names = []
    return out


def _unit(meta: dict) -> str:
    unit = meta.get("unit")
    return f"({unit})" if unit else ""


def _bounds(meta: dict, current, floor: float, optional: bool) -> tuple[float, float]:
    """Spin-box range: the schema's ``low`` / ``high``, else from the default (see module)."""
    reference = abs(current) if isinstance(current, (int, float)) and current else 1.0
    high = meta.get("high")
    if high is None:
        high = max(floor, _MAX_OVER_DEFAULT * reference)
    high = min(high, max(floor, _MAX_OVER_DEFAULT * reference))  # 2^32 seeds: not that wide
    low = meta.get("low")
    if low is None:
        low = 0 if optional or (current or 0) >= 0 else -high
    return low, max(high, current if isinstance(current, (int, float)) else high)


_ACRONYMS = {"pinn": "PINN", "lr": "LR"}


def _label(name: str) -> str:
    """``render_pixel_size_nm`` -> "Render pixel size (nm)"; units and symbols stay lower case."""
    words = [_ACRONYMS.get(w, w) for w in name.removesuffix("_nm").split("_")]
    label = " ".join(words) + (" (nm)" if name.endswith("_nm") else "")
    return label if words[0] in ("nm", "phi", "l") else label[:1].upper() + label[1:]


def _unwrap_optional(annotation) -> tuple[object, bool]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def hints_of_union(annotation, optional: bool) -> tuple[tuple, bool]:
    """(allowed types, optional) of a field shown as free text (e.g. ``int | str | None``)."""
    args = typing.get_args(annotation) or (annotation,)
    kinds = tuple(a for a in args if a is not type(None))
    return kinds, optional or type(None) in args


def parse_text(text: str, kinds: tuple, optional: bool):
    """Typed value of a line edit: "" is None for optional fields, digits an int where ints are
    allowed, anything else the text (the config's own validation judges it)."""
    text = str(text).strip()
    if not text and optional:
        return None
    if int in kinds and text.lstrip("-").isdigit():
        return int(text)
    return text


class ConfigForm(widgets.Container):
    """Editable view of one configuration dataclass instance.

    ``value`` builds a new instance from the widgets (``from_dict`` of the class, so its own
    validation applies); ``set_value`` shows an instance. ``widget_for("model.nm_per_unit")``
    gives the widget of a field. ``exclude`` names fields (dotted paths) that are not shown
    (set by buttons of the surrounding widget); they keep the value of the last ``set_value``.
    """

    def __init__(self, value, exclude: tuple[str, ...] = (), prefix: str = "", **kwargs):
        # one label column per run of plain fields; a section gets a header row instead of a
        # label column of its own, so nesting does not widen the dock
        kwargs.setdefault("labels", False)
        super().__init__(**kwargs)
        if not CHOICES:
            CHOICES.update(_choices_table())
        self._cls = type(value)
        self._prefix = prefix
        self._exclude = exclude
        self._base = value
        self._fields: dict[str, widgets.Widget] = {}  # name -> widget (or sub-form)
        self._optional: set[str] = set()
        self._text: dict[str, tuple[tuple, bool]] = {}  # line-edit fields: (types, optional)
        hints = typing.get_type_hints(self._cls)
        docs = field_docs(self._cls)
        run = None
        for f in dataclasses.fields(self._cls):
            path = f"{prefix}{f.name}"
            if path in exclude:
                continue
            current = getattr(value, f.name)
            annotation, optional = _unwrap_optional(hints[f.name])
            if dataclasses.is_dataclass(annotation):
                self.append(widgets.Label(value=f"<b>{_label(f.name)}</b>"))
                sub = ConfigForm(current, exclude, prefix=f"{path}.")
                sub.native.setObjectName(path)
                self._fields[f.name] = sub
                self.append(sub)
                run = None
                continue
            if run is None:
                run = widgets.Container(labels=True)
                run.margins = (0, 0, 0, 0)
                self.append(run)
            widget = self._make(f, path, annotation, optional, current, docs.get(f.name, ""))
            self._fields[f.name] = widget
            run.append(widget)
        self.margins = (0, 0, 0, 0)

    # --- widgets per type ---------------------------------------------------------------
    def _make(self, f, path, annotation, optional, current, doc):
        meta = dict(f.metadata or {})
        options = {"label": meta.get("label") or _label(f.name), "name": path.replace(".", "__")}
        text = doc or meta.get("doc") or meta.get("help")
        tooltip = " ".join(t for t in (text, _unit(meta)) if t)
        choices = meta.get("choices")
        if callable(choices):
            choices = choices()
        if choices is None and typing.get_origin(annotation) is typing.Literal:
            choices = typing.get_args(annotation)
        if choices is None:
            choices = CHOICES.get(path)
        if choices is not None:
            values = list(choices)
            if current not in values:
                values.append(current)  # e.g. "cuda:1": shown, validated by the config
            widget = widgets.ComboBox(choices=values, value=current, **options)
        elif annotation is bool:
            widget = widgets.CheckBox(value=bool(current), **options)
        elif annotation is int:
            low, high = _bounds(meta, current, _INT_MAX_FLOOR, optional=False)
            widget = widgets.SpinBox(value=int(current), min=int(low), max=int(high), **options)
        elif annotation is float:
            widget = self._float_box(current, optional, meta, options)
            if optional:
                self._optional.add(f.name)
                tooltip = f"{tooltip} ({AUTO_TEXT} = None: chosen automatically)".strip()
        else:
            widget = widgets.LineEdit(value="" if current is None else str(current), **options)
            self._text[f.name] = hints_of_union(annotation, optional)
        if tooltip:
            widget.tooltip = tooltip
        return widget

    @staticmethod
    def _float_box(current, optional, meta, options):
        reference = abs(current) if isinstance(current, (int, float)) and current else 1.0
        step = meta.get("step", 10 ** math.floor(math.log10(reference)) / 10)
        low, high = _bounds(meta, current, _FLOAT_MAX_FLOOR, optional)
        if optional:
            low = 0.0  # the "auto" end of the box stands for None
        box = widgets.FloatSpinBox(
            value=low if current is None else float(current),
            min=low,
            max=high,
            step=step,
            **options,
        )
        box.native.setDecimals(max(box.native.decimals(), 1 - math.floor(math.log10(step))))
        if optional:
            box.native.setSpecialValueText(AUTO_TEXT)
        return box

    # --- values -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The shown values as a dict of the dataclass (excluded fields from the base)."""
        data = dataclasses.asdict(self._base)
        for name, widget in self._fields.items():
            if isinstance(widget, ConfigForm):
                data[name] = widget.to_dict()
            elif name in self._optional:
                box = widget
                data[name] = None if box.value <= box.min else float(box.value)
            elif name in self._text:
                data[name] = parse_text(widget.value, *self._text[name])
            else:
                data[name] = widget.value
        return data

    @property
    def value(self):
        return self._cls.from_dict(self.to_dict())

    def set_value(self, config) -> None:
        """Show ``config`` (an instance of the form's class) in the widgets."""
        self._base = config
        for name, widget in self._fields.items():
            current = getattr(config, name)
            if isinstance(widget, ConfigForm):
                widget.set_value(current)
            elif isinstance(widget, widgets.ComboBox):
                if current not in widget.choices:
                    widget.set_choice(str(current), current)
                widget.value = current
            elif name in self._optional:
                _fit_range(widget, current)
                widget.value = widget.min if current is None else float(current)
            elif isinstance(widget, widgets.LineEdit):
                widget.value = "" if current is None else str(current)
            else:
                _fit_range(widget, current)
                widget.value = current

    def widget_for(self, path: str) -> widgets.Widget:
        """The widget of a dotted field path, e.g. ``"calibration.phi_e"``."""
        head, _, rest = path.partition(".")
        widget = self._fields[head]
        return widget.widget_for(rest) if rest else widget

    def field_paths(self) -> list[str]:
        """Dotted paths of every shown field."""
        out = []
        for name, widget in self._fields.items():
            if isinstance(widget, ConfigForm):
                out += [f"{name}.{p}" for p in widget.field_paths()]
            else:
                out.append(name)
        return out


def _fit_range(widget, value) -> None:
    """Widen a spin box's range to hold ``value`` (a loaded config is shown, never clipped)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not hasattr(widget, "max"):
        return
    if value > widget.max:
        widget.max = value
    if value < widget.min:
        widget.min = value * 10 if value < 0 else value
