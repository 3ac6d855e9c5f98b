"""The shape of the code: no import cycle between modules, no private name imported across
packages, and the engine stays Qt-free (static checks on src/, fast)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "napari_mollifier"
PACKAGE = "napari_mollifier"
QT_AND_NAPARI = ("qtpy", "napari", "PyQt5", "PyQt6", "PySide2", "PySide6")


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _top_level_imports(module: str, path: Path, known: set[str]):
    """(target module, imported names) of imports executed when the module is imported."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    for node in tree.body:  # module level only: function-level imports are deliberate and lazy
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in [node] if not isinstance(node, ast.Try) else node.body:
            if isinstance(sub, ast.Import):
                for alias in sub.names:
                    yield alias.name, []
            elif isinstance(sub, ast.ImportFrom):
                target = _resolve(module, sub, is_package)
                names = [a.name for a in sub.names]
                for name in names:  # "from . import io" imports the submodule
                    if f"{target}.{name}" in known:
                        yield f"{target}.{name}", []
                yield target, names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for module, path in modules.items():
        edges = set()
        for target, _ in _top_level_imports(module, path, known):
            if target in known and target != module:
                edges.add(target)
        graph[module] = edges
    return graph


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_cycles():
    """Module-level imports form no cycle (a module importing its own parent package is the
    normal package initialisation, not a cycle)."""
    graph = {m: {t for t in edges if t not in _ancestors(m)} for m, edges in _graph().items()}
    done: set[str] = set()

    def visit(node, path):
        for nxt in sorted(graph[node]):
            if nxt in path:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt) :] + [nxt]))
            if nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node, [node])


def test_no_private_names_imported_across_packages():
    modules = _modules()
    known = set(modules)
    offenders = []
    for module, path in modules.items():
        package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _resolve(module, node, path.name == "__init__.py")
            if not target.startswith(PACKAGE):
                continue
            is_package = target in known and modules[target].name == "__init__.py"
            target_package = target if is_package else target.rsplit(".", 1)[0]
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and not (target_package + ".").startswith(package + "."):
                    offenders.append(f"{module}: {alias.name} from {target}")
    assert not offenders, offenders


def test_engine_modules_import_no_qt():
    """Only the napari glue (``_*.py`` at the package root) may import Qt or napari."""
    offenders = []
    for module, path in _modules().items():
        if path.parent == SRC and path.name.startswith("_") and path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] in QT_AND_NAPARI:
                    offenders.append(f"{module}: {name}")
    assert not offenders, offenders
