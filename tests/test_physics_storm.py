"""Realistic synthetic STORM: blinking fluorophores, labelling density, background, precisions."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mollifier import io as mio
from napari_mollifier.physics.domains import ellipse_mask
from napari_mollifier.physics.storm import blinking_localisations
from napari_mollifier.physics.synthetic import render_synthetic_density, write_thunderstorm_csv

SPACING, NM = 0.05, 300.0  # 15 nm pixels


def _case(**kwargs):
    chromatin = np.full((100, 100), 0.4)
    chromatin[:, 50:] = 0.8  # right half twice as dense
    mask = ellipse_mask((100, 100), SPACING, (2.0, 2.2))
    options = dict(labelling_density_per_um2=2e4, mean_blinks=6.0, background_fraction=0.04)
    options.update(kwargs)
    table, info = blinking_localisations(chromatin, SPACING, nm_per_unit=NM, mask=mask, **options)
    return chromatin, mask, table, info


def test_counts_blinks_background_and_precision():
    chromatin, mask, table, info = _case()
    area_um2 = mask.sum() * (SPACING * NM / 1000) ** 2
    assert info["n_fluorophores"] == pytest.approx(2e4 * area_um2, rel=0.05)
    signal = table[table["fluorophore"] >= 0]
    assert len(signal) == info["n_signal"] and len(table) == info["n_signal"] + info["n_background"]
    blinks = signal.groupby("fluorophore").size()
    assert blinks.min() >= 1 and blinks.size == info["n_fluorophores"]
    assert blinks.mean() == pytest.approx(6.0, rel=0.05)
    assert blinks.var() > 0.5 * blinks.mean() ** 2  # geometric: var = m (m - 1)
    assert info["background_fraction_measured"] == pytest.approx(0.04, abs=0.003)
    # background falls inside and outside the nucleus, in proportion to the areas
    assert info["n_background_inside_mask"] == pytest.approx(
        info["n_background"] * mask.mean(), rel=0.15
    )
    sigma = table["uncertainty_xy [nm]"]
    assert sigma.min() >= 10.0 and sigma.max() <= 25.0 and 13 < sigma.median() < 19
    assert table["frame"].is_monotonic_increasing


def test_fluorophores_follow_chromatin_and_blinks_sit_at_their_fluorophore():
    _, mask, table, _ = _case(background_fraction=0.0)
    x_pixel = table["x [nm]"] / (SPACING * NM)
    left, right = int((x_pixel < 45).sum()), int((x_pixel > 55).sum())
    inside_left, inside_right = mask[:, :45].sum(), mask[:, 56:].sum()
    assert (right / inside_right) / (left / inside_left) == pytest.approx(2.0, rel=0.08)
    # the spread of one fluorophore's blinks is its localisation precision, not the pixel
    groups = table.groupby("fluorophore")
    spread = groups["x [nm]"].std().dropna()
    assert 10 < spread.median() < 25


def test_csv_round_trip_and_rendered_background_outside_the_nucleus(tmp_path):
    chromatin, mask, table, info = _case(labelling_density_per_um2=5e3)
    path = write_thunderstorm_csv(tmp_path / "blink.csv", table)
    locs = mio.read_localisations(path)
    assert len(locs.table) == len(table)
    image = render_synthetic_density(
        chromatin,
        SPACING,
        nm_per_unit=NM,
        mask=mask,
        method="histogram",
        blinking=dict(labelling_density_per_um2=5e3, mean_blinks=4.0, background_fraction=0.05),
    )
    outside = image.data[~mask]
    assert outside.sum() > 0 and image.data[mask].mean() > 10 * outside.mean()


def test_bad_storm_settings():
    with pytest.raises(ValueError, match="mean_blinks"):
        _case(mean_blinks=0.5)
    with pytest.raises(ValueError, match="background_fraction"):
        _case(background_fraction=1.0)
    with pytest.raises(ValueError, match="precision range"):
        _case(precision_range_nm=(25.0, 10.0))
