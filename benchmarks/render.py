"""Rendering benchmark: synthetic nucleus (16 um disc), histogram and Gaussian renders.

Run: ``python benchmarks/render.py [--n 2500000] [--pixel 10]``. Prints a table of wall times.
Target: 2.5 million localisations at 10 nm pixels (Gaussian) in <= 5 s on an idle 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from napari_mollifier.io import Localisations, render_density


def nucleus(n: int, radius_nm: float = 8000.0, seed: int = 0) -> Localisations:
    """Uniform disc of ``n`` localisations with gamma-distributed precisions (mean 14 nm)."""
    rng = np.random.default_rng(seed)
    r = radius_nm * np.sqrt(rng.random(n))
    theta = rng.random(n) * 2 * np.pi
    table = pd.DataFrame(
        {
            "x_nm": radius_nm + r * np.cos(theta),
            "y_nm": radius_nm + r * np.sin(theta),
            "sigma_nm": rng.gamma(4.0, 3.5, n).astype(np.float32),
        }
    )
    return Localisations(table, {"format": "synthetic", "file": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2_500_000)
    parser.add_argument("--pixel", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    locs = nucleus(args.n)
    print(
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} n={args.n} pixel_size_nm={args.pixel}"
    )
    print(f"{'method':<10} {'shape':>12} {'radius_px':>9} {'wall_s':>8} {'cpu_s':>8} {'sum':>12}")
    for method in ("histogram", "gaussian"):
        best, best_cpu = np.inf, np.inf
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            img = render_density(locs, pixel_size_nm=args.pixel, method=method)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        shape = "x".join(map(str, img.data.shape))
        print(
            f"{method:<10} {shape:>12} {img.metadata.get('radius_px', '-'):>9} "
            f"{best:8.2f} {best_cpu:8.2f} {img.data.sum():12.1f}"
        )


if __name__ == "__main__":
    main()
