"""The mollified PINN against the direct estimator, its uncertainty, its cost against autodiff,
and the speed of the default "Infer rates" run.

Data: the chromatin simulator (``physics.simulate.simulate_chromatin``) on the 10 x 10 periodic
box at 256^2, smooth log-normal rate maps (mean 1, log-spread 0.35, correlation length 2 model
units), block-averaged to 128^2 before inversion (no inverse crime); Gaussian noise of the stated
std added to phi_w and phi_d, or the full optical path (Poisson localisations -> Gaussian
rendering -> ``ChromatinFields.from_density``). Steady states are cached under
``benchmarks/results/sim_cache/``.

Sections (all by default; ``--only`` picks some):

- ``accuracy``: direct vs PINN (default config) by noise level, optical path, constant maps;
  Pearson r / relative L2 / mean error on the pixels both maps cover, and each map's own
  coverage and r;
- ``calibration``: fits the factor that turns the ensemble spread into a calibrated
  uncertainty (+-2 uncertainty covers 95 % of the errors) on calibration maps (seeds 2, 3),
  reports coverage on held-out maps (seed 1);
- ``cost``: time and peak memory per training step, ``pinn`` (mollifier layer) vs
  ``pinn-autodiff`` (nested autograd), same backbone, data and loss, each in a fresh process;
- ``speed``: the direct estimator, then the default "Infer rates" PINN run, on a 256^2
  density (``--speed-size``), or
  that density tiled (``--speed-tiles 4``: 1024^2 at the same pixel size).

    python benchmarks/pinn.py                       # everything, ~25 min on a 2-core CPU
    python benchmarks/pinn.py --only accuracy --quick

Prints markdown tables and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _machine import describe_machine  # noqa: E402
from _memory import PeakMeter, run_isolated  # noqa: E402

BOX = 10.0  # model units
N_SIM, N_INV = 256, 128
NM_PER_UNIT = 300.0
CACHE = HERE / "results" / "sim_cache"


# --- data ----------------------------------------------------------------------------------
def simulation(kind: str = "lognormal", value: float = 1.0, seed: int = 1) -> dict:
    """Steady state (cached on disk): phi_w, phi_d, phi_h, phi_e, ratio on the 256^2 grid."""
    from napari_mollifier.physics.random_fields import lognormal_rate_field
    from napari_mollifier.physics.simulate import simulate_chromatin

    settings = {
        "kind": kind,
        "value": value,
        "seed": seed,
        "n": N_SIM,
        "L": BOX,
        "dt": 0.1,
        "t_end": 30.0,
        "sim_seed": 0,
    }
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = CACHE / f"pinn_{kind}_{key}.npz"
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    if kind == "lognormal":
        rate = lognormal_rate_field(
            N_SIM, BOX, mean=1.0, spread=0.35, correlation_length=2.0, seed=seed
        )
    else:
        rate = float(value)
    sim = simulate_chromatin(rate, L=BOX, n=N_SIM, dt=0.1, t_end=30.0, seed=0)
    out = {
        "phi_w": sim.phi_w,
        "phi_d": sim.phi_d,
        "phi_h": sim.phi_h,
        "phi_e": sim.phi_e,
        "ratio": np.broadcast_to(sim.rate_ratio, sim.phi_w.shape).copy(),
        "spacing": np.array(sim.spacing),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def noisy_fields(sim: dict, noise: float, seed: int = 0):
    """Two-channel fields at 128^2 with Gaussian noise (std ``noise``) on phi_w and phi_d."""
    from napari_mollifier.physics.chromatin import ChromatinFields
    from napari_mollifier.physics.simulate import downsample

    rng = np.random.default_rng(seed)
    phi_w = downsample(sim["phi_w"], 2) + noise * rng.standard_normal((N_INV, N_INV))
    phi_d = downsample(sim["phi_d"], 2) + noise * rng.standard_normal((N_INV, N_INV))
    return ChromatinFields.from_phases(phi_w, phi_d, spacing=BOX / N_INV)


def rendered_density(sim: dict, n: int = N_INV, density_per_um2: float = 5e4):
    """The optical path: Poisson localisations (15 nm precision) rendered on an n x n grid."""
    from napari_mollifier.physics.synthetic import render_synthetic_density

    return render_synthetic_density(
        1.0 - sim["phi_w"], float(sim["spacing"]), nm_per_unit=NM_PER_UNIT, shape=(n, n),
        density_per_um2=density_per_um2, precision_nm=15.0, seed=0,
    )  # fmt: skip


def truth_at_inversion(sim: dict) -> np.ndarray:
    from napari_mollifier.physics.simulate import downsample

    return downsample(sim["ratio"], 2)


# --- metrics -------------------------------------------------------------------------------
def quality(estimate, truth, region) -> dict:
    m = region & np.isfinite(estimate)
    e, t = estimate[m], truth[m]
    r = float(np.corrcoef(e, t)[0, 1]) if np.ptp(t) > 0 else float("nan")
    return {
        "r": r,
        "rel_l2": float(np.linalg.norm(e - t) / np.linalg.norm(t)),
        "mean_error": float(e.mean() / t.mean() - 1),
        "coverage": float(m.mean()),
    }


def compare(direct, pinn, truth) -> dict:
    both = direct.valid_mask & pinn.valid_mask
    row = {}
    for name, res in (("direct", direct), ("pinn", pinn)):
        same = quality(res.ratio, truth, both)
        own = quality(res.ratio, truth, res.valid_mask)
        row.update(
            {
                f"{name}_r": same["r"],
                f"{name}_rel_l2": same["rel_l2"],
                f"{name}_mean_error": same["mean_error"],
                f"{name}_coverage": own["coverage"],
                f"{name}_r_own": own["r"],
            }
        )
    return row


# --- sections ------------------------------------------------------------------------------
def accuracy(quick: bool) -> list[dict]:
    from napari_mollifier.inverse import InferenceConfig, infer_rates
    from napari_mollifier.physics.chromatin import ChromatinFields
    from napari_mollifier.physics.simulate import downsample

    rows = []
    sim = simulation()
    truth = truth_at_inversion(sim)
    pinn_cfg = InferenceConfig(method="pinn", device="cpu", seed=0)
    noises = (0.05,) if quick else (0.0, 0.01, 0.05, 0.1)
    cases = [
        (f"fields + {noise:.0%} noise", noisy_fields(sim, noise), pinn_cfg) for noise in noises
    ]
    image = rendered_density(sim)
    lo, hi = np.percentile(downsample(sim["phi_h"], 2), [1, 99])
    anchored = {
        "phi_h_low": float(lo),
        "phi_h_high": float(hi),
        "phi_e": float(sim["phi_e"].mean()),
        "anchor": "mean",
    }
    for label, cal in (
        ("optical path, contrast + phi_e known", anchored),
        ("optical path, default calibration", {}),
    ):
        if quick and cal == {}:
            continue
        cfg = pinn_cfg.replace(calibration=cal)
        fields = ChromatinFields.from_density(
            image, mask=np.ones((N_INV, N_INV), bool), params=cfg.model, calibration=cfg.calibration
        )
        cases.append((label, fields, cfg))
    for label, fields, cfg in cases:
        t0 = time.perf_counter()
        direct = infer_rates(fields, cfg.replace(method="direct"))
        t_direct = time.perf_counter() - t0
        t0 = time.perf_counter()
        pinn = infer_rates(fields, cfg)
        t_pinn = time.perf_counter() - t0
        row = {
            "data": label,
            **compare(direct, pinn, truth),
            "direct_s": t_direct,
            "pinn_s": t_pinn,
            "equations": pinn.metadata["equations"],
            "pinn_width": pinn.metadata["mollifier_width"],
            "direct_width": direct.metadata["mollifier_width"],
        }
        rows.append(row)
        _progress(f"accuracy {label}: direct r {row['direct_r']:.4f}, pinn r {row['pinn_r']:.4f}")
    for value in () if quick else (0.5, 1.0, 1.5):
        fields = noisy_fields(simulation("constant", value), 0.01)
        direct = infer_rates(fields, pinn_cfg.replace(method="direct"))
        pinn = infer_rates(fields, pinn_cfg)
        rows.append(
            {
                "data": f"constant {value}, 1% noise",
                "direct_mean_error": float(np.nanmean(direct.ratio) / value - 1),
                "pinn_mean_error": float(np.nanmean(pinn.ratio) / value - 1),
            }
        )
    return rows


def calibration(quick: bool) -> dict:
    """Fit the spread -> uncertainty factor on seeds 2, 3; check coverage on seed 1."""
    from napari_mollifier.inverse import InferenceConfig, infer_rates
    from napari_mollifier.inverse.pinn import UNCERTAINTY_SCALE

    noises = (0.05,) if quick else (0.01, 0.05, 0.1)
    cfg = InferenceConfig(method="pinn", device="cpu", seed=0)

    def ratios(seed):
        out = []
        for noise in noises:
            sim = simulation(seed=seed)
            truth = truth_at_inversion(sim)
            res = infer_rates(noisy_fields(sim, noise, seed=seed), cfg)
            v = res.valid_mask
            spread = res.uncertainty[v] / UNCERTAINTY_SCALE  # raw ensemble std
            out.append((noise, np.abs(res.ratio[v] - truth[v]) / np.maximum(spread, 1e-12)))
            _progress(f"calibration seed {seed} noise {noise}")
        return out

    fit = ratios(2) + ([] if quick else ratios(3))
    z = np.concatenate([x for _, x in fit])
    factor = float(np.quantile(z, 0.95) / 2.0)  # +-2 x factor x spread covers 95 %
    held = ratios(1)
    rows = []
    for noise, x in held:
        rows.append(
            {
                "noise": noise,
                "coverage_1": float(np.mean(x <= factor)),
                "coverage_2": float(np.mean(x <= 2 * factor)),
                "coverage_2_code_factor": float(np.mean(x <= 2 * UNCERTAINTY_SCALE)),
            }
        )
    return {"fitted_factor": factor, "code_factor": UNCERTAINTY_SCALE, "held_out": rows}


def _cost_job(method: str, backbone: str, patch: int, steps: int, threads: int) -> dict:
    """Time and peak memory of PINN training steps (runs in a fresh process)."""
    import torch

    torch.set_num_threads(threads)
    import dataclasses

    from napari_mollifier.inverse import InferenceConfig, prepare_fields
    from napari_mollifier.inverse.device import resolve_device
    from napari_mollifier.inverse.pinn.member import member_trainer
    from napari_mollifier.inverse.pinn.problem import PinnProblem
    from napari_mollifier.inverse.pinn.warm_start import warm_start

    fields = noisy_fields(simulation(), 0.05)
    pinn = {"backbone": backbone, "patch_size": patch, "steps": steps, "ensemble_size": 1}
    cfg = InferenceConfig(method=method, pinn=pinn, device="cpu", seed=0)
    autodiff = method == "pinn-autodiff"
    options = dataclasses.replace(cfg.pinn, fields_mode="network" if autodiff else "correction")
    device, _ = resolve_device("cpu")
    prepared = prepare_fields(fields, cfg)
    problem = PinnProblem(prepared, warm_start(prepared, cfg), cfg, options, device)
    trainer = member_trainer(problem, cfg, options, 0, autodiff, None)
    trainer.step(0, steps + 2)  # warm-up: allocations, kernel caches
    meter = PeakMeter("cpu")
    meter.start()
    t0 = time.perf_counter()
    for k in range(steps):
        trainer.step(k + 1, steps + 2)
    seconds = (time.perf_counter() - t0) / steps
    return {
        "s_per_step": seconds,
        "peak_mb": meter.peak_mb(),
        "window_px": problem.patch + 2 * problem.radius,
    }


def cost(quick: bool, threads: int) -> list[dict]:
    rows = []
    for backbone in ("pinn", "pirate"):
        for patch in (16,) if quick else (16, 32):
            row = {"backbone": backbone, "patch_px": patch}
            for method in ("pinn", "pinn-autodiff"):
                steps = 3 if method == "pinn-autodiff" else 10
                kwargs = {
                    "method": method,
                    "backbone": backbone,
                    "patch": patch,
                    "steps": steps,
                    "threads": threads,
                }
                memory = run_isolated(_cost_job, kwargs, malloc="release")
                timing = run_isolated(_cost_job, kwargs, malloc="keep")
                key = "mollifier" if method == "pinn" else "autodiff"
                row[f"{key}_s_per_step"] = timing.get("s_per_step")
                row[f"{key}_peak_mb"] = memory.get("peak_mb")
                row["window_px"] = timing.get("window_px")
                if "error" in memory or "error" in timing:
                    row[f"{key}_error"] = memory.get("error") or timing.get("error")
            if row.get("mollifier_s_per_step") and row.get("autodiff_s_per_step"):
                row["time_ratio"] = row["autodiff_s_per_step"] / row["mollifier_s_per_step"]
            if row.get("mollifier_peak_mb") and row.get("autodiff_peak_mb"):
                row["memory_ratio"] = row["autodiff_peak_mb"] / row["mollifier_peak_mb"]
            rows.append(row)
            _progress(f"cost {backbone} patch {patch}: {row}")
    return rows


def speed(size: int, tiles: int = 1) -> dict:
    """Default "Infer rates" (PINN, default config, device auto) on a density image.

    The simulation box rendered on ``size`` x ``size`` pixels, tiled ``tiles`` x ``tiles``
    times (the simulation is periodic, so the tiling is seamless): ``--speed-size 256
    --speed-tiles 4`` is a 1024^2 image at the 11.7 nm pixels of the 256^2 one, i.e. a 12 um
    field, where ``--speed-size 1024`` would be the same 3 um box at 2.9 nm pixels.
    """
    import resource
    from dataclasses import replace

    from napari_mollifier.inverse import InferenceConfig, infer_rates
    from napari_mollifier.physics.chromatin import ChromatinFields

    sim = simulation()
    density = rendered_density(sim, n=size)
    if tiles > 1:
        density = replace(density, data=np.tile(density.data, (tiles, tiles)))
    shape = density.data.shape
    fields = ChromatinFields.from_density(density, mask=np.ones(shape, bool))
    cfg = InferenceConfig(method="pinn", device="auto")

    def peak_rss_mb():  # whole process, data preparation included (Linux: ru_maxrss in KiB)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t0 = time.perf_counter()
    direct = infer_rates(fields, cfg.replace(method="direct"))
    direct_seconds = time.perf_counter() - t0
    direct_rss = peak_rss_mb()
    t0 = time.perf_counter()
    result = infer_rates(fields, cfg)
    seconds = time.perf_counter() - t0
    width = result.metadata.get("mollifier_width")
    return {
        "size": shape[0],
        "pixel_size_nm": density.pixel_size_nm,
        "direct_seconds": direct_seconds,
        "direct_peak_rss_mb": direct_rss,
        "direct_valid_fraction": float(direct.valid_mask.mean()),
        "seconds": seconds,
        "steps": cfg.pinn.steps,
        "steps_done": (result.diagnostics or {}).get("steps_done"),
        "ensemble": cfg.pinn.ensemble_size,
        "patch": cfg.pinn.patch_size,
        "mollifier_width_px": (width / float(fields.spacing)) if width else None,
        "valid_fraction": float(result.valid_mask.mean()),
        "peak_rss_mb": peak_rss_mb(),
        "device": result.metadata["device"],
        "device_reason": result.metadata["device_reason"],
        "timings": result.timings,
        "load_after": os.getloadavg()[0],
    }


# --- output --------------------------------------------------------------------------------
def _progress(message: str) -> None:
    print(
        f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {message}",
        file=sys.stderr,
        flush=True,
    )


def _fmt(value) -> str:
    if isinstance(value, float):
        if abs(value) < 1 and "e" not in f"{value:.4g}":
            return f"{value:.4f}"
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def table(rows: list[dict], keys: list[str] | None = None) -> str:
    keys = keys or list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(row.get(k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sections = ("accuracy", "calibration", "cost", "speed")
    parser.add_argument("--only", nargs="+", choices=sections, default=list(sections))
    parser.add_argument("--quick", action="store_true", help="fewer cases (smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--speed-size", type=int, default=256)
    parser.add_argument(
        "--speed-tiles", type=int, default=1, help="tile the speed image k x k (seamless)"
    )
    parser.add_argument("--out", default=str(HERE / "results" / "pinn.json"))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    report = {
        "machine": describe_machine("cpu", args.threads)
        + f", load average at start {os.getloadavg()[0]:.1f}",
        "quick": args.quick,
    }
    print(f"Machine: {report['machine']}\n")
    if "accuracy" in args.only:
        report["accuracy"] = accuracy(args.quick)
        print("### Direct vs PINN (r, rel. L2, mean error on the pixels both cover)\n")
        print(table(report["accuracy"]) + "\n")
    if "calibration" in args.only:
        report["calibration"] = calibration(args.quick)
        cal = report["calibration"]
        print(
            f"### Uncertainty calibration: fitted factor {cal['fitted_factor']:.3g} "
            f"(code uses {cal['code_factor']:.3g}); held-out coverage\n"
        )
        print(table(cal["held_out"]) + "\n")
    if "cost" in args.only:
        report["cost"] = cost(args.quick, args.threads)
        print("### Cost per training step: mollifier layer vs nested autodiff (4th order)\n")
        print(table(report["cost"]) + "\n")
    if "speed" in args.only:
        report["speed"] = speed(args.speed_size, args.speed_tiles)
        s = report["speed"]
        print(
            f"### Default Infer rates on {s['size']}^2 ({s['pixel_size_nm']:.1f} nm pixels): "
            f"{s['seconds']:.1f} s on {s['device']} ({s['device_reason']}); {s['steps']} steps "
            f"({s['steps_done']} done), {s['ensemble']} members, patch {s['patch']}, mollifier "
            f"{s['mollifier_width_px']:.1f} px; peak RSS {s['peak_rss_mb']:.0f} MB. Direct "
            f"estimator on the same image first: {s['direct_seconds']:.1f} s, peak RSS "
            f"{s['direct_peak_rss_mb']:.0f} MB\n"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
