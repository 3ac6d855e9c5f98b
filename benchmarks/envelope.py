"""Whole-nucleus validation (issue 14): coverage and accuracy up to the no-flux envelope.

    python benchmarks/envelope.py [--pinn-steps N] [--no-pinn] [--figure docs/images/envelope.png]
                                  [--json out.json]

Problems (the same as tests/test_envelope_direct.py, tests/_envelope_cache.py): closed-domain
simulations at 128^2 inverted at 64^2 with 0.5 % noise -- a rectangle with walls (constant
ratios 0.7 / 1.0 / 1.3, smooth log-normal maps with correlation length 2 and 1), an elliptic
nucleus (constant, log-normal, lamina affinity given / ignored) -- plus the full optical path on
the elliptic nucleus (blinking localisations with background, rendered, calibrated, inverted)
and the bundled sample nucleus. Prints one table per estimator: coverage of the mask, mean
|relative error| and Pearson r over all mapped pixels, in the band along the wall and in the
interior. The figure shows truth, direct and PINN maps of the curved nucleus with the band.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' cached problems: one definition

from _envelope_cache import box_case, distance_to_wall, nucleus_case  # noqa: E402
from napari_mollifier.inverse import InferenceConfig, infer_rates  # noqa: E402
from napari_mollifier.inverse.pinn import PinnOptions  # noqa: E402
from napari_mollifier.physics.params import ModelParams  # noqa: E402


def _stats(ratio, truth, mask, band):
    mapped = np.isfinite(ratio) & mask
    out = {"coverage": float(mapped.sum() / mask.sum())}
    err = np.abs(ratio / truth - 1)
    for name, region in (("all", mapped), ("band", mapped & band), ("interior", mapped & ~band)):
        if region.sum() < 3:
            out[f"err_{name}"] = out[f"r_{name}"] = None
            continue
        out[f"err_{name}"] = float(err[region].mean())
        spread = np.std(truth[region]) > 1e-9
        r = np.corrcoef(ratio[region], truth[region])[0, 1] if spread else None
        out[f"r_{name}"] = None if r is None else float(r)
    return out


def _band(case, result, kind):
    spacing = case.fields.spacing
    dist = distance_to_wall(case.mask, spacing, case.fields.image_border)
    if kind == "box":
        return dist < 0.1 * case.mask.shape[0] * spacing
    from napari_mollifier.mollifier import support_radius

    radius = support_radius(result.config.kernel, result.metadata["mollifier_width"])
    return dist < 2 * radius


def problems():
    """(name, case, kind, lamina given to the estimator)"""
    yield "rectangle, lambda 0.7", box_case(0.7), "box", 0.0
    yield "rectangle, lambda 1.0", box_case(1.0), "box", 0.0
    yield "rectangle, lambda 1.3", box_case(1.3), "box", 0.0
    yield "rectangle, log-normal ell 2", box_case(1.0, 2.0), "box", 0.0
    yield "rectangle, log-normal ell 1", box_case(1.0, 1.0), "box", 0.0
    yield "ellipse, lambda 1.0", nucleus_case(1.0), "nucleus", 0.0
    yield "ellipse, log-normal ell 2", nucleus_case(1.0, 2.0), "nucleus", 0.0
    lads = nucleus_case(1.0, lamina=0.002)
    yield "ellipse + LADs (h 0.002), h given", lads, "nucleus", 0.002
    yield "ellipse + LADs (h 0.002), h ignored", lads, "nucleus", 0.0


def _config(method: str, lamina: float, pinn_steps: int, ensemble: int) -> InferenceConfig:
    model = ModelParams(lamina_affinity=lamina)
    if method != "pinn":
        return InferenceConfig(model=model, method=method)
    options = PinnOptions(steps=pinn_steps, ensemble_size=ensemble)
    return InferenceConfig(model=model, method="pinn", device="cpu", pinn=options)


def run(method: str, pinn_steps: int, ensemble: int = 1, only=None) -> list[dict]:
    rows = []
    for name, case, kind, lamina in problems():
        if only and not any(word in name for word in only):
            continue
        config = _config(method, lamina, pinn_steps, ensemble)
        t0 = time.perf_counter()
        result = infer_rates(case.fields, config)
        seconds = time.perf_counter() - t0
        band = _band(case, result, kind)
        label = method if method != "pinn" else f"pinn ({pinn_steps} steps x {ensemble})"
        row = {"problem": name, "method": label, "seconds": seconds}
        row.update(_stats(result.ratio, case.truth, case.mask, band))
        row["width"] = result.metadata.get("mollifier_width")
        rows.append(row)
        print(_format(row), flush=True)
    return rows


def _format(row) -> str:
    def f(v, d=3):
        return "-" if v is None else f"{v:.{d}f}"

    return (
        f"| {row['problem']} | {row['method']} | {f(row['coverage'])} | {f(row['err_all'], 4)} | "
        f"{f(row['err_band'], 4)} | {f(row['err_interior'], 4)} | {f(row['r_all'])} | "
        f"{f(row['r_band'])} | {f(row['width'])} | {row['seconds']:.1f} |"
    )


HEADER = (
    "| problem | method | coverage | mean err all | band | interior | r all | r band | "
    "width | s |\n|---|---|---|---|---|---|---|---|---|---|"
)


def figure(path: Path, pinn_steps: int, with_pinn: bool, ensemble: int = 1) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case = nucleus_case(1.0, 2.0)
    maps = {"truth": np.where(case.mask, case.truth, np.nan)}
    direct = infer_rates(case.fields, InferenceConfig())
    maps["direct"] = direct.ratio
    if with_pinn:
        maps["PINN"] = infer_rates(case.fields, _config("pinn", 0.0, pinn_steps, ensemble)).ratio
    # two kernel radii cover this small nucleus entirely: mark where the kernel reaches the wall
    from napari_mollifier.mollifier import support_radius

    radius = support_radius(direct.config.kernel, direct.metadata["mollifier_width"])
    dist = distance_to_wall(case.mask, case.fields.spacing, case.fields.image_border)
    band = dist < radius
    lo, hi = np.nanpercentile(maps["truth"], [1, 99])
    fig, axes = plt.subplots(1, len(maps), figsize=(4 * len(maps), 4), constrained_layout=True)
    for ax, (name, data) in zip(np.atleast_1d(axes), maps.items()):
        im = ax.imshow(data, cmap="turbo", vmin=lo, vmax=hi)
        ax.contour(band & case.mask, levels=[0.5], colors="white", linewidths=0.8)
        ax.contour(case.mask, levels=[0.5], colors="black", linewidths=1.0)
        stats = _stats(data, case.truth, case.mask, _band(case, direct, "nucleus"))
        stats = None if name == "truth" else stats
        title = (
            name
            if stats is None
            else (f"{name}: coverage {stats['coverage']:.2f}, r {stats['r_all']:.3f}")
        )
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, shrink=0.8, label="Gamma_me / Gamma_ac")
    fig.suptitle(
        "Elliptic nucleus, no-flux envelope (black); white: one kernel radius (direct) from it",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pinn-steps", type=int, default=PinnOptions().steps)
    parser.add_argument("--pinn-ensemble", type=int, default=3)
    parser.add_argument(
        "--pinn-only", nargs="*", default=None, help="words of the problems the PINN runs on"
    )
    parser.add_argument("--no-pinn", action="store_true")
    parser.add_argument("--no-direct", action="store_true")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _machine import describe_machine

    print(f"{describe_machine()}; load average before the runs {os.getloadavg()[0]:.1f}")
    print(HEADER)
    rows = [] if args.no_direct else run("direct", args.pinn_steps)
    if not args.no_pinn:
        rows += run("pinn", args.pinn_steps, args.pinn_ensemble, args.pinn_only)
    if args.figure is not None:
        figure(args.figure, args.pinn_steps, not args.no_pinn, args.pinn_ensemble)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
