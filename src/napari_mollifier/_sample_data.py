"""napari sample data: the synthetic nucleus shipped in the package (offline).

``sample_data/make_sample_data.py`` of the source repository (seeded) writes the STORM
localisations (ThunderSTORM CSV), the density TIFF rendered from them with its pixel size, and
the ground-truth Gamma_me / Gamma_ac map on the same grid into
``src/napari_mollifier/sample_data/``, which the wheel carries as package data. They are found,
in order:

1. the folder named by the ``NAPARI_MOLLIFIER_SAMPLE_DATA`` environment variable (an explicit
   choice of the user wins);
2. the package's own ``sample_data/`` (every install: wheel, sdist or editable);
3. ``sample_data/`` in the current working directory.

When none holds a density image the loader raises a FileNotFoundError that says where it looked,
rather than silently simulating something else.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._reader import KIND_KEY, density_layer_data, robust_limits

ENV_VAR = "NAPARI_MOLLIFIER_SAMPLE_DATA"
#: The sample files inside the installed package (package data of the wheel).
PACKAGED = Path(__file__).resolve().parent / "sample_data"
#: Files of the packaged sample, relative to :data:`PACKAGED` (the wheel check asserts that
#: every one is in the wheel's RECORD).
PACKAGED_FILES = (
    "nucleus_density.tif",
    "nucleus_localisations.csv",
    "ground_truth/nucleus_true_ratio.tif",
    "sample_parameters.json",
)
_IMAGE_SUFFIXES = (".tif", ".tiff", ".npy")


def sample_data_dir() -> Path:
    """The folder holding the sample files (see module docstring), or FileNotFoundError."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    candidates.append(PACKAGED)
    candidates.append(Path.cwd() / "sample_data")
    for folder in candidates:
        if folder.is_dir() and _find(folder, "density") is not None:
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        "napari-mollifier sample data not found: expected a folder 'sample_data' with a "
        f"density TIFF (looked in {looked}); the installed package lacks its sample files. "
        "Reinstall napari-mollifier, run 'python sample_data/make_sample_data.py' in a source "
        f"checkout, or point the {ENV_VAR} environment variable at a folder of them."
    )


def sample_files() -> dict[str, Path | None]:
    """{"density", "truth", "localisations": path or None} of the synthetic nucleus.

    The ground truth lives in ``ground_truth/`` so that a batch run over the sample folder sees
    only the inputs; a flat folder (older layout, or one given by the environment variable)
    still works.
    """
    folder = sample_data_dir()
    tables = sorted(folder.glob("*localisations*.csv"))
    truth_folder = folder / "ground_truth"
    truth = _find(truth_folder, "truth") if truth_folder.is_dir() else None
    return {
        "density": _find(folder, "density"),
        "truth": truth or _find(folder, "truth"),
        "localisations": tables[0] if tables else None,
    }


def _find(folder: Path, what: str) -> Path | None:
    """The density image or the ground-truth ratio map in ``folder`` (by file name)."""
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(_IMAGE_SUFFIXES)
    )
    truth_words = ("truth", "true", "ratio", "lambda")
    truths = [p for p in files if any(w in p.name.lower() for w in truth_words)]
    if what == "truth":
        return truths[0] if truths else None
    densities = [p for p in files if p not in truths]
    named = [p for p in densities if "density" in p.name.lower()]
    return (named or densities or [None])[0]


def sample_nucleus() -> list[tuple]:
    """Layer data: the density image and (if present) the ground-truth ratio map, aligned."""
    from . import io as mio

    files = sample_files()
    density = mio.read_image(files["density"])
    layers = [
        density_layer_data(
            density, name="sample nucleus density", extra_metadata={"sample": "nucleus"}
        )
    ]
    if files["truth"] is not None:
        truth = mio.read_image(files["truth"], pixel_size_nm=density.pixel_size_nm)
        data = truth.data
        px = float(truth.pixel_size_nm)
        layers.append(
            (
                data,
                {
                    "name": "sample nucleus true ratio",
                    "scale": (px, px),
                    "translate": tuple(float(v) for v in truth.origin_nm),
                    "units": ("nm", "nm"),
                    "colormap": "turbo",
                    "contrast_limits": robust_limits(data, 1.0, 99.0),
                    "visible": False,
                    "metadata": {
                        KIND_KEY: "truth",
                        "pixel_size_nm": px,
                        "source_file": str(files["truth"]),
                    },
                },
                "image",
            )
        )
    return layers


def sample_localisations() -> list[tuple]:
    """Layer data: the sample's STORM localisations, rendered and as points (like File > Open)."""
    from ._reader import localisation_layer_data

    path = sample_files()["localisations"]
    if path is None:
        raise FileNotFoundError(
            f"napari-mollifier sample data: no '*localisations*.csv' in {sample_data_dir()}; "
            "run 'python sample_data/make_sample_data.py'"
        )
    return localisation_layer_data(path)
