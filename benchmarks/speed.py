"""Speed of the default runs, this checkout against an earlier version, side by side in one run.

Cases (the data are made once, by this checkout, and given to both versions unchanged):

- ``direct-512``, ``direct-1024``: the direct estimator (automatic width) on the rendered
  density of the periodic 10 x 10 box at 256^2 (11.7 nm pixels), tiled 2 x 2 / 4 x 4;
- ``pinn-density-256``: the default "Infer rates" PINN on that 256^2 density;
- ``pinn-two-channel-128``: the default PINN on two-channel fields at 128^2 with 5 % noise
  (both steady-state equations).

Every case runs in a fresh process per version (``PYTHONPATH`` points at that version's
``src``; the earlier version is exported with ``git archive``), the versions alternating case
by case so that both see the same load. Each row reports the time, the accuracy against the
true map (Pearson r, relative L2, mean error, all over the pixels the map covers), the coverage
(mapped fraction of the image) and, for the PINN, the uncertainty coverage (the fraction of
mapped pixels with ``|error| <= 2 x uncertainty``).

    python benchmarks/speed.py                          # baseline: BASELINE_REV
    python benchmarks/speed.py --baseline HEAD~3 --only pinn-density-256 --repeat 2
    python benchmarks/speed.py --baseline none          # this checkout only

Prints a markdown table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _machine import describe_machine  # noqa: E402

#: The landed version before the speed work (issue 18).
BASELINE_REV = "5f9967e"
CASES = ("direct-512", "direct-1024", "pinn-density-256", "pinn-two-channel-128")
DATA = HERE / "results" / "speed_data"


# --- data (made by this checkout) ----------------------------------------------------------
def make_data(case: str) -> Path:
    """Write the case's input and truth to ``DATA/<case>.npz`` (once) and return the path."""
    import pinn as bench

    path = DATA / f"{case}.npz"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    sim = bench.simulation()
    if case == "pinn-two-channel-128":
        fields = bench.noisy_fields(sim, 0.05)
        truth = bench.truth_at_inversion(sim)
        np.savez(path, phi_w=fields.phi_w, phi_d=fields.phi_d, spacing=fields.spacing, truth=truth)
        return path
    tiles = {"direct-512": 2, "direct-1024": 4, "pinn-density-256": 1}[case]
    density = bench.rendered_density(sim, n=256)
    truth = np.tile(sim["ratio"], (tiles, tiles))
    data = np.tile(density.data, (tiles, tiles))
    np.savez(path, density=data, pixel_size_nm=density.pixel_size_nm, truth=truth)
    return path


# --- one case in one process (the version under test is whatever PYTHONPATH imports) ----------
def job(case: str, data_path: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    import napari_mollifier
    from napari_mollifier.inverse import InferenceConfig, infer_rates
    from napari_mollifier.io.types import DensityImage
    from napari_mollifier.physics.chromatin import ChromatinFields

    with np.load(data_path) as f:
        data = {k: f[k] for k in f.files}
    if "density" in data:
        image = DensityImage(data["density"], float(data["pixel_size_nm"]))
        fields = ChromatinFields.from_density(image, mask=np.ones(image.data.shape, bool))
    else:
        fields = ChromatinFields.from_phases(
            data["phi_w"], data["phi_d"], spacing=float(data["spacing"])
        )
    method = "direct" if case.startswith("direct") else "pinn"
    cfg = InferenceConfig(method=method, device="cpu")
    t0 = time.perf_counter()
    result = infer_rates(fields, cfg)
    seconds = time.perf_counter() - t0
    row = {
        "seconds": seconds,
        "package": str(Path(napari_mollifier.__file__).parent),
        "timings": result.timings,
        "steps_done": (result.diagnostics or {}).get("steps_done"),
        "mollifier_width": result.metadata.get("mollifier_width"),
        **metrics(result, data["truth"]),
    }
    return row


def metrics(result, truth) -> dict:
    m = result.valid_mask & np.isfinite(result.ratio)
    e, t = result.ratio[m], truth[m]
    out = {
        "r": float(np.corrcoef(e, t)[0, 1]),
        "rel_l2": float(np.linalg.norm(e - t) / np.linalg.norm(t)),
        "mean_error": float(e.mean() / t.mean() - 1),
        "coverage": float(m.mean()),
    }
    if result.uncertainty is not None and result.config.method != "direct":
        u = result.uncertainty[m]
        out["uncertainty_coverage"] = float(np.mean(np.abs(e - t) <= 2 * u))
    return out


def run_version(case: str, src: Path, threads: int) -> dict:
    """The case in a fresh process importing the package from ``src``."""
    data = make_data(case)
    env = dict(os.environ, PYTHONPATH=str(src))
    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import speed; "
        f"print('JSON' + json.dumps(speed.job({case!r}, {str(data)!r}, {threads})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=HERE
    )
    for line in proc.stdout.splitlines():
        if line.startswith("JSON"):
            return json.loads(line[4:])
    return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}


def export(rev: str, into: Path) -> Path:
    """``src/`` of git revision ``rev`` under ``into`` (``git archive``)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


# --- output --------------------------------------------------------------------------------
KEYS = ("seconds", "r", "rel_l2", "mean_error", "coverage", "uncertainty_coverage", "steps_done")


def table(rows: list[dict]) -> str:
    head = ["case", "version"] + list(KEYS) + ["speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["case"], row["version"]] + [_fmt(row.get(k)) for k in KEYS]
        cells.append(_fmt(row.get("speed_up")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--baseline", default=BASELINE_REV, help="git revision, or 'none'")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs per case and version")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "speed.json")
    args = parser.parse_args(argv)
    print(describe_machine("cpu", args.threads))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        versions = [("current", ROOT / "src")]
        if args.baseline != "none":
            versions.insert(0, (f"baseline {args.baseline}", export(args.baseline, Path(tmp))))
        for case in args.only:
            for _ in range(args.repeat):
                for name, src in versions:
                    row = {"case": case, "version": name, **run_version(case, src, args.threads)}
                    row["load_after"] = os.getloadavg()[0]
                    rows.append(row)
                    print(f"[{time.strftime('%H:%M:%S')}] {case} {name}: "
                          f"{_fmt(row.get('seconds'))} s, r {_fmt(row.get('r'))} "
                          f"{row.get('error', '')}", file=sys.stderr, flush=True)  # fmt: skip
    _speed_ups(rows)
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"machine": describe_machine("cpu", args.threads), "rows": rows}, indent=1)
    )


def _speed_ups(rows: list[dict]) -> None:
    """Baseline median time / this row's time, per case."""
    for case in {r["case"] for r in rows}:
        base = [
            r["seconds"]
            for r in rows
            if r["case"] == case and r["version"] != "current" and "seconds" in r
        ]
        if not base:
            continue
        for r in rows:
            if r["case"] == case and "seconds" in r:
                r["speed_up"] = float(np.median(base)) / r["seconds"]


if __name__ == "__main__":
    main()
