"""Hardening of the density render: sizes are checked before anything large is allocated,
absurd precisions are clamped, sparse wide tables render in memory of the output only."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from napari_mollifier.io import FormatError, Localisations, render_density
from napari_mollifier.io.render import MAX_RENDER_MEGAPIXELS, MAX_SIGMA_NM


def _locs(x, y, sigma=None, name="cell.csv"):
    table = {"x_nm": np.asarray(x, float), "y_nm": np.asarray(y, float)}
    if sigma is not None:
        table["sigma_nm"] = np.asarray(sigma, np.float32)
    return Localisations(pd.DataFrame(table), {"format": "test", "file": name})


def _peak_bytes(func):
    tracemalloc.start()
    try:
        func()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("method", ["gaussian", "histogram"])
def test_stray_localisation_far_away_is_refused_before_allocating(method):
    rng = np.random.default_rng(0)
    x = np.append(rng.uniform(0, 5000, 13), 1e9)  # one stray localisation at 1e9 nm
    y = np.append(rng.uniform(0, 5000, 13), 2000.0)
    locs = _locs(x, y, np.full(14, 12.0))
    caught = {}

    def run():
        with pytest.raises(FormatError) as info:
            render_density(locs, pixel_size_nm=20.0, method=method)
        caught["msg"] = str(info.value)

    assert _peak_bytes(run) < 16 << 20  # refused before the image was allocated
    msg = caught["msg"]
    assert "cell.csv" in msg and "20 nm per pixel" in msg
    assert "1e+06 um" in msg or "1000000 um" in msg  # the extent, in um
    assert "megapixels" in msg and "max_render_megapixels" in msg
    assert f"{MAX_RENDER_MEGAPIXELS:g} megapixels" in msg


def test_megapixel_limit_keyword_and_explicit_shape():
    locs = _locs([0.0, 2000.0], [0.0, 2000.0])
    assert render_density(locs, 20.0, "histogram").data.size > 100
    with pytest.raises(FormatError, match=r"the limit is 0.0001 megapixels"):
        render_density(locs, 20.0, "histogram", max_render_megapixels=1e-4)
    with pytest.raises(FormatError, match=r"100000 x 100000 pixel image"):
        render_density(locs, 20.0, origin_nm=(0.0, 0.0), shape=(100_000, 100_000))
    with pytest.raises(FormatError, match="max_render_megapixels must be a positive number"):
        render_density(locs, 20.0, max_render_megapixels=-1)


def test_absurd_tiny_pixel_size_is_refused_not_allocated():
    locs = _locs([0.0, 5000.0], [0.0, 5000.0])

    def run():
        with pytest.raises(FormatError, match="megapixels"):
            render_density(locs, pixel_size_nm=1e-30, method="histogram")

    assert _peak_bytes(run) < 16 << 20


def test_absurd_precisions_are_clamped_to_documented_bound():
    # 14 localisations, some with SMAP-like absurd precisions (up to 1.6e5 nm): the 99th
    # percentile of 14 values is the maximum, so only the absolute bound stops the margin.
    rng = np.random.default_rng(2)
    sigma = rng.uniform(5, 20, 14)
    sigma[[3, 7]] = [5000.0, 1.6e5]
    img = render_density(_locs(rng.uniform(0, 3000, 14), rng.uniform(0, 3000, 14), sigma), 20.0)
    policy = img.metadata["sigma_policy"]
    assert policy["max_sigma_nm"] == MAX_SIGMA_NM
    assert policy["n_clamped_to_max"] == 2
    assert img.metadata["radius_px"] == int(np.ceil(3.5 * MAX_SIGMA_NM / 20.0))
    assert max(img.data.shape) < 3000 / 20 + 2 * img.metadata["radius_px"] + 3
    assert img.data.sum() == pytest.approx(14, rel=1e-4)


def test_gaussian_window_wider_than_limit_is_refused():
    locs = _locs([1.0], [1.0], [200.0])
    with pytest.raises(FormatError, match=r"cell.csv: a Gaussian of sigma 200 nm .* pixels"):
        render_density(locs, pixel_size_nm=0.2, origin_nm=(0.0, 0.0), shape=(10, 10))


def test_many_localisations_on_one_spot_render_in_bounded_memory():
    n = 400_000
    locs = _locs(np.full(n, 500.0), np.full(n, 500.0), np.full(n, 15.0))
    out = {}
    peak = _peak_bytes(lambda: out.setdefault("img", render_density(locs, 10.0)))
    assert out["img"].data.sum() == pytest.approx(n, rel=1e-4)
    # the table itself (x, y, sigma, float64 copies) is ~ 20 MB; weights are chunked
    assert peak < 64 << 20, peak / 2**20


@pytest.mark.parametrize("method", ["gaussian", "histogram"])
def test_sparse_wide_table_costs_only_the_output(method):
    # 14 localisations spread over 60 um: the image is 9 MP, nearly empty; no padded canvas,
    # no int64 / float64 intermediates of the full image
    rng = np.random.default_rng(4)
    locs = _locs(rng.uniform(0, 60e3, 14), rng.uniform(0, 60e3, 14), rng.uniform(5, 30, 14))
    out = {}
    peak = _peak_bytes(lambda: out.setdefault("img", render_density(locs, 20.0, method)))
    img = out["img"]
    assert img.data.sum() == pytest.approx(14, rel=1e-4)
    assert peak < 1.3 * img.data.nbytes, (peak / 2**20, img.data.nbytes / 2**20)


def test_sparse_table_spread_widely_is_refused_fast_in_the_pipeline(tmp_path):
    # the real-world case: 14 localisations spread over 150 um would render a 56 MP image
    # and keep the estimators busy for minutes on nothing; refused before allocating
    from napari_mollifier.inverse.config import InferenceConfig
    from napari_mollifier.pipeline import load_density

    rng = np.random.default_rng(5)
    path = tmp_path / "oni_14.csv"
    rows = "\n".join(
        f"0,{i},{x:.1f},{y:.1f},0,1000,10"
        for i, (x, y) in enumerate(rng.uniform(0, 150e3, (14, 2)))
    )
    path.write_text("Channel,Frame,X (nm),Y (nm),Z (nm),Photons,Background\n" + rows + "\n")
    caught = {}

    def run():
        with pytest.raises(FormatError) as info:
            load_density(path, InferenceConfig())
        caught["msg"] = str(info.value)

    assert _peak_bytes(run) < 16 << 20
    assert "oni_14.csv: 14 localisations spread over" in caught["msg"]
    assert "too sparse" in caught["msg"] and "per megapixel" in caught["msg"]
    # the library renders it when asked to (no sparsity check by default)
    locs = _locs(rng.uniform(0, 20e3, 14), rng.uniform(0, 20e3, 14))
    assert render_density(locs, 20.0, "histogram").data.sum() == 14
    with pytest.raises(FormatError, match="too sparse"):
        render_density(locs, 20.0, "histogram", min_localisations_per_megapixel=100)
