"""Condition comparison on synthetic nuclei of known ratio (fixed seeds)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from _domain_cases import VALIDATED, nucleus
from napari_mollifier.analysis import analyse_domains, compare_conditions

SIM_SEEDS = (0, 1, 2, 3, 4)


@cache
def _condition(rate_ratio: float, shift: int = 0) -> tuple:
    """Five nuclei: one per simulation seed, a disk ``shift`` pixels (x2 in x) off centre, own
    localisation draw (smaller disks hold too few interior domains at high ratios)."""
    reports = []
    for s in SIM_SEEDS:
        table = nucleus(rate_ratio, shift, 0.45, 1 + shift, s)[0]
        reports.append(analyse_domains(table, **VALIDATED))
    return tuple(reports)


def _rows(name, reports):
    return [{**r.summary, "input": f"data/{name}/cell{i}.csv"} for i, r in enumerate(reports)]


def test_different_true_ratios_differ_significantly_with_the_right_sign(tmp_path):
    low, high = _condition(0.5), _condition(1.0)
    rows = _rows("dmso", low) + _rows("inhibitor", high)
    result = compare_conditions(rows, group_by="folder", out_dir=tmp_path)
    table = result.table.set_index("measurement")
    row = table.loc["scaling_law_ratio"]
    assert (row["condition_a"], row["condition_b"]) == ("dmso", "inhibitor")
    assert row["p_value"] < 0.05
    assert row["rank_biserial"] < 0  # a (true ratio 0.5) below b (1.0)
    assert row["median_a"] < row["median_b"]
    assert table.loc["domain_radius_corrected_nm", "rank_biserial"] < 0
    written = {p.name for p in result.files}
    assert {
        "comparison.csv",
        "comparison_values.csv",
        "comparison.png",
        "comparison.svg",
    } <= written
    assert (tmp_path / "comparison.png").stat().st_size > 1000
    back = pd.read_csv(tmp_path / "comparison.csv")
    assert set(back["measurement"]) >= {"scaling_law_ratio", "spacing_nm", "domain_radius_nm"}


def test_two_draws_of_one_condition_do_not_differ():
    # the same simulations, other disks (half a box away) and other localisation draws
    first, second = _condition(1.0), _condition(1.0, 128)
    rows = pd.DataFrame(_rows("a", first) + _rows("b", second))
    rows["condition"] = ["draw1"] * 5 + ["draw2"] * 5
    result = compare_conditions(rows)
    p = result.table.set_index("measurement").loc["scaling_law_ratio", "p_value"]
    assert p > 0.05


def test_conditions_from_a_csv_mapping_and_result_files(tmp_path):
    low = _condition(0.5)
    rows = pd.DataFrame(_rows("x", low))
    rows.iloc[:3].to_csv(tmp_path / "run1.csv", index=False)
    rows.iloc[3:].to_csv(tmp_path / "run2.csv", index=False)
    mapping = pd.DataFrame({"file": ["cell0", "cell1", "cell2", "cell3", "cell4"]})
    mapping["condition"] = ["A", "B", "A", "B", "A"]
    mapping.to_csv(tmp_path / "conditions.csv", index=False)
    result = compare_conditions(
        [tmp_path / "run1.csv", tmp_path / "run2.csv"], conditions=tmp_path / "conditions.csv"
    )
    assert result.conditions == ["A", "B"]
    n = result.table.set_index("measurement").loc["spacing_nm", ["n_a", "n_b"]]
    assert tuple(n) == (3, 2)
    assert np.isfinite(result.table["p_value"]).all()


def test_unmapped_input_is_named():
    rows = [{"input": "data/a/c1.csv", "spacing_nm": 1.0}]
    with pytest.raises(ValueError, match="without a condition: data/a/c1.csv"):
        compare_conditions(rows, conditions={"other": "A"})


def test_tables_are_written_without_matplotlib(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import fails
    rows = [
        {"input": f"data/{c}/cell{i}.csv", "spacing_nm": 300.0 + 10 * i + 50 * (c == "b")}
        for c in ("a", "b")
        for i in range(3)
    ]
    result = compare_conditions(rows, group_by="folder", out_dir=tmp_path)
    assert (tmp_path / "comparison.csv").is_file()
    assert not (tmp_path / "comparison.png").exists()
    assert any("matplotlib is not installed" in note for note in result.notes)


def test_analysis_package_imports_no_gui_and_no_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, napari_mollifier.analysis, napari_mollifier.analysis.batch; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('qtpy', 'napari', 'matplotlib')]; "
        "print(bad); sys.exit(bool(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
