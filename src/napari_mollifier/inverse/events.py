"""Progress events and the stop token shared by every estimator.

Training is a generator so that a GUI worker, a CLI and a test can all drive it: it yields small
:class:`ProgressEvent` objects and checks a :class:`StopToken` between steps. The last event
carries the result.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
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
