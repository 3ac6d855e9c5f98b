"""Benchmark of the mollified PINN: accuracy vs the weak-form closed form, default-run speed,
and autodiff vs mollified cost per step (time and peak memory).

    .venv/bin/python benchmarks/pinn.py [--quick] [--threads 2] [--out benchmarks/results/pinn.json]

Prints markdown tables and writes JSON. Accuracy uses the chromatin simulator
(``napari_mollifier.physics.simulate.simulate_chromatin``) when it is installed; otherwise the
manufactured steady states of ``tests/test_pinn.py`` (smooth fields, exact ratio by spectral
derivatives), which is said in the output.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _quality(estimate, truth, valid):
    m = valid & np.isfinite(estimate)
    r = float(np.corrcoef(estimate[m], truth[m])[0, 1])
    rel = float(np.linalg.norm(estimate[m] - truth[m]) / np.linalg.norm(truth[m]))
    return r, rel


def accuracy(quick: bool) -> list[dict]:
    from napari_mollifier.inverse import InferenceConfig, infer_rates
    from napari_mollifier.inverse import pinn as pinn_module
    from test_pinn import manufactured

    rows = []
    cases = [(64, 4.0, 0.05)] if quick else [(64, 4.0, 0.05), (128, 8.0, 0.05), (128, 8.0, 0.01)]
    for n, length, noise in cases:
        fields, truth = manufactured(n=n, length=length, seed=0, noise=noise)
        cfg = InferenceConfig(
            method="pinn",
            steps=240 if quick else 900,
            patch_size=32,
            ensemble_size=3,
            device="cpu",
            seed=0,
            learning_rate=2e-3,
        )
        t0 = time.perf_counter()
        result = infer_rates(fields, cfg)
        seconds = time.perf_counter() - t0
        valid = result.valid_mask
        data = pinn_module._read_fields(fields)
        closed, _ = pinn_module._closed_form_ratio(data, cfg, result.metadata["width"])
        r_p, rel_p = _quality(result.ratio, truth, valid)
        r_c, rel_c = _quality(closed, truth, valid)
        # coverage of the +-2 sigma ensemble interval
        inside = np.abs(result.ratio - truth) <= 2 * result.uncertainty
        coverage = float(np.mean(inside[valid]))
        rows.append(
            {
                "data": f"manufactured {n}^2, box {length}",
                "noise": noise,
                "steps": cfg.steps,
                "pinn_r": r_p,
                "pinn_rel_l2": rel_p,
                "closed_form_r": r_c,
                "closed_form_rel_l2": rel_c,
                "mean_ratio_error": float(
                    np.nanmean(result.ratio[valid]) / truth[valid].mean() - 1
                ),
                "coverage_2sigma": coverage,
                "seconds": seconds,
            }
        )
    return rows


_MODE_SCRIPT = """
import sys, time, resource, json, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads({threads})
from test_pinn import manufactured
from napari_mollifier.inverse import InferenceConfig
from napari_mollifier.inverse.pinn import iter_pinn, PinnOptions
fields, _ = manufactured(n=64, length=4.0)
cfg = InferenceConfig(method={method!r}, backbone={backbone!r}, steps={steps}, patch_size={patch},
                      ensemble_size=1, device="cpu", seed=0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ev = None
for ev in iter_pinn(fields, cfg, options=PinnOptions(fields_mode="network")):
    pass
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"train_s": ev.result.timings["train_s"], "peak_rss_mb": peak / 1024,
                   "rss_growth_mb": (peak - base) / 1024}}))
"""


def autodiff_vs_mollified(threads: int, quick: bool) -> list[dict]:
    rows = []
    steps = 5 if quick else 20
    for backbone in ("pinn", "pirate"):
        for patch in (8, 16) if quick else (16, 32):
            entry = {"backbone": backbone, "patch": patch, "steps": steps}
            for method in ("pinn", "pinn-autodiff"):
                code = _MODE_SCRIPT.format(
                    tests=str(ROOT / "tests"),
                    threads=threads,
                    method=method,
                    backbone=backbone,
                    steps=steps,
                    patch=patch,
                )
                out = subprocess.run(
                    [sys.executable, "-c", code],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                numbers = json.loads(out.stdout.strip().splitlines()[-1])
                entry[f"{method}_s_per_step"] = numbers["train_s"] / steps
                entry[f"{method}_rss_growth_mb"] = numbers["rss_growth_mb"]
            entry["time_ratio"] = entry["pinn-autodiff_s_per_step"] / entry["pinn_s_per_step"]
            entry["memory_ratio"] = max(entry["pinn-autodiff_rss_growth_mb"], 1e-3) / max(
                entry["pinn_rss_growth_mb"], 1e-3
            )
            rows.append(entry)
    return rows


def default_speed(n: int) -> dict:
    """Default config ("Infer rates" button) on an n x n manufactured image, box 10 units."""
    from napari_mollifier.inverse import InferenceConfig, infer_rates
    from test_pinn import manufactured

    fields, _ = manufactured(n=n, length=10.0, seed=1)
    cfg = InferenceConfig(method="pinn", device="auto")
    t0 = time.perf_counter()
    result = infer_rates(fields, cfg)
    return {
        "size": n,
        "seconds": time.perf_counter() - t0,
        "timings": result.timings,
        "device": result.metadata["device"],
        "device_reason": result.metadata["device_reason"],
        "steps": cfg.steps,
        "ensemble": cfg.ensemble_size,
        "patch": cfg.patch_size,
    }


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--speed-size", type=int, default=256)
    parser.add_argument("--skip", nargs="*", default=[], choices=["accuracy", "autodiff", "speed"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pinn.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    report: dict = {"threads": args.threads, "torch": torch.__version__}
    try:
        from napari_mollifier.physics.simulate import simulate_chromatin  # noqa: F401

        report["note"] = "chromatin simulator available but not yet wired into this benchmark"
    except ImportError:
        report["note"] = "chromatin simulator not installed: manufactured steady states used"
    print(f"# PINN benchmark ({report['note']})\n")
    if "accuracy" not in args.skip:
        report["accuracy"] = accuracy(args.quick)
        print("## Accuracy (5 % / 1 % noise on the fields)\n\n" + _table(report["accuracy"]) + "\n")
    if "autodiff" not in args.skip:
        report["autodiff_vs_mollified"] = autodiff_vs_mollified(args.threads, args.quick)
        print(
            "## Autodiff vs mollified (per training step, CPU)\n\n"
            + _table(report["autodiff_vs_mollified"])
            + "\n"
        )
    if "speed" not in args.skip:
        speed = default_speed(args.speed_size)
        report["default_speed"] = speed
        print(
            f"## Default 'Infer rates' on {speed['size']}^2\n\n"
            f"{speed['seconds']:.1f} s on {speed['device']} ({speed['device_reason']}); "
            f"timings {speed['timings']}\n"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=float))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"wrote {args.out}; peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
