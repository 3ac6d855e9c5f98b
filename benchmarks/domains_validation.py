"""Validation table of the domain analysis on simulated nuclei (docs/analysis.md).

``python benchmarks/domains_validation.py [--seeds 0 1 2] [--ratios 0.5 0.75 1 1.25 1.5]
[--estimator direct|pinn|none]``

Per true constant ratio and simulation seed: a disk nucleus (radius 1350 nm) of the periodic
256^2 steady state, 5e3 localisations / um^2 drawn from its chromatin (tests/_domain_cases.py);
the field reference (threshold phi_h at mid-range, connected components) against the analysis
of the localisations (lab defaults, and the validated 12-neighbour + Otsu settings); the
scaling-law ratio of both; and the mean ratio of the project's estimator on the same
localisations (default: the direct weak-form estimator with its default config).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(argv=None) -> int:
    from _domain_cases import PIXEL_NM, VALIDATED, nucleus
    from napari_mollifier.analysis import analyse_domains, scaling_law_ratio
    from napari_mollifier.analysis.reference import field_domains

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.75, 1.0, 1.25, 1.5])
    parser.add_argument("--estimator", choices=["direct", "pinn", "none"], default="direct")
    args = parser.parse_args(argv)
    print("| true ratio | seed | field R / d (nm) | lab R / d (nm) | validated R_corr / d (nm) "
          "| scaling law: field / lab / validated | estimator mean ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    per_ratio = {}
    for ratio in args.ratios:
        for seed in args.seeds:
            table, phi_h, mask = nucleus(ratio, sim_seed=seed)
            ref, _ = field_domains(phi_h, PIXEL_NM, mask)
            lab = analyse_domains(table).summary
            val = analyse_domains(table, **VALIDATED).summary
            field_law = scaling_law_ratio(ref["spacing_nm"], ref["domain_radius_nm"])
            est = _estimate(table, args.estimator)
            per_ratio.setdefault(ratio, []).append((ref, lab, val, field_law, est))
            print(
                f"| {ratio:g} | {seed} | {ref['domain_radius_median_nm']:.0f} / "
                f"{ref['spacing_nm']:.0f} | {lab['domain_radius_nm']:.0f} / "
                f"{lab['spacing_nm']:.0f} | {val['domain_radius_corrected_nm']:.0f} / "
                f"{val['spacing_nm']:.0f} | {field_law:.3f} / {lab['scaling_law_ratio']:.3f} / "
                f"{val['scaling_law_ratio']:.3f} | {est:.3f} |",
                flush=True,
            )
    print("\nmeans over seeds (relative errors against the field reference):\n")
    print("| true ratio | R_corr err | d err (validated) | lab R err | lab d err "
          "| scaling law field / lab / validated | validated / true | estimator |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for ratio, rows in per_ratio.items():
        print(_mean_row(ratio, rows))
    return 0


def _mean_row(ratio: float, rows: list) -> str:
    def mean(f):
        return float(np.mean([f(*r) for r in rows]))

    r_corr = mean(lambda ref, lab, val, *_: val["domain_radius_corrected_nm"]
                  / ref["domain_radius_median_nm"] - 1)  # fmt: skip
    d_val = mean(lambda ref, lab, val, *_: val["spacing_nm"] / ref["spacing_nm"] - 1)
    r_lab = mean(lambda ref, lab, *_: lab["domain_radius_nm"] / ref["domain_radius_median_nm"] - 1)
    d_lab = mean(lambda ref, lab, *_: lab["spacing_nm"] / ref["spacing_nm"] - 1)
    law_field = mean(lambda ref, lab, val, law, est: law)
    law_lab = mean(lambda ref, lab, *_: lab["scaling_law_ratio"])
    law_val = mean(lambda ref, lab, val, *_: val["scaling_law_ratio"])
    est = mean(lambda *r: r[4])
    return (
        f"| {ratio:g} | {r_corr:+.1%} | {d_val:+.1%} | {r_lab:+.1%} | {d_lab:+.1%} "
        f"| {law_field:.3f} / {law_lab:.3f} / {law_val:.3f} | {law_val / ratio:.3f} | {est:.3f} |"
    )


def _estimate(table, estimator: str) -> float:
    """Mean valid ratio of the project's estimator on these localisations (NaN: not run)."""
    if estimator == "none":
        return float("nan")
    from napari_mollifier.inverse import InferenceConfig
    from napari_mollifier.io import Localisations
    from napari_mollifier.pipeline import run_pipeline

    maps = run_pipeline(Localisations(table.copy()), InferenceConfig(method=estimator))
    return float(np.nanmean(maps.ratio[maps.valid_mask]))


if __name__ == "__main__":
    sys.exit(main())
