"""Write the reference maps that guard refactorings of the estimators (tests/test_regression.py).

Two fixed, seeded inputs (a periodic manufactured steady state with a full mask, and a
density-calibrated nucleus with an elliptical mask) through the default "direct" and "pinn"
configurations, with one torch thread (bit-for-bit reproducible on one CPU; the test allows for
the float32 drift between CPU models, see tests/test_regression.py). Run this only when a
change is *meant* to change results, and say so in the commit:

    python tests/data/regression/make_reference_maps.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SHAPE = (48, 48)


def periodic_input():
    """Smooth periodic fields with 5 % noise, spacing 4 / 48 model units, full mask."""
    from napari_mollifier.physics.chromatin import ChromatinFields

    n, length = SHAPE[0], 4.0
    rng = np.random.default_rng(11)
    y, x = np.meshgrid(np.arange(n) * length / n, np.arange(n) * length / n, indexing="ij")

    def waves(amp, kmax):
        u = np.zeros((n, n))
        for _ in range(6):
            a, b = rng.integers(-kmax, kmax + 1, 2)
            u += np.cos(2 * np.pi * (a * x + b * y) / length + rng.uniform(0, 2 * np.pi))
        return amp * u / 6

    phi_h = 0.25 + waves(0.12, 2) + 0.0125 * rng.standard_normal((n, n))
    phi_e = 0.25 + waves(0.01, 1) + 0.0125 * rng.standard_normal((n, n))
    return ChromatinFields.from_phases(1 - phi_h - phi_e, phi_h - phi_e, spacing=length / n)


def nucleus_input():
    """A seeded density with an elliptical nucleus, calibrated to fields (20 nm pixels)."""
    from napari_mollifier.io import DensityImage
    from napari_mollifier.physics.chromatin import ChromatinFields
    from napari_mollifier.physics.params import CalibrationParams, ModelParams

    rng = np.random.default_rng(12)
    h, w = 56, 64
    y, x = np.mgrid[0:h, 0:w]
    inside = ((y - h / 2) / (0.45 * h)) ** 2 + ((x - w / 2) / (0.45 * w)) ** 2 <= 1
    from scipy import ndimage

    texture = ndimage.gaussian_filter(rng.standard_normal((h, w)), 3.0)
    density = np.where(inside, 1.0 + 2.0 * texture / texture.std(), 0.0)
    density = np.clip(density + 0.05 * rng.standard_normal((h, w)), 0, None)
    image = DensityImage(data=density, pixel_size_nm=20.0)
    return ChromatinFields.from_density(
        image, params=ModelParams(), calibration=CalibrationParams()
    )


INPUTS = {"periodic": periodic_input, "nucleus": nucleus_input}
METHODS = ("direct", "pinn")


def compute(name: str, method: str) -> dict[str, np.ndarray]:
    import torch

    from napari_mollifier.inverse import InferenceConfig, infer_rates

    torch.set_num_threads(1)
    result = infer_rates(INPUTS[name](), InferenceConfig(method=method))
    return {k: np.asarray(v) for k, v in result.maps().items()}


def reference_path(name: str, method: str) -> Path:
    return HERE / f"{name}_{method}.npz"


if __name__ == "__main__":
    for name in INPUTS:
        for method in METHODS:
            maps = compute(name, method)
            np.savez_compressed(reference_path(name, method), **maps)
            print(name, method, {k: float(np.nanmean(v)) for k, v in maps.items()})
