"""DeepXDE side by side with the mollified PINN and the direct estimator (issue 17).

The same 4th-order chromatin inverse problem as the paper benchmark (``benchmarks/paper.py``,
problem ``chromatin``: a simulated steady state, block-averaged, 5 % noise), solved three ways:

- **mollified PINN**: ``paper.train_cell(problem="chromatin", backbone="pinn",
  method="mollifier")``, the paper benchmark's own cell (its quick-mode step budget);
- **DeepXDE** (PyTorch backend) as a competent user of it would write it: its own ``FNN``
  (tanh, Glorot normal) with an output transform (field normalisation, ``lambda = exp``), the
  residual ``lap(mu_d) + 2 (lambda phi_e - phi_h)`` with nested ``dde.grad.hessian``
  (``mu_d = g(phi_h) - phi_e - l^2 lap(phi_d)``: 4th derivatives of phi_d), collocation at the
  grid points (``anchors``), ``PointSetBC`` observations of phi_d and phi_w at the grid points
  weighted by 1 / std^2 (the misfit the mollified PINN minimises), Adam at the same learning
  rate;
- **direct**: the closed-form weak-form estimate (``reference_r`` of the problem), no training.

Accuracy (Pearson r and relative L2 of lambda against the truth, on the interior the mollified
residual covers, for every method) is read for DeepXDE at the mollified PINN's wall time and at
longer budgets (``--long-factors``, default 4 and 16 x that time). Time per step and peak
memory (CPU: VmHWM above the live memory over two steps, glibc set to return freed memory, as
paper.py does) are measured in one fresh process per method, one torch thread each.

    pip install 'napari-mollifier[benchmarks]'
    python benchmarks/deepxde_chromatin.py                # grid 40, ~6 min on a 2-core CPU
    python benchmarks/deepxde_chromatin.py --grid 32 --mollified-steps 300 --long-factors 2

Prints a markdown table; ``--out`` writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue as queue_module
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _machine import describe_machine  # noqa: E402
from _memory import PeakMeter  # noqa: E402
from _paper_problems import make_problem, reference_r  # noqa: E402
from paper import _malloc_returns_memory, _pearson, run_isolated  # noqa: E402

LR = 5e-3  # paper.py quick mode


# --- DeepXDE ----------------------------------------------------------------------------------
def _build_model(prob, seed: int, width: int, depth: int):
    """The DeepXDE model of the 4th-order chromatin inverse problem (compiled, Adam)."""
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    import deepxde as dde
    import numpy as np
    import torch

    dde.config.set_random_seed(seed)
    dde.config.set_default_float("float32")
    coords = prob.coords.astype(np.float32)  # (N, 2), columns (y, x), model units
    lo, hi = coords.min(0), coords.max(0)
    half = 0.5 * np.asarray(prob.spacing, dtype=np.float32)
    geom = dde.geometry.Rectangle((lo - half).tolist(), (hi + half).tolist())
    data = prob.data.reshape(prob.n_fields, -1).astype(np.float32)  # (phi_d, phi_w)
    mean, std = data.mean(1), data.std(1)
    pm, ell2, scale = prob.phi_max, prob.interface_length**2, prob.residual_scale

    def lap(u, x):
        return dde.grad.hessian(u, x, i=0, j=0) + dde.grad.hessian(u, x, i=1, j=1)

    def pde(x, y):
        phi_d, phi_w, lam = y[:, 0:1], y[:, 1:2], y[:, 2:3]
        phi_h, phi_e = (1 - phi_w + phi_d) / 2, (1 - phi_w - phi_d) / 2
        g = phi_h * (pm - phi_h) * (pm - 2 * phi_h)
        lap_phi_d = dde.grad.hessian(y, x, component=0, i=0, j=0) + dde.grad.hessian(
            y, x, component=0, i=1, j=1
        )
        mu_d = g - phi_e - ell2 * lap_phi_d
        return (lap(mu_d, x) + 2 * (lam * phi_e - phi_h)) / scale

    observe = [
        dde.icbc.PointSetBC(coords, data[c][:, None], component=c) for c in range(prob.n_fields)
    ]
    pde_data = dde.data.PDE(geom, pde, observe, num_domain=0, num_boundary=0, anchors=coords)
    net = dde.nn.FNN([2] + [width] * depth + [3], "tanh", "Glorot normal")
    mean_t, std_t = torch.as_tensor(mean), torch.as_tensor(std)

    def transform(x, y):  # normalised outputs -> physical fields, lambda > 0
        fields = mean_t + std_t * y[:, :2]
        return torch.cat([fields, torch.exp(y[:, 2:3])], dim=1)

    net.apply_output_transform(transform)
    model = dde.Model(pde_data, net)
    # data misfit normalised by each field's variance, averaged over the fields (paper.py)
    weights = [1.0] + [1.0 / (prob.n_fields * float(s) ** 2) for s in std]
    model.compile("adam", lr=LR, loss_weights=weights)
    return model


def _lam_metrics(model, prob) -> dict:
    import numpy as np

    lam = model.predict(prob.coords.astype(np.float32))[:, 2].reshape(prob.shape)
    est = prob.interior(lam.astype(np.float64))
    truth = prob.interior(prob.truth)
    return {
        "pearson_r": _pearson(est, truth),
        "rel_l2": float(np.linalg.norm(est - truth) / np.linalg.norm(truth)),
    }


def train_deepxde(
    grid: int,
    noise: float,
    seed: int,
    checkpoints_s: list[float],
    width: int = 64,
    depth: int = 4,
    chunk: int = 2,
    memory_steps: int = 2,
) -> dict:
    """Train until the last of ``checkpoints_s`` (training seconds); metrics at each one."""
    import torch

    torch.set_num_threads(1)
    tunables = _malloc_returns_memory(True)
    prob = make_problem("chromatin", grid, noise, seed=seed)
    model = _build_model(prob, seed, width, depth)
    meter = PeakMeter("cpu")
    meter.start()
    model.train(iterations=memory_steps, display_every=10**9, verbose=0)
    peak_mb = meter.peak_mb()
    _malloc_returns_memory(False)
    model = _build_model(prob, seed, width, depth)  # the timed run starts afresh
    rows, trained_s, steps = [], 0.0, 0
    todo = sorted(checkpoints_s)
    while todo:
        t0 = time.perf_counter()
        model.train(iterations=chunk, display_every=10**9, verbose=0)
        trained_s += time.perf_counter() - t0
        steps += chunk
        while todo and trained_s >= todo[0]:
            rows.append({"budget_s": todo.pop(0), "time_s": trained_s, "steps": steps,
                         **_lam_metrics(model, prob)})  # fmt: skip
    n_params = sum(p.numel() for p in model.net.parameters())
    return {
        "method": "deepxde",
        "points": int(prob.coords.shape[0]),
        "parameters": int(n_params),
        "step_ms": 1e3 * trained_s / steps,
        "peak_mb": peak_mb,
        "malloc_tunables": tunables,
        "checkpoints": rows,
        "net": f"FNN {width} x {depth}, tanh",
    }


def _child(kwargs, queue):
    try:
        queue.put(train_deepxde(**kwargs))
    except Exception as exc:  # report, do not leave the parent waiting
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def run_deepxde_isolated(kwargs: dict, timeout_s: float = 3600) -> dict:
    """:func:`train_deepxde` in a fresh spawned process (its peak memory is its own)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kwargs, queue))
    proc.start()
    try:
        result = queue.get(timeout=timeout_s)
    except queue_module.Empty:
        result = {"error": f"no result within {timeout_s:.0f} s"}
        proc.kill()
    proc.join(30)
    if proc.is_alive():
        proc.kill()
    return result


# --- the comparison ---------------------------------------------------------------------------
def run(grid: int, noise: float, seed: int, mollified_steps: int, long_factors) -> dict:
    prob = make_problem("chromatin", grid, noise, seed=seed)  # simulates once, then cached
    t0 = time.perf_counter()
    ref = reference_r(prob)  # the closed form (and two cheaper baselines)
    direct_s = time.perf_counter() - t0
    moll = run_isolated(
        dict(problem="chromatin", backbone="pinn", method="mollifier", noise=noise, seed=seed,
             grid=grid, steps=mollified_steps, lr=LR)
    )  # fmt: skip
    if "error" in moll:
        raise RuntimeError(f"mollified PINN failed: {moll['error']}")
    budgets = [moll["time_s"]] + [f * moll["time_s"] for f in long_factors]
    dde_result = run_deepxde_isolated(
        dict(grid=grid, noise=noise, seed=seed, checkpoints_s=budgets)
    )
    if "error" in dde_result:
        raise RuntimeError(f"DeepXDE failed: {dde_result['error']}")
    return {
        "machine": describe_machine(),
        "grid": grid,
        "noise": noise,
        "seed": seed,
        "interior_px": (grid - 2 * prob.crop) ** 2,
        "direct": {"pearson_r": ref["direct"], "rel_l2": ref["direct_rel_l2"], "time_s": direct_s},
        "mollified": {k: moll[k] for k in ("time_s", "step_ms", "steps_done", "peak_mb",
                                          "pearson_r", "rel_l2", "parameters", "points")},
        "deepxde": dde_result,
        "constant_map_rel_l2": prob.info["constant_map_rel_l2"],
    }  # fmt: skip


def table(res: dict) -> str:
    moll, dde_res, direct = res["mollified"], res["deepxde"], res["direct"]
    lines = [
        f"4th-order chromatin, {res['grid']}^2 grid, {res['noise']:.0%} noise, seed "
        f"{res['seed']}; accuracy on the {res['interior_px']}-pixel interior (a constant map "
        f"has relative L2 {res['constant_map_rel_l2']:.3f}). {res['machine']}",
        "",
        "| method | budget | steps | time per step (ms) | peak memory (MB) | Pearson r | rel. L2 |",
        "|---|---|---|---|---|---|---|",
        f"| direct (closed form) | {direct['time_s']:.2f} s | - | - | - | "
        f"{direct['pearson_r']:.3f} | {direct['rel_l2']:.3f} |",
        f"| mollified PINN | {moll['time_s']:.0f} s | {moll['steps_done']} | "
        f"{moll['step_ms']:.1f} | {_mb(moll['peak_mb'])} | {moll['pearson_r']:.3f} | "
        f"{moll['rel_l2']:.3f} |",
    ]
    for row in dde_res["checkpoints"]:
        lines.append(
            f"| DeepXDE (nested hessian) | {row['time_s']:.0f} s | {row['steps']} | "
            f"{dde_res['step_ms']:.0f} | {_mb(dde_res['peak_mb'])} | {row['pearson_r']:.3f} | "
            f"{row['rel_l2']:.3f} |"
        )
    return "\n".join(lines)


def _mb(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=int, default=40, help="pixels per side (default 40)")
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mollified-steps", type=int, default=1000)
    parser.add_argument("--long-factors", type=float, nargs="+", default=[4.0, 16.0],
                        help="longer DeepXDE budgets, in mollified-PINN wall times")  # fmt: skip
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args(argv)
    res = run(args.grid, args.noise, args.seed, args.mollified_steps, args.long_factors)
    print(table(res))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
