"""Two channels are (phi_w, phi_d) phase fields only when the file or the user says so; any
other multi-channel image asks which channel is the chromatin density."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_mollifier.io import DensityImage, FormatError, read_image, write_image
from napari_mollifier.physics.chromatin import ChromatinFields, FieldsError


def _density(seed=0, n=96):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    disc = (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (0.4 * n) ** 2
    return (np.where(disc, 50 + 30 * np.sin(xx / 3.0), 0.0) + rng.random((n, n))).astype(np.float32)


def _two_channel_tiff(path, names=None):
    stack = np.stack([_density(1), _density(2)])
    metadata = {"axes": "CYX", "PhysicalSizeX": 20.0, "PhysicalSizeXUnit": "nm"}
    metadata.update(PhysicalSizeY=20.0, PhysicalSizeYUnit="nm")
    if names:
        metadata["Channel"] = {"Name": names}
    tifffile.imwrite(path, stack, ome=True, metadata=metadata)
    return stack


@pytest.mark.parametrize("names", [None, ["H2B", "DNA"]])
def test_two_channel_density_is_not_taken_as_phases(tmp_path, names):
    path = tmp_path / "two_colour.ome.tif"
    _two_channel_tiff(path, names)
    image = read_image(path)
    assert image.data.shape[0] == 2
    with pytest.raises(FieldsError) as info:
        ChromatinFields.from_density(image)
    message = str(info.value)
    assert "two_colour.ome.tif" in message and "2 channels" in message
    assert "which one is the chromatin density" in message
    assert "channel=0..1" in message and "'phases'" in message
    if names:
        assert "'H2B'" in message and "'DNA'" in message


def test_a_chosen_channel_is_the_density(tmp_path):
    path = tmp_path / "two_colour.ome.tif"
    stack = _two_channel_tiff(path, ["H2B", "DNA"])
    image = read_image(path)
    chosen = ChromatinFields.from_density(image, channel=1)
    alone = ChromatinFields.from_density(DensityImage(stack[1].astype(np.float64), 20.0))
    np.testing.assert_allclose(chosen.phi_h, alone.phi_h)
    assert chosen.calibration["mask"] == "automatic"
    # the io side can pick the channel too: a 2-D image naming its channel
    picked = read_image(path, channel=1)
    assert picked.data.shape == stack.shape[1:] and picked.metadata["channel"] == "DNA"
    np.testing.assert_array_equal(picked.data, stack[1])
    with pytest.raises(FormatError, match="channel 2 asked for; the image has channels 0..1"):
        read_image(path, channel=2)


def test_phase_fields_when_the_file_says_so(tmp_path):
    rng = np.random.default_rng(0)
    phi_w = 0.5 + 0.05 * rng.standard_normal((40, 40))
    phi_d = 0.1 * rng.standard_normal((40, 40))
    stack = np.stack([phi_w, phi_d]).astype(np.float32)
    path = write_image(
        tmp_path / "sim.ome.tif",
        DensityImage(stack, 15.0, metadata={"channel_names": ["phi_w", "phi_d"]}),
    )
    fields = ChromatinFields.from_density(read_image(path))
    assert fields.calibration["channels"] == "phi_w, phi_d"
    np.testing.assert_allclose(fields.phi_d, stack[1], atol=1e-6)
    # or when the user says so, for an unnamed array
    explicit = ChromatinFields.from_density(stack, pixel_size_nm=15.0, channel="phases")
    np.testing.assert_allclose(explicit.phi_d, stack[1], atol=1e-6)
    with pytest.raises(FieldsError, match="which one is the chromatin density"):
        ChromatinFields.from_density(stack, pixel_size_nm=15.0)


@pytest.mark.parametrize(
    ("channel", "match"),
    [
        (2, "channel 2 does not exist"),
        (True, "channel must be a channel index or 'phases'"),
        ("abc", "channel must be a channel index or 'phases'"),
    ],
)
def test_bad_channel_choices_are_named(channel, match):
    stack = np.stack([_density(1), _density(2)])
    with pytest.raises(FieldsError, match=match):
        ChromatinFields.from_density(stack, pixel_size_nm=20.0, channel=channel)


def test_single_channel_rejects_a_channel_that_is_not_there():
    with pytest.raises(FieldsError, match="one channel"):
        ChromatinFields.from_density(_density(), pixel_size_nm=20.0, channel=1)
    with pytest.raises(FieldsError, match="one channel"):
        ChromatinFields.from_density(_density(), pixel_size_nm=20.0, channel="phases")
    fields = ChromatinFields.from_density(_density(), pixel_size_nm=20.0, channel=0)
    assert fields.phi_h.shape == (96, 96)


def test_the_pipeline_asks_for_the_channel_and_takes_the_config_choice(tmp_path):
    from napari_mollifier.inverse.config import InferenceConfig
    from napari_mollifier.pipeline import fields_from_density, load_density

    path = tmp_path / "two_colour.ome.tif"
    stack = _two_channel_tiff(path, ["H2B", "DNA"])
    config = InferenceConfig(method="direct")
    density = load_density(path, config)
    with pytest.raises(FieldsError, match="density_channel"):
        fields_from_density(density, config)
    chosen = fields_from_density(density, config.replace(density_channel=1))
    alone = ChromatinFields.from_density(DensityImage(stack[1].astype(np.float64), 20.0))
    np.testing.assert_allclose(chosen.phi_h, alone.phi_h)


def test_render_limit_is_a_config_field(tmp_path):
    from napari_mollifier.inverse.config import InferenceConfig
    from napari_mollifier.io.render import MAX_RENDER_MEGAPIXELS
    from napari_mollifier.pipeline import load_density

    assert InferenceConfig().render.max_render_megapixels == MAX_RENDER_MEGAPIXELS
    rng = np.random.default_rng(0)
    table = tmp_path / "wide.csv"
    rows = "\n".join(f"{x:.1f},{y:.1f}" for x, y in rng.uniform(0, 20000, (2000, 2)))
    table.write_text("x [nm],y [nm]\n" + rows + "\n")
    config = InferenceConfig(render={"max_render_megapixels": 0.5})
    with pytest.raises(FormatError, match="wide.csv: rendering would make .* limit is 0.5 megapix"):
        load_density(table, config)
    assert load_density(table, InferenceConfig()).data.shape[0] > 1000
