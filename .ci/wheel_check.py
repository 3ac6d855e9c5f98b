"""The install path a user takes: build, check, install the wheel into a fresh venv, click.

    python .ci/wheel_check.py [--keep DIR] [--skip-install]

1. ``python -m build``: the sdist and the wheel, into a temporary folder;
2. ``twine check`` on both (what PyPI renders);
3. the wheel's RECORD holds every file the napari manifest, the sample loader and the package
   need (:func:`missing_from_wheel`); a file left out of the package data fails here, by name;
4. a fresh venv (torch CPU wheel first, then the wheel with ``napari[pyqt6]``), and in it, from
   a folder outside the checkout and under Xvfb: npe2 discovers the plugin, File > Open Sample
   opens the packaged nucleus, "Infer rates" runs a short PINN and its layers are checked
   (``wheel_smoke.py``), and the console script answers ``--version``.

Exit status 0 when everything holds; otherwise the first failure is printed and the status is 1.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "napari_mollifier"
TORCH = "torch==2.13.0"  # the CPU wheel .ci/run installs too: no CUDA download


def wheel_record(wheel: Path) -> set[str]:
    """Paths listed in the wheel's ``*.dist-info/RECORD``."""
    with zipfile.ZipFile(wheel) as zf:
        records = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            raise ValueError(f"{wheel.name}: expected one .dist-info/RECORD, found {records}")
        text = zf.read(records[0]).decode()
    return {row[0] for row in csv.reader(io.StringIO(text)) if row}


def required_files(root: Path = ROOT) -> list[str]:
    """Wheel paths the installed plugin needs.

    Every module of the source package, the napari manifest and the modules its commands name,
    the sample files the loader opens (``_sample_data.PACKAGED_FILES``) and the licence.
    """
    import yaml

    src = root / "src" / PACKAGE
    needed = {p.relative_to(src.parent).as_posix() for p in src.rglob("*.py")}
    manifest = yaml.safe_load((src / "napari.yaml").read_text())
    needed.add(f"{PACKAGE}/napari.yaml")
    for command in manifest["contributions"]["commands"]:
        module = command["python_name"].split(":")[0].replace(".", "/")
        package = f"{module}/__init__.py"
        needed.add(package if (src.parent / package).is_file() else f"{module}.py")
    sys.path.insert(0, str(root / "src"))
    try:
        from napari_mollifier._sample_data import PACKAGED_FILES
    finally:
        sys.path.pop(0)
    needed.update(f"{PACKAGE}/sample_data/{name}" for name in PACKAGED_FILES)
    return sorted(needed)


def missing_from_wheel(wheel: Path, needed: list[str]) -> list[str]:
    """The needed paths the wheel does not carry (besides the licence, checked by name)."""
    record = wheel_record(wheel)
    missing = [name for name in needed if name not in record]
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in record):
        missing.append("*.dist-info/licenses/LICENSE")
    if not any(n.endswith(".dist-info/entry_points.txt") for n in record):
        missing.append("*.dist-info/entry_points.txt (napari.manifest entry point)")
    return missing


def _run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def build(out: Path) -> tuple[Path, Path]:
    _run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], stdout=subprocess.DEVNULL
    )
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise RuntimeError(f"expected one wheel and one sdist in {out}, found {wheels + sdists}")
    return wheels[0], sdists[0]


def clean_env() -> dict:
    """The environment without this checkout or the caller's venv on the import path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", QT_QPA_PLATFORM="xcb")
    return env


def install_and_click(wheel: Path, work: Path) -> None:
    """Fresh venv with the wheel and napari[pyqt6]; the smoke script and the console script."""
    env = clean_env()
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], env=env)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q"]
    _run([*pip, TORCH], env=env)
    _run([*pip, str(wheel), "napari[pyqt6]"], env=env)
    outside = work / "elsewhere"  # no sample_data/ or src/ of the checkout in reach
    outside.mkdir(exist_ok=True)
    _run([str(venv / "bin" / "napari-mollifier"), "--version"], cwd=outside, env=env)
    smoke = Path(__file__).with_name("wheel_smoke.py")
    display = [] if os.environ.get("DISPLAY") else ["xvfb-run", "-a"]
    _run([*display, str(python), str(smoke), str(ROOT)], cwd=outside, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: temp)")
    parser.add_argument(
        "--skip-install", action="store_true", help="build and check only (no venv, no GUI)"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="wheel-check-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        wheel, sdist = build(work / "dist")
        _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)])
        missing = missing_from_wheel(wheel, required_files())
        if missing:
            print(f"error: {wheel.name} lacks {len(missing)} needed file(s):", file=sys.stderr)
            for name in missing:
                print(f"  {name}", file=sys.stderr)
            return 1
        size_mb = wheel.stat().st_size / 1e6
        print(f"{wheel.name}: {size_mb:.2f} MB, every needed file present", flush=True)
        if not args.skip_install:
            install_and_click(wheel, work)
    except (subprocess.CalledProcessError, RuntimeError, ValueError) as exc:
        print(f"error: wheel check failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wheel check passed in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
