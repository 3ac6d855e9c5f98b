"""Write the synthetic nucleus of napari-mollifier's sample data (seeded, ~1 min on 2 cores).

    python sample_data/make_sample_data.py [output_folder]

The default output folder is the package's ``src/napari_mollifier/sample_data/`` (shipped in the
wheel as package data, opened by File > Open Sample).

1. A smooth log-normal rate-ratio map lambda = Gamma_me / Gamma_ac (mean 1.0, std of log 0.35,
   correlation length 2 model units, seed 7) on the periodic 10 x 10 model box, 256^2 grid.
2. The chromatin model is evolved to its steady state (semi-implicit Fourier scheme, dt 0.1,
   t_end 40).
3. STORM localisations: Poisson process with intensity proportional to 1 - phi_w inside an
   elliptical nucleus (semi-axes 4.3 x 3.6 units), 1.5e4 localisations per um^2, 15 nm
   precision, 300 nm per model unit; written as ThunderSTORM CSV.
4. The localisations rendered (Gaussian, 20 nm pixels) to a density OME-TIFF, and the true
   ratio map on the same pixel grid (NaN outside the nucleus).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from napari_mollifier import io as mio
from napari_mollifier.physics.random_fields import lognormal_rate_field
from napari_mollifier.physics.simulate import simulate_chromatin
from napari_mollifier.physics.synthetic import sample_localisations, write_thunderstorm_csv

#: Package data of napari_mollifier: the wheel ships this folder.
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "napari_mollifier" / "sample_data"

SETTINGS = {
    "seed_rate_map": 7,
    "seed_simulation": 0,
    "seed_localisations": 0,
    "n_sim": 256,
    "L_model_units": 10.0,
    "dt": 0.1,
    "t_end": 40.0,
    "ratio_mean": 1.0,
    "ratio_log_spread": 0.35,
    "ratio_correlation_length_model_units": 2.0,
    "nm_per_unit": 300.0,
    "nucleus_semi_axes_model_units": [3.6, 4.3],  # (y, x)
    "density_per_um2": 1.5e4,
    "precision_nm": 15.0,
    "render_pixel_size_nm": 20.0,
    "render_method": "gaussian",
    "model": {"phi_max": 0.7, "interface_length": 0.03, "gamma_ac": 1.0, "mean_nucleoplasm": 0.5},
}


def main(out: Path) -> None:
    s = SETTINGS
    out.mkdir(parents=True, exist_ok=True)
    n, box = s["n_sim"], s["L_model_units"]
    lam = lognormal_rate_field(
        n,
        box,
        s["ratio_mean"],
        s["ratio_log_spread"],
        s["ratio_correlation_length_model_units"],
        seed=s["seed_rate_map"],
    )
    sim = simulate_chromatin(
        lam, L=box, n=n, dt=s["dt"], t_end=s["t_end"], seed=s["seed_simulation"]
    )
    print("simulation:", {k: v for k, v in sim.report().items() if k != "history"})
    h = box / n
    centres = (np.arange(n) + 0.5) * h - box / 2
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    ay, ax = s["nucleus_semi_axes_model_units"]
    nucleus = (yy / ay) ** 2 + (xx / ax) ** 2 < 1
    nm = s["nm_per_unit"]
    table = sample_localisations(
        1.0 - sim.phi_w,
        h,
        nm_per_unit=nm,
        density_per_um2=s["density_per_um2"],
        precision_nm=s["precision_nm"],
        mask=nucleus,
        origin_nm=(0.5 * h * nm, 0.5 * h * nm),
        seed=s["seed_localisations"],
    )
    csv = write_thunderstorm_csv(out / "nucleus_localisations.csv", table)
    locs = mio.read_localisations(csv)
    px = s["render_pixel_size_nm"]
    size = int(round(box * nm / px))
    image = mio.render_density(
        locs,
        pixel_size_nm=px,
        method=s["render_method"],
        origin_nm=(px / 2, px / 2),
        shape=(size, size),
    )
    mio.write_image(out / "nucleus_density.tif", image)
    # true ratio on the rendered grid (periodic bilinear interpolation), NaN off the nucleus
    from scipy import ndimage

    centres_px = (np.arange(size) + 0.5) * px / (h * nm) - 0.5  # in simulation pixels
    gy, gx = np.meshgrid(centres_px, centres_px, indexing="ij")
    truth = ndimage.map_coordinates(lam, [gy, gx], order=1, mode="grid-wrap")
    phys = (np.arange(size) + 0.5) * px / nm - box / 2
    py, pxx = np.meshgrid(phys, phys, indexing="ij")
    truth = np.where((py / ay) ** 2 + (pxx / ax) ** 2 < 1, truth, np.nan)
    (out / "ground_truth").mkdir(exist_ok=True)  # kept apart: not an input of batch runs
    mio.write_image(
        out / "ground_truth" / "nucleus_true_ratio.tif",
        mio.DensityImage(
            truth.astype(np.float32),
            px,
            image.origin_nm,
            {"quantity": "Gamma_me / Gamma_ac (true)"},
        ),
    )
    info = dict(
        s,
        n_localisations=len(table),
        simulation=sim.report(),
        files=[
            "nucleus_localisations.csv",
            "nucleus_density.tif",
            "ground_truth/nucleus_true_ratio.tif",
        ],
    )
    (out / "sample_parameters.json").write_text(json.dumps(info, indent=2, default=float))
    print(f"{len(table)} localisations; wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
