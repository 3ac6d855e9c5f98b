"""Typed configuration sections: dataclass fields that carry their own rules.

A section is a dataclass whose fields are made with :func:`option`; the rules (type from the
annotation, range, allowed values, help text) live next to the field, so the config validator,
the batch runner's error messages and the widget's form all read the same definition.

    @dataclass
    class Section:
        steps: int = option(2000, low=1, doc="optimisation steps")

:func:`validate` checks a section (and nested sections) in place and raises :class:`ConfigError`
naming the field (dotted path), what was expected and what was found. :func:`from_dict` builds
a section from a mapping (a YAML / JSON file) with unknown keys refused.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache

#: Longest value quoted back in an error message (a 10 MB value must not make a 10 MB line).
QUOTE_LIMIT = 60


class ConfigError(ValueError):
    """A configuration value of the wrong type or out of range (the message names the field)."""


def option(
    default=dataclasses.MISSING,
    *,
    factory=dataclasses.MISSING,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: tuple | Callable[[], tuple] | None = None,
    check: Callable[[object], bool] | None = None,
    expect: str = "",
    doc: str = "",
    unit: str = "",
):
    """A dataclass field with validation rules.

    ``low`` / ``high`` bound numbers (closed unless ``low_open`` / ``high_open``); ``choices``
    (a tuple or a function returning one) lists allowed values; ``check`` is an extra predicate
    described by ``expect``; ``doc`` and ``unit`` are shown as help text (widget, CLI).
    """
    meta = {
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
        "choices": choices,
        "check": check,
        "expect": expect,
        "doc": doc,
        "unit": unit,
    }
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def brief(value) -> str:
    """``repr(value)`` cut to :data:`QUOTE_LIMIT` characters."""
    text = repr(value)
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 3] + "..."


def _kind(value) -> str:
    return type(value).__name__


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def field_types(cls) -> dict[str, tuple[tuple[type, ...], bool]]:
    """``{name: (allowed types, optional)}`` of a section's fields (from the annotations)."""
    out = {}
    for name, hint in _hints(cls).items():
        args = typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            allowed = tuple(a for a in args if a is not type(None))
            out[name] = (allowed, type(None) in args)
        else:
            out[name] = ((hint,), False)
    return out


def choices_of(f: dataclasses.Field) -> tuple | None:
    choices = f.metadata.get("choices")
    return choices() if callable(choices) else choices


def _check_type(path: str, value, allowed: tuple[type, ...], optional: bool):
    """The value, converted where lossless (int -> float); ConfigError otherwise."""
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config field {path!r}: expected {_names(allowed)}, found None")
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise ConfigError(f"config field {path!r}: expected a finite number, found {value}")
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    found = f"{_kind(value)} {brief(value)}"
    raise ConfigError(f"config field {path!r}: expected {_names(allowed, optional)}, found {found}")


def _names(allowed, optional: bool = False) -> str:
    words = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    text = " or ".join(words.get(k, k.__name__) for k in allowed)
    return text + (" or null" if optional else "")


def _check_range(path: str, value, meta: Mapping) -> None:
    low, high = meta.get("low"), meta.get("high")
    too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
    too_high = high is not None and (value >= high if meta.get("high_open") else value > high)
    if too_low or too_high:
        left = "(" if meta.get("low_open") else "["
        right = ")" if meta.get("high_open") else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        span = f"{left}{lo}, {hi}"
        raise ConfigError(
            f"config field {path!r}: expected a value in {span}{right}, found {value}"
        )


def check_field(path: str, value, f: dataclasses.Field, types_: tuple, optional: bool):
    """One field: type, range, allowed values, extra check; returns the (converted) value."""
    value = _check_type(path, value, types_, optional)
    if value is None:
        return None
    meta = f.metadata
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_range(path, value, meta)
    allowed = choices_of(f)
    check = meta.get("check")
    if check is not None:
        if not check(value):
            expect = meta.get("expect") or "a valid value"
            raise ConfigError(f"config field {path!r}: expected {expect}, found {brief(value)}")
    elif allowed is not None and value not in allowed:
        raise ConfigError(
            f"config field {path!r}: expected one of {list(allowed)}, found {brief(value)}"
        )
    return value


def is_section(cls) -> bool:
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


def validate(section, prefix: str = "") -> None:
    """Check every field of ``section`` (recursing into nested sections) in place."""
    kinds = field_types(type(section))
    for f in dataclasses.fields(section):
        path = f"{prefix}{f.name}"
        value = getattr(section, f.name)
        types_, optional = kinds[f.name]
        if len(types_) == 1 and is_section(types_[0]):
            if not isinstance(value, types_[0]):
                raise ConfigError(
                    f"config section {path!r}: expected a mapping of {types_[0].__name__} "
                    f"fields, found {_kind(value)} {brief(value)}"
                )
            validate(value, prefix=f"{path}.")
            continue
        object.__setattr__(section, f.name, check_field(path, value, f, types_, optional))


def from_dict(cls, data, prefix: str = ""):
    """Build section ``cls`` from a mapping; unknown keys and wrong types are refused."""
    where = f"config section {prefix.rstrip('.')!r}" if prefix else "config"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping of fields, found {_kind(data)} {brief(data)}"
        )
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(brief(k) for k in unknown)}; "
            f"expected some of {', '.join(sorted(names))}"
        )
    kinds = field_types(cls)
    kwargs = {}
    for key, value in data.items():
        types_, _ = kinds[key]
        if len(types_) == 1 and is_section(types_[0]):
            if isinstance(value, types_[0]):
                value = to_dict(value)
            value = from_dict(types_[0], value, prefix=f"{prefix}{key}.")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # a section's own cross-field checks
        raise ConfigError(f"{where}: {exc}") from exc


def to_dict(section) -> dict:
    """Plain nested dict of a section (no deep copies of arbitrary objects)."""
    out = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        out[f.name] = to_dict(value) if dataclasses.is_dataclass(value) else value
    return out
