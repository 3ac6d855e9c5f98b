"""Every ``napari_mollifier.*`` name that README.md and docs/ show exists (imports, attributes)."""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOTTED = re.compile(r"napari_mollifier(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
FROM_IMPORT = re.compile(r"from (napari_mollifier[\w.]*) import ([\w, ]+)")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def _names(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    names = set(DOTTED.findall(text))
    for module, imported in FROM_IMPORT.findall(text):
        names |= {f"{module}.{n.strip()}" for n in imported.split(",") if n.strip()}
    return {n.rstrip(".") for n in names if not n.endswith((".py", ".yaml"))}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_names_in_docs_exist(page):
    missing = sorted(n for n in _names(page) if not _resolves(n))
    assert not missing, f"{page.name} names what the code does not have: {missing}"
