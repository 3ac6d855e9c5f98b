"""The wheel check (.ci/wheel_check.py) names every file the installed plugin would lack."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _wheel_check():
    spec = importlib.util.spec_from_file_location("wheel_check", ROOT / ".ci" / "wheel_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_wheel(path: Path, names: list[str]) -> Path:
    info = "napari_mollifier-0.1.0.dist-info"
    rows = [*names, f"{info}/licenses/LICENSE", f"{info}/entry_points.txt", f"{info}/RECORD"]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{info}/RECORD", "".join(f"{n},sha256=x,1\n" for n in rows))
    return path


def test_required_files_cover_manifest_and_sample(tmp_path):
    check = _wheel_check()
    needed = check.required_files()
    assert "napari_mollifier/napari.yaml" in needed
    assert "napari_mollifier/_widgets/__init__.py" in needed  # the manifest's widget package
    assert (
        "napari_mollifier/_widgets/infer.py" in needed and "napari_mollifier/_reader.py" in needed
    )
    assert "napari_mollifier/sample_data/nucleus_density.tif" in needed
    assert "napari_mollifier/sample_data/ground_truth/nucleus_true_ratio.tif" in needed
    full = _fake_wheel(tmp_path / "full.whl", needed)
    assert check.missing_from_wheel(full, needed) == []


def test_a_wheel_without_the_sample_fails(tmp_path):
    check = _wheel_check()
    needed = check.required_files()
    lacking = [n for n in needed if not n.endswith("nucleus_localisations.csv")]
    wheel = _fake_wheel(tmp_path / "lacking.whl", lacking)
    assert check.missing_from_wheel(wheel, needed) == [
        "napari_mollifier/sample_data/nucleus_localisations.csv"
    ]
