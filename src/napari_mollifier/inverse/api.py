"""Entry points shared by every estimator: a progress generator and a draining wrapper.

Training is a generator so that a GUI worker, a CLI and a test can all drive it: it yields small
:class:`ProgressEvent` objects and checks a stop token between steps. The last event carries the
result. ``infer_rates`` just drains the generator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import InferenceConfig

if TYPE_CHECKING:  # pragma: no cover
    from ..physics.chromatin import ChromatinFields
    from .result import RateMaps


@dataclass
class ProgressEvent:
    """One progress report.

    Attributes
    ----------
    step, total : int
        Steps done and the step budget (1/1 for one-shot methods).
    losses : dict
        Named scalar losses at this step (empty for one-shot methods).
    elapsed_s : float
        Seconds since the inference started.
    message : str
        Human-readable status ("training", "evaluating tiles", "stopped at step 120", ...).
    result : RateMaps or None
        Set on the final event only.
    extra : dict
        Method-specific numbers (current mollifier width, learning rate, ...).
    """

    step: int
    total: int
    losses: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    message: str = ""
    result: RateMaps | None = None
    extra: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.result is not None


class StopToken(threading.Event):
    """Set it (``token.set()``) from any thread to stop training at the next step.

    The estimator then returns the best result so far as its final event.
    """


def iter_inference(
    fields: ChromatinFields, config: InferenceConfig | None = None, stop: StopToken | None = None
) -> Iterator[ProgressEvent]:
    """Run the estimator named by ``config.method``, yielding progress; the last event has
    ``.result`` set."""
    config = config or InferenceConfig()
    config.validate()
    if config.method == "direct":
        from .direct import iter_direct

        yield from iter_direct(fields, config, stop=stop)
    elif config.method in ("pinn", "pinn-autodiff"):
        from .pinn import iter_pinn

        yield from iter_pinn(fields, config, stop=stop)
    else:  # validate() already refuses this; kept for type checkers
        raise ValueError(f"unknown method {config.method!r}")


def infer_rates(
    fields: ChromatinFields,
    config: InferenceConfig | None = None,
    stop: StopToken | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> RateMaps:
    """Infer the Gamma_me / Gamma_ac map of ``fields``; see :class:`InferenceConfig`."""
    result = None
    for event in iter_inference(fields, config, stop=stop):
        if on_progress is not None:
            on_progress(event)
        if event.result is not None:
            result = event.result
    if result is None:  # an estimator that yields no result is a bug, not a user error
        raise RuntimeError("the estimator finished without a result")
    return result
