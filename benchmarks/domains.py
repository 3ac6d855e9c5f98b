"""Domain analysis of a 1-million-localisation nucleus: time per step and peak memory.

``python benchmarks/domains.py [--n 1000000] [--repeats 1]``

A nucleus of radius 5 um is cut from a simulated chromatin steady state (256^2 periodic box,
tiled) and H2B localisations are drawn from its total chromatin at the density that gives
``--n`` localisations (about 1.3e4 / um^2 for 10^6). Each configuration is analysed in a
fresh process (``--child``) so its peak resident set size (psutil, sampled every 10 ms, and the
kernel's high-water mark VmHWM) is that of the analysis alone, imports included. Targets
(issue 16): <= 20 s and <= 2 GB on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CONFIGS = {
    "lab defaults": {},
    "validated (12 neighbours, Otsu)": {"density_neighbours": 12, "threshold_method": "otsu"},
}


def make_nucleus(n_target: int, radius_nm: float = 5000.0, seed: int = 0) -> np.ndarray:
    """(N, 2) x, y nm of about ``n_target`` localisations of a simulated nucleus."""
    from napari_mollifier.physics import sample_localisations, simulate_chromatin

    sim = simulate_chromatin(1.0, L=10.0, n=256, dt=0.1, t_end=30.0, seed=seed)
    pixel_nm = sim.spacing * 300.0
    reps = int(np.ceil(2 * radius_nm / (256 * pixel_nm))) + 1
    chromatin = np.tile(1.0 - sim.phi_w, (reps, reps))
    n = chromatin.shape[0]
    yy, xx = np.mgrid[0:n, 0:n] * pixel_nm
    centre = (n - 1) / 2 * pixel_nm
    mask = np.hypot(yy - centre, xx - centre) < radius_nm
    density = n_target / (np.pi * (radius_nm / 1000.0) ** 2)
    table = sample_localisations(
        chromatin, sim.spacing, nm_per_unit=300.0, density_per_um2=density, mask=mask, seed=seed
    )
    return table[["x [nm]", "y [nm]"]].to_numpy(np.float64)


def child(path: str, params: dict) -> dict:
    """Analyse the saved localisations here; time per step, peak RSS (psutil, VmHWM)."""
    import psutil

    from napari_mollifier.analysis import iter_analyse_domains

    proc = psutil.Process()
    xy = np.load(path)
    peak = [proc.memory_info().rss]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    steps, t0, cpu0 = {}, time.perf_counter(), time.process_time()
    gen = iter_analyse_domains(xy, **params)
    last, name = t0, None
    try:
        while True:
            _, _, step = next(gen)
            now = time.perf_counter()
            if name is not None:
                steps[name] = now - last
            last, name = now, step
    except StopIteration as stop:
        report = stop.value
    now = time.perf_counter()
    steps[name] = now - last
    done.set()
    thread.join()
    hwm = None
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            hwm = int(line.split()[1]) * 1024
    return {
        "n": len(xy),
        "total_s": now - t0,
        "cpu_s": time.process_time() - cpu0,
        "steps_s": steps,
        "peak_rss_mb": peak[0] / 2**20,
        "vmhwm_mb": None if hwm is None else hwm / 2**20,
        "n_domains": report.summary["n_domains"],
        "domain_radius_nm": report.summary["domain_radius_nm"],
        "spacing_nm": report.summary["spacing_nm"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("NPY", "PARAMS_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], json.loads(args.child[1]))))
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    from _machine import describe_machine

    xy = make_nucleus(args.n)
    load = os.getloadavg()[0]
    print(f"{describe_machine()}; load average before the runs {load:.1f}", flush=True)
    print(f"{len(xy)} localisations, nucleus radius 5 um", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "xy.npy")
        np.save(path, xy)
        for name, params in CONFIGS.items():
            for _ in range(args.repeats):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", path, json.dumps(params)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                rows.append((name, json.loads(out.stdout.strip().splitlines()[-1])))
    print("\n| settings | localisations | total s | " + " | ".join(rows[0][1]["steps_s"])
          + " | CPU s | peak RSS MB (psutil) | VmHWM MB | domains |")  # fmt: skip
    print("|---" * (7 + len(rows[0][1]["steps_s"])) + "|")
    for name, r in rows:
        steps = " | ".join(f"{v:.2f}" for v in r["steps_s"].values())
        print(f"| {name} | {r['n']} | {r['total_s']:.1f} | {steps} | {r['cpu_s']:.1f} "
              f"| {r['peak_rss_mb']:.0f} | {r['vmhwm_mb']:.0f} | {r['n_domains']} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
