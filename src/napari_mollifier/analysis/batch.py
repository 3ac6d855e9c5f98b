"""Domain analysis as a step of the batch runner (Qt-free; called by ``batch.runner``).

Per localisation input: ``<stem>.domains.csv`` (one row per domain) next to the rate map, and
per-nucleus columns for ``summary.csv`` (:data:`BATCH_COLUMNS`): the domain measurements, the
scaling-law ratio, and the median ratio and its uncertainty read back from the rate-map file.
A failure becomes ``domain_status = "error"`` and a message in ``domain_error``; it never
raises, so the batch goes on. Image inputs get ``domain_status = "skipped"`` (the analysis
needs localisations).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: Extra summary.csv columns (after the runner's own), in order.
BATCH_COLUMNS = (
    "domain_status",
    "n_localisations",
    "nucleus_radius_nm",
    "n_domains",
    "domain_radius_nm",
    "domain_radius_corrected_nm",
    "spacing_nm",
    "lad_thickness_nm",
    "lad_fraction",
    "scaling_law_ratio",
    "ratio_uncertainty_median",
    "domains_path",
    "domain_error",
)
DOMAINS_SUFFIX = ".domains.csv"


def domains_path(out_dir, stem: str) -> Path:
    return Path(out_dir) / f"{stem}{DOMAINS_SUFFIX}"


def analyse_input(path, out_dir, stem: str, params: dict | None = None, maps_path=None) -> dict:
    """Run the analysis on one batch input; returns the :data:`BATCH_COLUMNS` values.

    ``params`` are ``DomainParams`` fields; ``maps_path`` the rate-map OME-TIFF written for
    this input (for the uncertainty column), if any.
    """
    from ..io import SUPPORTED_LOCALISATION_SUFFIXES
    from .core import analyse_domains

    row = dict.fromkeys(BATCH_COLUMNS, "")
    name = Path(path).name.lower()
    if not name.endswith(tuple(s.lower() for s in SUPPORTED_LOCALISATION_SUFFIXES)) or (
        name.endswith((".tif", ".tiff", ".npy"))
    ):
        row["domain_status"] = "skipped"
        row["domain_error"] = "not a localisation table"
        return row
    try:
        report = analyse_domains(path, **(params or {}))
        target = domains_path(out_dir, stem)
        target.parent.mkdir(parents=True, exist_ok=True)
        report.write_domains_csv(target)
    except Exception as exc:  # noqa: BLE001 - one input must never stop the batch
        row["domain_status"] = "error"
        row["domain_error"] = " ".join(f"{type(exc).__name__}: {exc}".split())[:2000]
        return row
    for key in BATCH_COLUMNS:
        if key in report.summary:
            row[key] = report.summary[key]
    row["domain_status"] = "ok"
    row["domains_path"] = str(target)
    if maps_path:
        row["ratio_uncertainty_median"] = _uncertainty_median(maps_path)
    return row


def _uncertainty_median(maps_path) -> float:
    """Median of the rate map's uncertainty channel (NaN when it has none)."""
    try:
        from ..io import read_maps

        maps, _ = read_maps(maps_path)
    except Exception:  # noqa: BLE001 - a missing map only blanks this column
        return math.nan
    data = maps.get("uncertainty")
    if data is None:
        return math.nan
    data = np.asarray(data, dtype=np.float64)
    finite = data[np.isfinite(data)]
    return float(np.median(finite)) if finite.size else math.nan


def format_value(value) -> str:
    """summary.csv cell: floats with 6 significant digits, NaN / None as empty."""
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)
