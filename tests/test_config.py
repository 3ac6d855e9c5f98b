"""The one configuration: typed validation, sections, version-1 files, safe config files."""

import json
import subprocess
import sys
import warnings

import pytest

from napari_mollifier.inverse import InferenceConfig, PinnOptions
from napari_mollifier.schema import ConfigError


@pytest.mark.parametrize(
    ("data", "field", "found"),
    [
        ({"seed": "abc"}, "seed", "str 'abc'"),
        ({"seed": 1.5}, "seed", "float 1.5"),
        ({"seed": 1e30}, "seed", "float"),
        ({"seed": True}, "seed", "bool True"),
        ({"seed": -1}, "seed", "-1"),
        ({"pinn": {"steps": 2.5}}, "pinn.steps", "float 2.5"),
        ({"pinn": {"steps": "100"}}, "pinn.steps", "str '100'"),
        ({"pinn": {"patch_size": True}}, "pinn.patch_size", "bool True"),
        ({"pinn": {"backbone": "resnet"}}, "pinn.backbone", "'resnet'"),
        ({"model": {"phi_max": -1}}, "model.phi_max", "-1"),
        ({"model": {"phi_max": 1.0}}, "model.phi_max", "1.0"),
        ({"model": {"interface_length": 0}}, "model.interface_length", "0"),
        ({"pixel_size_nm": 1e-30}, "pixel_size_nm", "1e-30"),
        ({"render": {"pixel_size_nm": 1e6}}, "render.pixel_size_nm", "1000000"),
        ({"device": "tpu"}, "device", "'tpu'"),
        ({"method": "magic"}, "method", "'magic'"),
        ({"image_border": "closed"}, "image_border", "'closed'"),
    ],
)
def test_wrong_values_are_refused_naming_the_field(data, field, found):
    with pytest.raises(ConfigError) as info:
        InferenceConfig.from_dict(data)
    message = str(info.value)
    assert repr(field) in message and "expected" in message and found in message


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"model": [1, 2]}, ["'model'", "mapping", "list"]),
        ({"calibration": "abc"}, ["'calibration'", "mapping", "str"]),
        ({"calibration": {"phi_h_low": 0.7, "phi_h_high": 0.2}}, ["phi_h_low < phi_h_high"]),
        ({"calibration": {"percentile_low": 90, "percentile_high": 10}}, ["percentile_low <"]),
        ({"pinn": {"stepz": 3}}, ["'pinn'", "unknown", "stepz"]),
        ({"nonsense": 1}, ["unknown", "nonsense"]),
    ],
)
def test_wrong_sections_and_cross_field_rules(data, words):
    with pytest.raises(ConfigError) as info:
        InferenceConfig.from_dict(data)
    for word in words:
        assert word in str(info.value)


def test_sections_round_trip_and_replace_merges():
    config = InferenceConfig(method="pinn", pinn=PinnOptions(steps=321, backbone="pinn"), seed=4)
    again = InferenceConfig.from_dict(json.loads(config.to_json()))
    assert again == config and again.version == 2
    changed = config.replace(pinn={"patch_size": 32}, model={"phi_max": 0.6})
    assert (changed.pinn.steps, changed.pinn.patch_size, changed.model.phi_max) == (321, 32, 0.6)
    assert InferenceConfig().pinn.learning_rate == 5e-3  # the documented default
    assert InferenceConfig(device="cuda:1").device == "cuda:1"


def test_version_1_flat_files_load_with_a_deprecation_warning(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("method: pinn\nsteps: 50\nbackbone: pinn\nrender_pixel_size_nm: 30\n")
    with pytest.warns(DeprecationWarning, match=r"steps -> pinn\.steps"):
        config = InferenceConfig.from_file(path)
    assert (config.pinn.steps, config.pinn.backbone, config.render.pixel_size_nm) == (
        50,
        "pinn",
        30,
    )
    with pytest.warns(DeprecationWarning, match="config.pinn.steps"):
        assert config.steps == 50  # the old attribute still reads


def test_output_sidecar_is_accepted_as_a_config(tmp_path):
    config = InferenceConfig(seed=7, pinn={"steps": 99})
    sidecar = tmp_path / "cell.json"
    sidecar.write_text(json.dumps({"config": config.to_dict(), "summary": {}, "versions": {}}))
    assert InferenceConfig.from_file(sidecar) == config


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: &x [1]\nb: *x\n", ["aliases"]),
        ("seed: !!python/object/apply:os.system ['true']\n", ["not valid YAML"]),
        ("seed: [1, 2\n", ["not valid YAML"]),
        ("- 1\n- 2\n", ["expected a mapping", "list"]),
    ],
)
def test_unsafe_or_broken_yaml_is_refused_naming_the_file(tmp_path, text, words):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        InferenceConfig.from_file(path)
    assert str(path) in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_config_file_size_depth_and_long_values_are_bounded(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("seed: 0\n" + "#" * (2 << 20))
    with pytest.raises(ConfigError, match="at most"):
        InferenceConfig.from_file(big)
    deep = tmp_path / "deep.json"
    deep.write_text(json.dumps({"model": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {}}}}}}}}}))
    with pytest.raises(ConfigError, match="nested deeper"):
        InferenceConfig.from_file(deep)
    long_value = tmp_path / "long.json"
    long_value.write_text(json.dumps({"seed": "x" * 100_000}))
    with pytest.raises(ConfigError) as info:
        InferenceConfig.from_file(long_value)
    assert len(str(info.value)) < 400


def test_alias_bomb_fails_fast_in_the_cli(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    lines.append("seed: *i")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    code = (
        "import sys; from napari_mollifier.batch import main; "
        f"sys.exit(main([{str(tmp_path)!r}, '-o', {str(tmp_path / 'out')!r}, "
        f"'--config', {str(path)!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and "aliases" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wrong_type_in_a_config_file_is_a_usage_error_not_a_traceback(tmp_path):
    from napari_mollifier.batch import main

    path = tmp_path / "run.yaml"
    path.write_text("pinn:\n  steps: '100'\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main([str(tmp_path), "-o", str(tmp_path / "out"), "--config", str(path)])
    assert status == 2
