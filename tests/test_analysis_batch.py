"""Domain analysis in the batch runner: per-input CSV, summary columns, comparison at the end."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from _domain_cases import VALIDATED, nucleus
from napari_mollifier.analysis.batch import BATCH_COLUMNS, BatchAnalysis
from napari_mollifier.batch import main, run_batch
from napari_mollifier.inverse import InferenceConfig
from napari_mollifier.physics import write_thunderstorm_csv


def _write(path, table):
    out = table.rename(
        columns={"x_nm": "x [nm]", "y_nm": "y [nm]", "sigma_nm": "uncertainty_xy [nm]"}
    )
    constants = {"sigma [nm]": 130.0, "intensity [photon]": 3000.0, "offset [photon]": 100.0,
                 "bkgstd [photon]": 10.0, "chi2": 1.0}  # fmt: skip
    for col, value in constants.items():
        out[col] = value
    out["id"] = np.arange(1, len(out) + 1)
    return write_thunderstorm_csv(path, out)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("conditions")
    for name, ratio in (("dmso", 0.5), ("inhibitor", 1.0)):
        (root / name).mkdir()
        for seed in (0, 1):
            # small nuclei (radius 0.3 of the box): the batch plumbing, not the accuracy
            _write(root / name / f"cell{seed}.csv", nucleus(ratio, 0, 0.3, 1, seed)[0])
    sparse = nucleus(0.5)[0].iloc[:300]
    _write(root / "dmso" / "sparse.csv", sparse)  # too few localisations for domains
    return root


def _rows(path):
    with open(path, newline="") as handle:
        return {row["input"].split("/")[-2] + "/" + row["input"].split("/")[-1]: row
                for row in csv.DictReader(handle)}  # fmt: skip


def test_batch_writes_domains_summary_columns_and_comparison(folders, tmp_path):
    out = tmp_path / "out"
    stream = io.StringIO()
    result = run_batch(
        [folders / "dmso", folders / "inhibitor"], out, InferenceConfig(method="direct"),
        stream=stream, analysis=BatchAnalysis(True, VALIDATED, group_by="folder"),
    )  # fmt: skip
    rows = _rows(result.summary_path)
    assert set(BATCH_COLUMNS) <= set(next(iter(rows.values())))
    good = rows["dmso/cell0.csv"]
    assert good["domain_status"] == "ok"
    assert float(good["n_domains"]) > 10
    assert 0 < float(good["scaling_law_ratio"]) < 1
    assert float(good["nucleus_radius_nm"]) == pytest.approx(900, rel=0.05)
    assert good["ratio_median"] != ""  # the rate map is still there, next to the domains
    domains_csv = Path(good["domains_path"])
    assert domains_csv.is_file() and domains_csv.name.endswith(".domains.csv")
    assert domains_csv.parent == out
    assert len(domains_csv.read_text().splitlines()) == int(good["n_domains"]) + 1
    # the bad input: reported in its row, the batch went on
    bad = rows["dmso/sparse.csv"]
    assert bad["domain_status"] == "error"
    assert "sparse.csv" in bad["domain_error"] and "too few localisations" in bad["domain_error"]
    assert "domain analysis failed" in stream.getvalue()
    for name in ("comparison.csv", "comparison_values.csv", "comparison.png", "comparison.svg"):
        assert (out / name).is_file(), name
    with open(out / "comparison.csv", newline="") as handle:
        table = {r["measurement"]: r for r in csv.DictReader(handle)}
    assert table["scaling_law_ratio"]["condition_a"] == "dmso"
    assert int(table["scaling_law_ratio"]["n_a"]) == 2  # the failed input is left out


def test_cli_flags_reach_the_analysis(folders, tmp_path):
    conditions = tmp_path / "conditions.csv"
    conditions.write_text("file,condition\ncell0,A\ncell1,B\nsparse,A\n")
    code = main(
        [str(folders / "inhibitor"), "-o", str(tmp_path / "o"), "--method", "direct",
         "--domains", "--domain-option", "density_neighbours=12",
         "--domain-option", "threshold_method=otsu", "--conditions", str(conditions)]
    )  # fmt: skip
    assert code == 0
    rows = _rows(tmp_path / "o" / "summary.csv")
    assert all(r["domain_status"] == "ok" for r in rows.values())
    assert (tmp_path / "o" / "comparison.csv").is_file()


def test_bad_domain_option_is_a_usage_error(folders, tmp_path):
    code = main([str(folders / "dmso"), "-o", str(tmp_path / "x"), "--domain-option", "epsnm=3"])
    assert code == 2
    assert not (tmp_path / "x").exists()


def test_image_inputs_are_skipped_and_missing_files_reported(tmp_path):
    from napari_mollifier.analysis.batch import analyse_input

    image = analyse_input(tmp_path / "cell.ome.tif", tmp_path, "cell")
    assert image["domain_status"] == "skipped"
    missing = analyse_input(tmp_path / "gone.csv", tmp_path, "gone")
    assert missing["domain_status"] == "error" and "gone.csv" in missing["domain_error"]
