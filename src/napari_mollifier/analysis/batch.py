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
    from ..io import input_kind
    from .core import analyse_domains

    row = dict.fromkeys(BATCH_COLUMNS, "")
    if input_kind(path) != "localisations":
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


class BatchAnalysis:
    """What the batch runner does besides the rate maps (``--domains``, ``--group-by``, ...).

    Parameters
    ----------
    domains : bool
        Run :func:`analyse_input` on every localisation input.
    params : dict, optional
        ``DomainParams`` fields (checked here, before any input is processed).
    group_by : "folder" or None
        Compare conditions = the inputs' folders at the end of the run.
    conditions : path or dict, optional
        CSV (``file``, ``condition``) or mapping of inputs to conditions, instead.
    """

    def __init__(self, domains=False, params=None, group_by=None, conditions=None):
        from pathlib import Path as _Path

        from .params import DomainParams

        self.domains = bool(domains)
        self.params = DomainParams.from_dict(params).to_dict() if params else {}
        if group_by not in (None, "folder"):
            raise ValueError(f"--group-by: expected 'folder', found {group_by!r}")
        if conditions is not None and group_by is not None:
            raise ValueError("--group-by and --conditions exclude each other")
        if isinstance(conditions, (str, _Path)) and not _Path(conditions).is_file():
            raise ValueError(f"--conditions: {conditions}: no such file")
        self.group_by = group_by
        self.conditions = conditions

    @property
    def compares(self) -> bool:
        return self.group_by is not None or self.conditions is not None

    def row(self, path, out_dir, stem: str, maps_path: str = "") -> dict:
        """The domain columns of one input (empty when ``domains`` is off)."""
        if not self.domains:
            return {}
        return analyse_input(path, out_dir, stem, self.params, maps_path or None)

    def compare(self, summary_rows: list[dict], out_dir, say=print) -> list:
        """Write ``comparison.csv`` / ``_values.csv`` / ``.png`` / ``.svg``; never raises."""
        import pandas as pd

        from .compare import compare_conditions

        if not self.compares:
            return []
        rows = pd.DataFrame(summary_rows)
        ok = rows["status"].isin(["ok", "resumed"])
        if "domain_status" in rows.columns:
            ok |= rows["domain_status"] == "ok"
        try:
            result = compare_conditions(rows[ok], self.conditions, self.group_by, out_dir=out_dir)
        except Exception as exc:  # noqa: BLE001 - the maps are written; report and go on
            say(f"comparison not written: {type(exc).__name__}: {exc}")
            return []
        for note in result.notes:
            say(note)
        say(f"comparison of {len(result.conditions)} condition(s): {result.files[0]}")
        return result.files
