"""Entry points shared by every estimator: a progress generator and a draining wrapper.

``iter_inference`` validates the config, prepares the fields once (:mod:`.prepared`) and runs
the estimator that ``config.method`` names (:mod:`.registry`). ``infer_rates`` drains it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from .config import InferenceConfig
from .events import ProgressEvent, StopToken
from .prepared import prepare_fields
from .registry import get_estimator

if TYPE_CHECKING:  # pragma: no cover
    from ..physics.chromatin import ChromatinFields
    from .result import RateMaps


def iter_inference(
    fields: ChromatinFields, config: InferenceConfig | None = None, stop: StopToken | None = None
) -> Iterator[ProgressEvent]:
    """Run the estimator named by ``config.method``, yielding progress; the last event has
    ``.result`` set."""
    config = config or InferenceConfig()
    if not isinstance(config, InferenceConfig):
        raise TypeError(f"config: expected an InferenceConfig, found {type(config).__name__}")
    config.validate()
    estimator = get_estimator(config.method)
    prepared = prepare_fields(fields, config)
    prepared, lamina = _lamina_affinity(prepared, config)
    for event in estimator(prepared, config, stop):
        if event.result is not None:
            event.result.metadata.update(lamina)
        yield event


#: Said with every estimate made from a calibrated single-channel density (docs/validation.md)
SINGLE_CHANNEL_CAVEAT = (
    "from a single-channel density phi_w comes from the calibration (uniform phi_e): not "
    "validated, and wrong in sign on the bundled sample (docs/validation.md)"
)


def _lamina_affinity(prepared, config: InferenceConfig):
    """(prepared fields with the affinity the estimator uses, its metadata entries)."""
    import dataclasses

    given = float(config.model.lamina_affinity)
    if not config.estimate_lamina_affinity:
        source = "given" if given else "default 0 (neutral wall)"
        return prepared, {"lamina_affinity": given, "lamina_affinity_source": source}
    from .lamina import estimate_from_prepared

    try:
        estimate = estimate_from_prepared(prepared)
    except ValueError as error:  # name the setting that asked for it, and the way out
        raise ValueError(
            f"estimate_lamina_affinity is on, but {error}; turn it off and give "
            "model.lamina_affinity instead"
        ) from error
    params = dataclasses.replace(prepared.params, lamina_affinity=estimate.value)
    source = estimate.note
    if not prepared.phi_e_observed:  # phi_w from one channel: the estimate's weak point
        source += f"; {SINGLE_CHANNEL_CAVEAT}"
    metadata = {
        "lamina_affinity": estimate.value,
        "lamina_affinity_source": source,
        "lamina_affinity_spread": estimate.spread,
        "lamina_affinity_per_width": estimate.per_width,
        "lamina_affinity_smoothing_widths": estimate.widths,
    }
    return dataclasses.replace(prepared, params=params), metadata


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
