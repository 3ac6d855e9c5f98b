"""Rendering conventions, Gaussian accuracy, images with pixel size, rate-map round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy.special import erf

from napari_mollifier.io import (
    FormatError,
    Localisations,
    read_image,
    read_maps,
    render_density,
    sniff_format,
    write_image,
    write_maps,
)


def _locs(x, y, sigma=None):
    table = {"x_nm": np.asarray(x, float), "y_nm": np.asarray(y, float)}
    if sigma is not None:
        table["sigma_nm"] = np.asarray(sigma, np.float32)
    return Localisations(pd.DataFrame(table), {"format": "test", "file": "t.csv"})


def test_histogram_origin_convention():
    # pixel edges on multiples of 10 nm; a point at 25 nm lies in the pixel centred on 25 nm
    img = render_density(_locs([25.0, 25.0, 47.0], [13.0, 13.0, 31.0]), 10.0, "histogram")
    assert img.origin_nm == (15.0, 25.0)
    assert img.data.shape == (3, 3)
    assert img.data[0, 0] == 2 and img.data[2, 2] == 1 and img.data.sum() == 3
    # pixel centre of [2, 2] in world nm contains the third point
    cy, cx = img.pixel_to_nm(2, 2)
    assert abs(cy - 31.0) <= 5.0 and abs(cx - 47.0) <= 5.0


def test_histogram_fixed_origin_and_shape_drop_outside():
    img = render_density(
        _locs([5.0, 15.0, 500.0], [5.0, 5.0, 5.0]),
        10.0,
        "histogram",
        origin_nm=(5.0, 5.0),
        shape=(2, 2),
    )
    np.testing.assert_array_equal(img.data, [[1, 1], [0, 0]])


def _brute_force(x, y, s, p, origin, shape):
    h, w = shape
    ex = origin[1] - p / 2 + p * np.arange(w + 1)
    ey = origin[0] - p / 2 + p * np.arange(h + 1)
    out = np.zeros(shape)
    for xi, yi, si in zip(x, y, s):
        wx = np.diff(0.5 * erf((ex - xi) / (np.sqrt(2) * si)))
        wy = np.diff(0.5 * erf((ey - yi) / (np.sqrt(2) * si)))
        out += np.outer(wy, wx)
    return out


def test_gaussian_matches_pixel_integrated_erf_and_is_tile_independent():
    rng = np.random.default_rng(1)
    n = 400
    x = rng.uniform(300, 900, n)
    y = rng.uniform(200, 700, n)
    s = rng.uniform(5, 30, n)
    kw = dict(
        pixel_size_nm=10.0,
        origin_nm=(105.0, 205.0),
        shape=(70, 80),
        clamp_percentile=None,
        truncate=6.0,
    )
    img = render_density(_locs(x, y, s), **kw)
    ref = _brute_force(x, y, s, 10.0, (105.0, 205.0), (70, 80))
    assert np.abs(img.data - ref).max() < 2e-4 * ref.max() + 1e-5
    assert img.data.sum() == pytest.approx(n, rel=1e-5)
    small_tiles = render_density(_locs(x, y, s), tile_size=8, **kw)
    np.testing.assert_allclose(small_tiles.data, img.data, atol=1e-5)
    # default truncation (3.5 sigma, renormalised) stays close to the exact integral
    img35 = render_density(_locs(x, y, s), **{**kw, "truncate": 3.5})
    assert np.abs(img35.data - ref).max() < 0.01 * ref.max()
    # centroid of a single localisation is preserved
    one = render_density(
        _locs([512.3], [421.7], [12.0]), 10.0, origin_nm=(5.0, 5.0), shape=(100, 100)
    )
    rows, cols = np.indices(one.data.shape)
    cy = (one.data * (5.0 + 10 * rows)).sum() / one.data.sum()
    cx = (one.data * (5.0 + 10 * cols)).sum() / one.data.sum()
    assert cy == pytest.approx(421.7, abs=0.05) and cx == pytest.approx(512.3, abs=0.05)


def test_sigma_policy_default_and_clamp():
    x = np.full(200, 500.0)
    sigma = np.full(200, 10.0)
    sigma[0] = 5000.0  # absurd fit: clamped at the 99th percentile
    sigma[1] = np.nan  # missing -> default
    img = render_density(_locs(x, x, sigma), 10.0, default_sigma_nm=15.0)
    policy = img.metadata["sigma_policy"]
    assert policy["n_defaulted"] == 1
    assert policy["clamp_nm"] < 100
    assert img.data.shape[0] < 40  # the absurd sigma did not blow up the margin
    no_sigma = render_density(_locs([500.0], [500.0]), 10.0)
    assert no_sigma.metadata["sigma_policy"]["source"] == "default"


def test_empty_table_render_message():
    empty = _locs([], [])
    with pytest.raises(FormatError, match="no localisations"):
        render_density(empty, 10.0)
    img = render_density(empty, 10.0, origin_nm=(0.0, 0.0), shape=(4, 5))
    assert img.data.shape == (4, 5) and img.data.sum() == 0


def test_round_trip_locs_density_tiff(tmp_path):
    rng = np.random.default_rng(3)
    locs = _locs(
        rng.uniform(1000, 3000, 5000), rng.uniform(-500, 1500, 5000), rng.uniform(5, 20, 5000)
    )
    img = render_density(locs, 20.0)
    path = write_image(tmp_path / "density.ome.tif", img)
    assert sniff_format(path) == "ome-tiff"
    back = read_image(path)
    np.testing.assert_array_equal(back.data, img.data.astype(np.float32))
    assert back.pixel_size_nm == pytest.approx(20.0)
    assert back.origin_nm == pytest.approx(img.origin_nm)
    hist = render_density(locs, 20.0, "histogram", origin_nm=back.origin_nm, shape=back.data.shape)
    assert hist.data.sum() == 5000
    assert not list(tmp_path.glob("*.tmp"))


def test_read_image_pixel_size_sources(tmp_path):
    data = np.arange(12, dtype=np.uint16).reshape(3, 4)
    ij = tmp_path / "ij.tif"
    tifffile.imwrite(
        ij, data, imagej=True, resolution=(1 / 0.08, 1 / 0.08), metadata={"unit": "um"}
    )
    img = read_image(ij)
    assert img.pixel_size_nm == pytest.approx(80.0)
    assert img.data.dtype == np.float32 and img.data.shape == (3, 4)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, data)
    with pytest.raises(FormatError, match="pixel_size_nm"):
        read_image(plain)
    assert read_image(plain, pixel_size_nm=50).pixel_size_nm == 50.0
    ome = tmp_path / "o.ome.tif"
    tifffile.imwrite(
        ome,
        data.astype(np.float32),
        ome=True,
        metadata={"PhysicalSizeX": 0.016, "PhysicalSizeY": 0.016},
    )
    assert read_image(ome).pixel_size_nm == pytest.approx(16.0)
    npy = tmp_path / "two.npy"
    np.save(npy, np.zeros((2, 5, 6)))
    two = read_image(npy, pixel_size_nm=10)
    assert two.data.shape == (2, 5, 6) and two.metadata["axes"] == "CYX"
    with pytest.raises(FormatError, match="pixel_size_nm"):
        read_image(npy)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\x07" * 40)
    with pytest.raises(FormatError):
        read_image(bad, pixel_size_nm=1)
    np.save(tmp_path / "vol.npy", np.zeros((9, 5, 6)))
    with pytest.raises(FormatError, match=r"found shape \(9, 5, 6\)"):
        read_image(tmp_path / "vol.npy", pixel_size_nm=10)


def test_write_read_maps_round_trip(tmp_path):
    from napari_mollifier.inverse.config import InferenceConfig
    from napari_mollifier.inverse.result import RateMaps

    rng = np.random.default_rng(0)
    ratio = rng.uniform(0.5, 2, (6, 7))
    ratio[0, 0] = np.nan
    result = RateMaps(
        ratio=ratio,
        phi_h=rng.uniform(0, 0.7, (6, 7)),
        residual=rng.normal(size=(6, 7)),
        uncertainty=None,
        valid_mask=np.isfinite(ratio),
        config=InferenceConfig(),
        spacing=0.1,
        pixel_size_nm=30.0,
        origin_nm=(15.0, -45.0),
        metadata={"source": "x"},
    )
    paths = write_maps(tmp_path / "out" / "maps.ome.tif", result)
    assert [p.name for p in paths] == ["maps.ome.tif", "maps.json"]
    maps, meta = read_maps(paths[0])
    assert list(maps) == ["ratio", "phi_h", "residual", "uncertainty"]
    np.testing.assert_array_equal(maps["ratio"], ratio.astype(np.float32))
    assert np.isnan(maps["uncertainty"]).all()
    assert meta["pixel_size_nm"] == 30.0 and meta["origin_nm"] == [15.0, -45.0]
    assert meta["config"]["method"] == InferenceConfig().method
    img = read_image(paths[0])
    assert img.pixel_size_nm == pytest.approx(30.0) and img.origin_nm == (15.0, -45.0)
    # a path without suffix gets .ome.tif
    assert write_maps(tmp_path / "plain", result)[0].name == "plain.ome.tif"
