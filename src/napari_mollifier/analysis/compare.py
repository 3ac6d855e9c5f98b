"""Per-nucleus measurements compared between conditions (e.g. DMSO vs an EZH2 inhibitor).

:func:`compare_conditions` takes rows of nuclei (analysis reports, dicts, a DataFrame, or
result files: ``summary.csv`` of the batch runner, any CSV of one row per nucleus, or JSON with
a ``domain_summary``), assigns each to a condition (a ``condition`` column, a mapping / CSV of
file -> condition, or the input's folder), and for every measurement and every pair of
conditions runs a two-sided Mann-Whitney U test (scipy) with its effect size, the rank-biserial
correlation ``r = 2 U_a / (n_a n_b) - 1`` (= Cliff's delta: +1 when every nucleus of ``a`` is
above every nucleus of ``b``). Plots (box + strip per measurement, PNG and SVG) need matplotlib
(the ``analysis`` extra); without it the tables are still written and a note says why not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

#: Measurements compared by default, when present (rate-map columns come from the batch runner).
DEFAULT_MEASUREMENTS = (
    "ratio_median",
    "scaling_law_ratio",
    "domain_radius_nm",
    "domain_radius_corrected_nm",
    "spacing_nm",
    "lad_thickness_nm",
    "lad_fraction",
    "nucleus_radius_nm",
    "localisation_density_per_um2",
    "n_domains",
)
#: Columns naming the input of a row, first found wins.
SOURCE_COLUMNS = ("input", "source", "file", "path")
TABLE_COLUMNS = (
    "measurement",
    "condition_a",
    "condition_b",
    "n_a",
    "n_b",
    "median_a",
    "median_b",
    "u_statistic",
    "p_value",
    "rank_biserial",
)


@dataclass
class Comparison:
    """Result of :func:`compare_conditions`.

    ``table``: one row per (measurement, pair of conditions) (:data:`TABLE_COLUMNS`);
    ``values``: the per-nucleus values used (source, condition, measurement columns);
    ``files``: what :meth:`write` wrote; ``notes``: e.g. why plots were skipped.
    """

    table: pd.DataFrame
    values: pd.DataFrame
    measurements: list
    conditions: list
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def write(self, out_dir, stem: str = "comparison", plots: bool = True) -> list[Path]:
        """``<stem>.csv`` (tests), ``<stem>_values.csv`` and, with matplotlib, PNG + SVG."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f"{stem}.csv", out / f"{stem}_values.csv"]
        self.table.to_csv(paths[0], index=False, float_format="%.6g")
        self.values.to_csv(paths[1], index=False, float_format="%.6g")
        if plots:
            try:
                paths += plot_comparison(self, out / stem)
            except ImportError:
                self.notes.append(
                    "plots not written: matplotlib is not installed "
                    "(pip install 'napari-mollifier[analysis]')"
                )
        self.files = paths
        return paths


def load_rows(results) -> pd.DataFrame:
    """One row per nucleus from reports, dicts, a DataFrame, or CSV / JSON result files."""
    from .report import DomainReport

    if isinstance(results, pd.DataFrame):
        return results.copy()
    if isinstance(results, (str, Path)):
        results = [results]
    frames = []
    for item in results:
        if isinstance(item, DomainReport):
            frames.append(pd.DataFrame([item.summary_row()]))
        elif isinstance(item, dict):
            frames.append(pd.DataFrame([item]))
        elif isinstance(item, (str, Path)):
            frames.append(_read_result_file(Path(item)))
        else:
            raise TypeError(f"compare_conditions: cannot read a {type(item).__name__} as rows")
    if not frames:
        raise ValueError("compare_conditions: no results given")
    return pd.concat(frames, ignore_index=True)


def _read_result_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such result file")
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        row = dict(data.get("domain_summary") or data)
        row.setdefault("input", data.get("input", str(path)))
        return pd.DataFrame([{k: v for k, v in row.items() if not isinstance(v, (dict, list))}])
    return pd.read_csv(path)


def assign_conditions(rows: pd.DataFrame, conditions=None, group_by: str | None = None):
    """The ``condition`` of each row: given column, mapping (dict or CSV), or the folder."""
    rows = rows.copy()
    source = next((c for c in SOURCE_COLUMNS if c in rows.columns), None)
    if conditions is not None:
        mapping = _read_mapping(conditions)
        if source is None:
            raise ValueError(f"rows name no input (columns {SOURCE_COLUMNS}); cannot map them")
        rows["condition"] = [_lookup(mapping, s) for s in rows[source]]
    elif group_by == "folder":
        if source is None:
            raise ValueError(f"rows name no input (columns {SOURCE_COLUMNS}); cannot group")
        rows["condition"] = [Path(str(s)).parent.name or "." for s in rows[source]]
    elif group_by is not None:
        if group_by not in rows.columns:
            raise ValueError(f"group_by: no column {group_by!r}; found {list(rows.columns)}")
        rows["condition"] = rows[group_by].astype(str)
    elif "condition" not in rows.columns:
        raise ValueError(
            "no conditions: give conditions=, group_by='folder' or a 'condition' column"
        )
    missing = rows["condition"].isna()
    if missing.any():
        names = ", ".join(map(str, rows.loc[missing, source][:5])) if source else ""
        raise ValueError(f"{int(missing.sum())} nucleus/nuclei without a condition: {names}")
    return rows


def _read_mapping(conditions) -> dict:
    if isinstance(conditions, dict):
        return {str(k): str(v) for k, v in conditions.items()}
    path = Path(conditions)
    table = pd.read_csv(path)
    key = next((c for c in (*SOURCE_COLUMNS, "filename") if c in table.columns), None)
    if key is None or "condition" not in table.columns:
        raise ValueError(
            f"{path}: expected columns 'file' (or input/source/path) and 'condition'; "
            f"found {', '.join(table.columns)}"
        )
    return dict(zip(table[key].astype(str), table["condition"].astype(str)))


def _lookup(mapping: dict, source) -> str | None:
    """Match by full path, file name, or stem (``cell1`` matches ``data/cell1.csv``)."""
    text = str(source)
    path = Path(text)
    for key in (text, path.name, path.stem, path.name.split(".")[0]):
        if key in mapping:
            return mapping[key]
    return None


def mann_whitney(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(U of a, two-sided p, rank-biserial r in [-1, 1], positive when a tends to be larger)."""
    from scipy.stats import mannwhitneyu

    res = mannwhitneyu(a, b, alternative="two-sided")
    u = float(res.statistic)
    return u, float(res.pvalue), 2.0 * u / (len(a) * len(b)) - 1.0


def compare_conditions(
    results, conditions=None, group_by: str | None = None, measurements=None, out_dir=None
) -> Comparison:
    """Mann-Whitney U tests of per-nucleus measurements between every pair of conditions.

    Parameters
    ----------
    results : reports, dicts, DataFrame, or paths of result files (CSV / JSON)
    conditions : dict or path of a CSV (``file``, ``condition``), optional
        Maps inputs (full path, file name or stem) to conditions.
    group_by : "folder" or a column name, optional
        Condition = the input's parent folder name (or that column).
    measurements : list of str, optional
        Default: those of :data:`DEFAULT_MEASUREMENTS` present with finite values.
    out_dir : path, optional
        Write the tables and plots there (:meth:`Comparison.write`).
    """
    rows = assign_conditions(load_rows(results), conditions, group_by)
    names = list(dict.fromkeys(rows["condition"].astype(str)))
    if measurements is None:
        measurements = [m for m in DEFAULT_MEASUREMENTS if m in rows.columns]
    missing = [m for m in measurements if m not in rows.columns]
    if missing:
        raise ValueError(f"no column(s) {missing} in the results; found {list(rows.columns)}")
    numeric = {m: pd.to_numeric(rows[m], errors="coerce") for m in measurements}
    measurements = [m for m in measurements if np.isfinite(numeric[m]).any()]
    records = []
    for m in measurements:
        for a, b in combinations(names, 2):
            va = numeric[m][rows["condition"] == a].to_numpy(np.float64)
            vb = numeric[m][rows["condition"] == b].to_numpy(np.float64)
            va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
            u = p = r = np.nan
            if len(va) and len(vb):
                u, p, r = mann_whitney(va, vb)
            med_a = float(np.median(va)) if len(va) else np.nan
            med_b = float(np.median(vb)) if len(vb) else np.nan
            records.append((m, a, b, len(va), len(vb), med_a, med_b, u, p, r))
    source = next((c for c in SOURCE_COLUMNS if c in rows.columns), None)
    keep = ([source] if source else []) + ["condition"] + measurements
    result = Comparison(
        table=pd.DataFrame(records, columns=TABLE_COLUMNS),
        values=rows[keep].reset_index(drop=True),
        measurements=measurements,
        conditions=names,
    )
    if out_dir is not None:
        result.write(out_dir)
    return result


def plot_comparison(comparison: Comparison, stem: Path) -> list[Path]:
    """Box + strip plot per measurement, written as ``<stem>.png`` and ``<stem>.svg``.

    matplotlib is imported here only (optional dependency), without pyplot, so no GUI backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ms = comparison.measurements
    cols = min(3, max(len(ms), 1))
    rows_n = int(np.ceil(max(len(ms), 1) / cols))
    fig = Figure(figsize=(4.0 * cols, 3.2 * rows_n), layout="constrained")
    FigureCanvasAgg(fig)
    rng = np.random.default_rng(0)
    values = comparison.values
    for i, m in enumerate(ms):
        ax = fig.add_subplot(rows_n, cols, i + 1)
        groups = [
            pd.to_numeric(values.loc[values["condition"] == c, m], errors="coerce").dropna()
            for c in comparison.conditions
        ]
        ax.boxplot([g.to_numpy() for g in groups], showfliers=False)
        ax.set_xticks(range(1, len(groups) + 1), comparison.conditions)
        for k, g in enumerate(groups):
            ax.plot(k + 1 + 0.08 * rng.standard_normal(len(g)), g, "o", ms=3, alpha=0.6)
        ax.set_title(_title(comparison.table, m), fontsize=9)
        ax.set_ylabel(m)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1])
    return paths


def _title(table: pd.DataFrame, measurement: str) -> str:
    rows = table[table["measurement"] == measurement]
    if len(rows) == 1 and np.isfinite(rows["p_value"].iloc[0]):
        return f"{measurement}\nMann-Whitney p = {rows['p_value'].iloc[0]:.3g}"
    return measurement
