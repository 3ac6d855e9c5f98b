"""Write napari-mollifier's sample nucleus (seeded): a closed nucleus with LADs, blinking STORM.

    python sample_data/make_sample_data.py [--out FOLDER] [--large]

The default output folder is the package's ``src/napari_mollifier/sample_data/`` (shipped in the
wheel as package data, opened by File > Open Sample).

1. A smooth log-normal rate-ratio map lambda = Gamma_me / Gamma_ac (mean 1.0, std of log 0.35,
   correlation length 2 model units, seed 7).
2. A kidney-shaped nucleus (seeded random Fourier outline, physics.domains.kidney_mask) whose
   outline is the nuclear envelope: no-flux walls, lamina affinity h = 0.0015 (heterochromatin
   drawn to the envelope: a LAD layer). The chromatin model is evolved to its steady state
   inside it (masked finite-volume scheme, physics.closed).
3. STORM localisations of blinking H2B fluorophores (physics.storm): labelling density
   proportional to 1 - phi_w, geometric number of blinks (mean 5), 10-25 nm precision per
   localisation, 3 % background over the whole field of view; ThunderSTORM CSV.
4. The localisations rendered (Gaussian, 20 nm pixels) to a density OME-TIFF, and the true
   ratio map on the same grid (NaN outside the nucleus) in ground_truth/.

Default: a 3 x 3 um field (10 x 10 model units at 300 nm per unit, 256^2 simulation grid),
nucleus ~2.6 um across, ~1e5 localisations, a few MB. ``--large``: a 12 x 12 um field, nucleus
~10 um across, 1-3 million localisations, for benchmarks (not committed; measured 1.56 million
localisations, 6 min, 2.9 GB on 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from napari_mollifier import io as mio
from napari_mollifier.physics.domains import kidney_mask
from napari_mollifier.physics.params import ModelParams
from napari_mollifier.physics.random_fields import lognormal_rate_field
from napari_mollifier.physics.simulate import simulate_chromatin
from napari_mollifier.physics.storm import blinking_localisations
from napari_mollifier.physics.synthetic import write_thunderstorm_csv

#: Package data of napari_mollifier: the wheel ships this folder.
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "napari_mollifier" / "sample_data"

SETTINGS = {
    "seed_rate_map": 7,
    "seed_simulation": 0,
    "seed_outline": 3,
    "seed_localisations": 0,
    "n_sim": 256,
    "L_model_units": 10.0,
    "dt": 0.1,
    "t_end": 60.0,
    "ratio_mean": 1.0,
    "ratio_log_spread": 0.35,
    "ratio_correlation_length_model_units": 2.0,
    "nm_per_unit": 300.0,
    "nucleus": "kidney",
    "nucleus_radius_model_units": 4.0,
    "lamina_affinity": 0.0015,
    "labelling_density_per_um2": 4000.0,
    "mean_blinks": 5.0,
    "background_fraction": 0.03,
    "precision_range_nm": [10.0, 25.0],
    "render_pixel_size_nm": 20.0,
    "render_method": "gaussian",
    "image_border": "open",
    "model": {"phi_max": 0.7, "interface_length": 0.03, "gamma_ac": 1.0, "mean_nucleoplasm": 0.5},
}

#: --large: a ~10 um nucleus in a 12 um field, 1-3 million localisations
LARGE = {
    "n_sim": 800,
    "L_model_units": 40.0,
    "dt": 0.2,
    "t_end": 40.0,
    "nucleus_radius_model_units": 15.0,
    "labelling_density_per_um2": 5000.0,
}

FILES = (
    "nucleus_localisations.csv",
    "nucleus_density.tif",
    "ground_truth/nucleus_true_ratio.tif",
)


def simulate(s: dict):
    """The rate map, the nucleus mask and the steady state for settings ``s``."""
    n, box = s["n_sim"], s["L_model_units"]
    lam = lognormal_rate_field(
        n,
        box,
        s["ratio_mean"],
        s["ratio_log_spread"],
        s["ratio_correlation_length_model_units"],
        seed=s["seed_rate_map"],
    )
    mask = kidney_mask((n, n), box / n, s["nucleus_radius_model_units"], seed=s["seed_outline"])
    params = ModelParams(**s["model"], nm_per_unit=s["nm_per_unit"])
    params.lamina_affinity = s["lamina_affinity"]
    sim = simulate_chromatin(
        lam,
        L=box,
        n=n,
        dt=s["dt"],
        t_end=s["t_end"],
        seed=s["seed_simulation"],
        domain=mask,
        params=params,
        report_every=50,
    )
    return lam, mask, sim


def main(out: Path, large: bool = False) -> None:
    s = dict(SETTINGS, **(LARGE if large else {}))
    out.mkdir(parents=True, exist_ok=True)
    box, nm = s["L_model_units"], s["nm_per_unit"]
    lam, mask, sim = simulate(s)
    report = sim.report()
    print("simulation:", {k: v for k, v in report.items() if k != "history"})
    h = sim.spacing
    table, info = blinking_localisations(
        1.0 - sim.phi_w,
        h,
        nm_per_unit=nm,
        labelling_density_per_um2=s["labelling_density_per_um2"],
        mean_blinks=s["mean_blinks"],
        background_fraction=s["background_fraction"],
        precision_range_nm=tuple(s["precision_range_nm"]),
        mask=mask,
        origin_nm=(0.5 * h * nm, 0.5 * h * nm),  # the field of view starts at 0 nm
        seed=s["seed_localisations"],
    )
    csv = write_thunderstorm_csv(out / FILES[0], table)
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
    mio.write_image(out / FILES[1], image)
    truth = _truth_on_render_grid(lam, mask, h * nm, px, size)
    (out / "ground_truth").mkdir(exist_ok=True)  # kept apart: not an input of batch runs
    mio.write_image(
        out / FILES[2],
        mio.DensityImage(
            truth.astype(np.float32),
            px,
            image.origin_nm,
            {"quantity": "Gamma_me / Gamma_ac (true)", "lamina_affinity": s["lamina_affinity"]},
        ),
    )
    record = dict(s, n_localisations=len(table), storm=info, simulation=report, files=list(FILES))
    record["simulation"].pop("history", None)
    (out / "sample_parameters.json").write_text(json.dumps(record, indent=2, default=float))
    print(f"{len(table)} localisations ({info['n_background']} background); wrote {out}")


def _truth_on_render_grid(lam, mask, sim_pixel_nm, px, size):
    """The true ratio sampled at the rendered pixel centres, NaN outside the nucleus."""
    from scipy import ndimage

    centres = (np.arange(size) + 0.5) * px / sim_pixel_nm - 0.5  # in simulation pixels
    gy, gx = np.meshgrid(centres, centres, indexing="ij")
    truth = ndimage.map_coordinates(lam, [gy, gx], order=1, mode="nearest")
    inside = ndimage.map_coordinates(mask.astype(np.float64), [gy, gx], order=0, mode="constant")
    return np.where(inside > 0.5, truth, np.nan)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=None, help=f"output folder (default: {DEFAULT_OUT})"
    )
    parser.add_argument("folder", nargs="?", type=Path, help="output folder (older spelling)")
    parser.add_argument("--large", action="store_true", help="~10 um nucleus, 1-3 M points")
    args = parser.parse_args()
    main(args.out or args.folder or DEFAULT_OUT, large=args.large)
