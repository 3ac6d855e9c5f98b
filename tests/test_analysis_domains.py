"""Domain analysis on simulated nuclei of known phi_h (see tests/_domain_cases.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _domain_cases import PIXEL_NM, VALIDATED, lamina_nucleus, nucleus
from napari_mollifier.analysis import (
    DOMAIN_COLUMNS,
    AnalysisError,
    analyse_domains,
    voronoi_cell_areas,
)
from napari_mollifier.analysis.reference import field_domains, field_lad_thickness


def test_voronoi_cell_areas_match_scipy_voronoi_and_tiling_is_exact():
    from scipy.spatial import ConvexHull, Voronoi

    rng = np.random.default_rng(0)
    xy = rng.random((3000, 2)) * 1000.0
    areas = voronoi_cell_areas(xy)
    vor = Voronoi(xy)
    ref = np.full(len(xy), np.nan)
    for i, region in enumerate(vor.point_region):
        verts = vor.regions[region]
        if verts and -1 not in verts:
            ref[i] = ConvexHull(vor.vertices[verts]).volume
    assert np.array_equal(np.isnan(areas), np.isnan(ref))
    np.testing.assert_allclose(areas[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-9)
    # tiles of 400 points: every cell must equal the one-piece triangulation's
    tiled = voronoi_cell_areas(xy, tile_points=400)
    assert np.array_equal(np.isnan(tiled), np.isnan(areas))
    np.testing.assert_allclose(tiled[np.isfinite(areas)], areas[np.isfinite(areas)], rtol=1e-9)
    # the thread pool over tiles: the same cells on one thread as on four
    for threads in (1, 4):
        again = voronoi_cell_areas(xy, tile_points=400, threads=threads)
        np.testing.assert_array_equal(again, tiled)


def test_neighbourhood_density_equals_the_direct_definition():
    from scipy.spatial import cKDTree

    from napari_mollifier.analysis.density import neighbourhood_density

    rng = np.random.default_rng(5)
    xy = np.concatenate([rng.random((6000, 2)) * 3000.0, rng.normal(1500, 80, (2000, 2))])
    cells = voronoi_cell_areas(xy)
    found = neighbourhood_density(xy, cells, 12)  # queried in row order, scattered back
    _, nb = cKDTree(xy).query(xy, k=13)
    areas = cells[nb]
    count = np.isfinite(areas).sum(axis=1)
    expected = 1e6 * count / np.nansum(areas, axis=1)
    expected[count < 6.5] = np.nan
    np.testing.assert_allclose(found, expected, rtol=1e-12)
    assert np.array_equal(np.isnan(found), np.isnan(expected))


@pytest.mark.parametrize(
    ("eps", "min_samples"), [(30.0, 3), (30.0, 8), (12.0, 4), (50.0, 1), (5.0, 50)]
)
def test_dbscan_labels_equal_scikit_learn(eps, min_samples):
    from sklearn.cluster import DBSCAN

    from napari_mollifier.analysis.domains import dbscan_labels

    rng = np.random.default_rng(int(eps * min_samples))
    centres = rng.uniform(0, 3000, (40, 2))
    xy = np.concatenate(
        [centres[rng.integers(0, 40, 6000)] + rng.normal(0, 40, (6000, 2)),
         rng.uniform(0, 3000, (3000, 2))]
    )  # fmt: skip
    expected = DBSCAN(eps=eps, min_samples=min_samples, algorithm="kd_tree").fit_predict(xy)
    np.testing.assert_array_equal(dbscan_labels(xy, eps, min_samples), expected)


def test_dbscan_border_point_of_two_clusters_joins_the_first_numbered():
    from sklearn.cluster import DBSCAN

    from napari_mollifier.analysis.domains import dbscan_labels

    a, c = [0.0, 0.3, 0.6, 0.9], [2.8, 3.1, 3.4, 3.7]
    border = [1.85]  # 0.95 from both clusters: 3 points within eps < min_samples 4
    for x in (a + border + c, c + border + a, border + a + c):
        xy = np.column_stack([x, np.zeros(len(x))])
        expected = DBSCAN(eps=1.0, min_samples=4).fit_predict(xy)
        found = dbscan_labels(xy, 1.0, 4)
        np.testing.assert_array_equal(found, expected)
        assert found[x.index(1.85)] == 0 and found.max() == 1


def test_group_min_distance_equals_the_brute_force_minimum():
    from napari_mollifier.analysis.boundary import Boundary, Grid

    rng = np.random.default_rng(3)
    # a wobbly closed outline of 2000 vertices and 40 groups of points inside and near it
    angle = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    radius = 1000.0 * (1 + 0.2 * np.sin(3 * angle))
    outline = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    boundary = Boundary(outline, Grid(np.zeros((1, 1)), 20.0, (0.0, 0.0)), np.ones((1, 1), bool))
    centres = rng.uniform(-900, 900, (40, 2))
    groups = np.repeat(np.arange(40), 50)
    xy = centres[groups] + rng.normal(0, 60.0, (len(groups), 2))
    groups[::7] = -1  # unclustered points do not count
    brute = np.hypot(*(xy[:, None, :] - outline[None]).transpose(2, 0, 1)).min(axis=1)
    expected = np.array([brute[groups == g].min() for g in range(40)])
    found = boundary.group_min_distance(xy, groups, 40)
    np.testing.assert_allclose(found, expected, rtol=1e-12)  # KD-tree vs brute-force rounding


@pytest.mark.parametrize("rate_ratio", [0.5, 1.0, 1.5])
def test_radius_and_spacing_match_the_simulated_field(rate_ratio):
    table, phi_h, mask = nucleus(rate_ratio)
    ref, _ = field_domains(phi_h, PIXEL_NM, mask)
    report = analyse_domains(table, **VALIDATED)
    s = report.summary
    # precision-corrected hull radius (median) and mean spacing, interior domains
    assert s["domain_radius_corrected_nm"] == pytest.approx(ref["domain_radius_median_nm"], rel=0.1)
    assert s["spacing_nm"] == pytest.approx(ref["spacing_nm"], rel=0.1)
    assert s["nucleus_radius_nm"] == pytest.approx(ref["nucleus_radius_nm"], rel=0.03)
    assert s["n_interior_domains"] >= 10
    # the lab's uncorrected hull radius overshoots (jitter): bigger, by less than 40 %
    assert ref["domain_radius_nm"] < s["domain_radius_nm"] < 1.4 * ref["domain_radius_nm"]


def test_field_lad_thickness_of_an_annulus():
    yy, xx = np.mgrid[0:400, 0:400] - 199.5
    r = np.hypot(yy, xx)
    mask = r < 180
    for width in (6, 20):  # pixels; area / mean perimeter of an annulus = its width
        ring = mask & (r >= 180 - width)
        thickness, coverage = field_lad_thickness(ring, mask, pixel_nm=10.0)
        expected = ring.sum() * 100.0 / (2 * np.pi * 180 * 10.0)  # area / outline length
        assert thickness == pytest.approx(expected, rel=0.02)
        assert thickness == pytest.approx(10.0 * width, rel=0.1) and coverage == 1.0
    half = mask & (r >= 170) & (xx > 0)
    assert field_lad_thickness(half, mask, 10.0)[1] == pytest.approx(0.5, abs=0.03)
    assert np.isnan(field_lad_thickness(np.zeros_like(mask), mask, 10.0)[0])


@pytest.mark.parametrize("seed", [1, 2])
def test_lad_thickness_matches_the_simulated_field_with_lamina_affinity(seed):
    """Closed nucleus, heterochromatin tethered to the envelope (h 0.002): a LAD layer."""
    table, phi_h, mask = lamina_nucleus(1.0, lamina=0.002, seed=seed)
    ref, _ = field_domains(phi_h, PIXEL_NM, mask)
    assert ref["lad_coverage"] == 1.0 and ref["lad_thickness_nm"] > 3 * PIXEL_NM
    s = analyse_domains(table, **VALIDATED).summary
    assert s["lad_thickness_nm"] == pytest.approx(ref["lad_thickness_nm"], rel=0.2)
    assert s["lad_coverage"] > 0.9
    # the interior is measured as well as without an envelope
    assert s["domain_radius_corrected_nm"] == pytest.approx(ref["domain_radius_median_nm"], rel=0.1)
    assert s["spacing_nm"] == pytest.approx(ref["spacing_nm"], rel=0.1)


def test_report_contract():
    table, _, _ = nucleus(1.0)
    report = analyse_domains(table, eps_nm=30.0, min_samples=3, min_cluster_size=35)
    for key in (
        "nucleus_radius_nm",
        "n_domains",
        "domain_radius_nm",
        "spacing_nm",
        "lad_thickness_nm",
        "lad_fraction",
        "scaling_law_ratio",
    ):
        assert key in report.summary
    assert "scaling law" in report.summary["scaling_law_note"]
    assert isinstance(report.domains, pd.DataFrame)
    assert list(report.domains.columns) == list(DOMAIN_COLUMNS)
    assert len(report.domains) == report.summary["n_domains"] > 0
    assert (report.domains["n_localisations"] >= 35).all()
    assert 0 < report.summary["lad_fraction"] < 1
    assert report.summary["n_lad_domains"] > 0  # domains cut by the disk edge
    labels = report.label_image()
    assert labels.max() == report.summary["n_domains"]
    assert labels.shape == report.boundary.grid.counts.shape
    law = report.scaling_law_image()
    inside = report.boundary.mask
    assert np.isfinite(law[inside]).mean() > 0.99 and np.isnan(law[~inside]).all()
    assert set(np.unique(law[inside])) <= set(
        report.domains["scaling_law_ratio"].astype(np.float32)
    )
    # the LAD band's inner edge lies 5 % of the nucleus radius inside the outline
    band = 0.05 * report.summary["nucleus_radius_nm"]
    dist, _ = report.boundary.distance(report.lad_inner_nm)
    np.testing.assert_allclose(np.median(dist), band, rtol=0.1)


def test_stricter_cluster_size_keeps_fewer_domains_and_keywords_reach_dbscan():
    table, _, _ = nucleus(1.0)
    loose = analyse_domains(table, **VALIDATED)
    strict = analyse_domains(table, min_cluster_size=150, **VALIDATED)
    assert strict.summary["n_domains"] < loose.summary["n_domains"]
    assert strict.domains["n_localisations"].min() >= 150


def test_absolute_threshold_is_used_as_given():
    table, _, _ = nucleus(1.0)
    report = analyse_domains(table, threshold_density_per_um2=7000.0)
    assert report.summary["threshold_density_per_um2"] == 7000.0


def test_too_few_localisations_names_the_file(tmp_path):
    from napari_mollifier.physics import write_thunderstorm_csv
    from napari_mollifier.physics.synthetic import sample_localisations

    chrom = np.ones((16, 16))
    table = sample_localisations(chrom, 0.1, nm_per_unit=300, density_per_um2=200.0, seed=0)
    path = write_thunderstorm_csv(tmp_path / "sparse_cell.csv", table)
    with pytest.raises(AnalysisError, match=r"sparse_cell\.csv: too few localisations.*found \d+"):
        analyse_domains(path)


def test_no_domains_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(3)
    xy = rng.random((20000, 2)) * 3000.0  # uniform: no density contrast
    frame = pd.DataFrame({"x_nm": xy[:, 0], "y_nm": xy[:, 1]})
    with pytest.raises(AnalysisError, match="no heterochromatin domain found"):
        analyse_domains(frame, min_cluster_size=5000)


def test_boundary_that_does_not_close_is_a_clear_error():
    rng = np.random.default_rng(4)
    # two separate clumps of localisations, 20 um apart: no single nuclear outline
    a = rng.normal(0.0, 400.0, (6000, 2))
    b = rng.normal(0.0, 400.0, (6000, 2)) + 20000.0
    frame = pd.DataFrame(np.vstack([a, b]), columns=["x_nm", "y_nm"])
    with pytest.raises(AnalysisError, match="boundary does not close.*2 pieces"):
        analyse_domains(frame, min_cluster_size=5)


def test_table_without_coordinates_is_refused():
    with pytest.raises(AnalysisError, match="no y_nm column"):
        analyse_domains(pd.DataFrame({"x_nm": [1.0, 2.0]}))


def _mean_scaling_ratio(rate_ratio, sim_seeds):
    return np.mean(
        [
            analyse_domains(nucleus(rate_ratio, sim_seed=s)[0], **VALIDATED).summary[
                "scaling_law_ratio"
            ]
            for s in sim_seeds
        ]
    )


def test_scaling_law_ratio_increases_with_the_true_ratio():
    # two simulated nuclei per ratio: single nuclei fluctuate (docs/analysis.md), and the
    # scaling law saturates above ~1.25 even on the simulated field itself
    means = [_mean_scaling_ratio(r, (0, 1)) for r in (0.5, 1.0, 1.5)]
    assert means[0] < means[1] < means[2]
    assert all(m < r for m, r in zip(means, (0.5, 1.0, 1.5)))  # strongly biased low


@pytest.mark.slow
def test_scaling_law_ratio_sweep_is_monotone():
    ratios = (0.5, 0.75, 1.0, 1.25, 1.5)
    means = [_mean_scaling_ratio(r, (0, 1, 2)) for r in ratios]
    assert np.all(np.diff(means) > 0), means


def test_duplicates_are_removed_keeping_first_occurrences():
    from napari_mollifier.analysis import unique_localisations

    xy = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [0.0, 9.0], [3.0, 4.0]])
    unique, removed = unique_localisations(xy)
    assert removed == 2
    np.testing.assert_array_equal(unique, [[1.0, 2.0], [3.0, 4.0], [0.0, 9.0]])


def test_analysis_threads_follow_omp_num_threads(monkeypatch):
    from napari_mollifier.analysis.density import analysis_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as in a Dask worker
    assert analysis_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert analysis_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert analysis_threads() == max(1, __import__("os").cpu_count() or 1)
