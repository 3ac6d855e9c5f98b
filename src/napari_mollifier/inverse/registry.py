"""Estimators by name: what ``config.method`` can say, and the function that runs each.

An estimator is a generator function ``estimator(prepared, config, stop) -> Iterator[
ProgressEvent]`` taking :class:`~napari_mollifier.inverse.prepared.PreparedFields`, an
:class:`~napari_mollifier.inverse.config.InferenceConfig` and a stop token (or None); its last
event carries the :class:`~napari_mollifier.inverse.result.RateMaps`. Built-in estimators are
given as ``"module:function"`` strings so that naming them (config validation, the CLI's
``--method`` choices) imports nothing heavy. Add one with :func:`register_estimator`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

_ESTIMATORS: dict[str, str | Callable] = {
    "direct": "napari_mollifier.inverse.direct:iter_direct",
    "pinn": "napari_mollifier.inverse.pinn:iter_pinn",
    "pinn-autodiff": "napari_mollifier.inverse.pinn:iter_pinn",
}


def estimator_names() -> tuple[str, ...]:
    """Every registered method name, in registration order."""
    return tuple(_ESTIMATORS)


def register_estimator(name: str, estimator: str | Callable, replace: bool = False) -> None:
    """Make ``config.method = name`` run ``estimator`` (a callable or ``"module:function"``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"estimator name: expected a non-empty string, found {name!r}")
    if name in _ESTIMATORS and not replace:
        raise ValueError(f"estimator {name!r} is already registered (pass replace=True)")
    _ESTIMATORS[name] = estimator


def get_estimator(name: str) -> Callable:
    """The estimator function registered under ``name`` (imported on first use)."""
    try:
        entry = _ESTIMATORS[name]
    except KeyError:
        raise ValueError(
            f"unknown estimator {name!r}; expected one of {list(estimator_names())}"
        ) from None
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry
