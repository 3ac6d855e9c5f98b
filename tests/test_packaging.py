"""What PyPI and the napari hub show: metadata, licence, README links, packaged sample files."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
REPO = "https://github.com/napari-mollifier/napari-mollifier"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_licence_and_urls():
    project = _pyproject()["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    assert "BSD 3-Clause" in (ROOT / "LICENSE").read_text()
    urls = project["urls"]
    for name in ("Documentation", "User Support", "Bug Tracker", "Source Code"):
        assert urls[name].startswith(REPO), name
    assert project["scripts"]["napari-mollifier"] == "napari_mollifier.batch.cli:main"


def test_python_classifiers_match_ci():
    classifiers = _pyproject()["project"]["classifiers"]
    versions = {c.rsplit("::", 1)[1].strip() for c in classifiers if re.search(r":: 3\.\d+$", c)}
    ci = (ROOT / ".ci" / "run").read_text()
    assert versions == {"3.11"}
    assert "python3.11" in ci or "3.11" in ci


def test_readme_links_resolve_on_pypi():
    """PyPI renders README.md outside the repository: every link and image is absolute."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
    assert not relative, relative
    for target in targets:
        if target.startswith(f"{REPO}/blob/main/"):
            assert (ROOT / target.removeprefix(f"{REPO}/blob/main/")).exists(), target
        raw = "https://raw.githubusercontent.com/napari-mollifier/napari-mollifier/main/"
        if target.startswith(raw):
            assert (ROOT / target.removeprefix(raw)).exists(), target


def test_package_data_globs_cover_the_sample_files():
    from napari_mollifier._sample_data import PACKAGED, PACKAGED_FILES

    globs = _pyproject()["tool"]["setuptools"]["package-data"]["napari_mollifier"]
    for name in PACKAGED_FILES:
        assert (PACKAGED / name).is_file(), name
        assert any(fnmatch.fnmatch(f"sample_data/{name}", g) for g in globs), name
    assert "napari.yaml" in globs


def test_batch_docs_show_the_defaults():
    """Every field docs/batch.md's "all fields with their defaults" block shows has the code's
    default (the block leaves the tuned PINN options out)."""
    import yaml

    from napari_mollifier.batch.cli import default_config

    text = (ROOT / "docs" / "batch.md").read_text()
    block = text.split("## Config file format", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    shown, defaults = yaml.safe_load(block), default_config().to_dict()

    def check(shown_part: dict, default_part: dict, where: str) -> None:
        for key, value in shown_part.items():
            assert key in default_part, f"{where}{key} is not a config field"
            if isinstance(value, dict):
                check(value, default_part[key], f"{where}{key}.")
            else:
                assert value == default_part[key], f"{where}{key}: docs {value!r}"

    check(shown, defaults, "")
    assert set(shown) == set(defaults)  # every section and top-level field is shown
