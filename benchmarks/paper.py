"""Reproduce the Mollifier Layers paper's benchmark matrix (issue 8).

Problems of derivative order 1 (Langevin forcing), 2 (heat conduction diffusivity) and 4 (the
chromatin rate ratio), backbones PINN / PirateNet / PINNsFormer, residual derivatives by nested
autodiff or by one mollifier layer, noise 0 / 1 / 5 / 10 %. One generic training loop for all:

    backbone(coords) -> normalised fields + lambda on the grid
    loss = data misfit (normalised) + residual_weight * mean((residual / residual_scale)^2)

with the same optimiser (Adam), learning rate and step budget for both derivative methods. Per
cell it records wall time to the step budget, time to a target loss (the data-misfit term, the
same definition for both methods) and to a target recovery error, peak memory (CPU: VmHWM of a
fresh child process above its baseline after setup; CUDA: ``torch.cuda.max_memory_allocated``),
Pearson r and relative L2 of the recovered lambda (on the interior the mollified residual
covers, for both methods), and the final residual.

    python benchmarks/paper.py --quick            # 2-core CPU, < 15 min
    python benchmarks/paper.py --full --device cuda
    python benchmarks/paper.py --problems chromatin --backbones pinn --methods mollifier \\
        --noise 0.05 --seeds 0 --steps 200          # one custom slice

Results: a markdown report on stdout and JSON (``--out``, default
benchmarks/results/paper_<mode>.json); ``--plot PNG`` draws time / memory / r figures.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _paper_problems import PROBLEM_ORDERS, make_problem  # noqa: E402

BACKBONES = ("pinn", "pirate", "pinnsformer")
METHODS = ("autodiff", "mollifier")
NOISE_LEVELS = (0.0, 0.01, 0.05, 0.10)

#: Published numbers (Bhartari, Vinayak, Shenoy, arXiv 2505.11682), 4th-order problem, GPU.
PAPER = {
    "speedup_range": "6-10x less time and memory than autodiff",
    "fourth_order_time_s": {"autodiff": 3300.0, "mollifier": 335.0},
    "fourth_order_peak_gb": {"autodiff": 2.7, "mollifier": "0.2-0.4"},
    "fourth_order_pearson_r": {
        ("pinn", "autodiff"): 0.17,
        ("pinn", "mollifier"): 0.84,
        ("pirate", "mollifier"): 0.91,
    },
}
TARGETS = {"speedup_4th": 10.0, "r_pinn_5pct": 0.9, "r_pirate_5pct": 0.95}

#: Mode presets. ``grid`` is points (1D) or points per side (2D).
MODES = {
    "quick": {
        "preset": "default",
        "grid": {"langevin": 192, "heat": 40, "heat-div": 40, "chromatin": 40},
        "steps": {"langevin": 1000, "heat": 300, "heat-div": 300, "chromatin": 300},
        "lr": 5e-3,
        # nested autodiff at 2nd / 4th order takes seconds per step on 2 CPU cores: such cells
        # stop after 40 s and report the measured time per step x the budget (marked *)
        "time_limit_s": 40.0,
        "seeds": (0,),
        "problems": ("langevin", "heat", "chromatin"),
        # main matrix: every backbone x method at 5 % noise; noise sweep: mollified PINN and
        # PirateNet on the 4th-order problem at 0, 1, 10 % (autodiff cannot train there in
        # the time); scaling: PINN, 10 steps, two grid sizes per problem
        "matrix_noise": (0.05,),
        "sweep": {"problems": ("chromatin",), "backbones": ("pinn", "pirate"),
                  "noise": (0.0, 0.01, 0.10), "methods": ("mollifier",)},
        "scaling": {"backbone": "pinn", "steps": 10, "time_limit_s": 10.0,
                    "grids": {"langevin": (192, 768), "heat": (40, 64), "chromatin": (40, 56)}},
    },
    "full": {
        "preset": "paper",
        "grid": {"langevin": 1024, "heat": 128, "heat-div": 128, "chromatin": 128},
        "steps": {"langevin": 5000, "heat": 5000, "heat-div": 5000, "chromatin": 5000},
        "lr": 1e-3,
        "time_limit_s": None,
        "seeds": (0, 1, 2),
        "problems": ("langevin", "heat", "heat-div", "chromatin"),
        "matrix_noise": NOISE_LEVELS,
        "sweep": None,
        "scaling": {"backbone": "pinn", "steps": 50, "time_limit_s": None,
                    "grids": {"langevin": (1024, 4096), "heat": (128, 256, 512),
                              "chromatin": (128, 256, 512)}},
    },
}  # fmt: skip


# --- one training run -----------------------------------------------------------------------
def _peak_reset():
    """Reset the kernel's RSS high-water mark of this process (Linux); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_hwm_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _pearson(a, b) -> float:
    import numpy as np

    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    denom = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b) / denom) if denom > 0 else float("nan")


def train_cell(
    problem: str,
    backbone: str,
    method: str,
    noise: float,
    seed: int = 0,
    grid: int = 40,
    steps: int = 200,
    lr: float = 2e-3,
    preset: str = "default",
    residual_weight: float = 1.0,
    target_error: float = 0.25,
    device: str = "cpu",
    measure_memory: bool = True,
    time_limit_s: float | None = None,
    min_steps: int = 2,
) -> dict:
    """Train one backbone on one problem with one derivative method; return the metrics.

    Returns a JSON-able dict: configuration, ``time_s`` (wall time of ``steps`` steps),
    ``time_to_target_loss_s`` / ``time_to_target_error_s`` (None if never reached),
    ``peak_mb``, ``pearson_r``, ``rel_l2``, ``final_loss``, ``final_data``,
    ``final_residual`` (RMS of the method's own normalised residual) and ``loss_curve``.

    ``time_limit_s`` stops a run early (after at least ``min_steps``) when its training time
    exceeds the limit: ``steps_done`` < ``steps``, ``projected`` is True and ``time_s`` is the
    measured time per step times ``steps`` (recovery metrics are those after ``steps_done``).
    """
    import numpy as np
    import torch

    from napari_mollifier.nets import build_backbone, count_parameters

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, found {method!r}")
    dev = torch.device(device)
    prob = make_problem(problem, grid, noise, seed=seed)
    dtype = torch.float32
    coords = torch.as_tensor(prob.coords, dtype=dtype, device=dev)
    data = torch.as_tensor(prob.data, dtype=dtype, device=dev)
    mean = data.reshape(prob.n_fields, -1).mean(1)
    std = data.reshape(prob.n_fields, -1).std(1)
    net = build_backbone(
        backbone, in_dim=prob.ndim, out_dim=prob.n_fields + 1, preset=preset, seed=seed
    ).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    layers = {k: v.to(dev) for k, v in prob.layers(dtype).items()}
    known_moll = prob.mollify_known(layers, dtype, dev)
    known_flat = {
        k: torch.as_tensor(v, dtype=dtype, device=dev).reshape(-1) for k, v in prob.known.items()
    }
    truth_c = prob.interior(prob.truth)
    data_flat = data.reshape(prob.n_fields, -1)
    scale = prob.residual_scale
    # the data-misfit target: the noise floor of the normalised misfit plus a small margin
    target_loss = 1.5 * noise**2 + 2e-3

    def outputs(raw):
        fields = [mean[c] + std[c] * raw[:, c] for c in range(prob.n_fields)]
        lam_raw = raw[:, -1]
        lam = torch.exp(lam_raw) if prob.positive else lam_raw * float(np.std(prob.data))
        return fields, lam

    def step():
        opt.zero_grad(set_to_none=True)
        if method == "autodiff":
            c = coords.clone().requires_grad_(True)
            fields, lam = outputs(net(c))
            res = prob.residual_autodiff(fields, lam, c, known_flat)
        else:
            fields, lam = outputs(net(coords))
            grids = torch.stack(fields).reshape(prob.n_fields, *prob.shape)
            res = prob.residual_mollifier(grids, lam.reshape(prob.shape), layers, known_moll)
        misfit = sum(((f - data_flat[c]) / std[c]).pow(2).mean() for c, f in enumerate(fields))
        misfit = misfit / prob.n_fields
        res_loss = (res / scale).pow(2).mean()
        loss = misfit + residual_weight * res_loss
        loss.backward()
        opt.step()
        return loss.item(), misfit.item(), res_loss.item(), lam.detach()

    def lam_error(lam):
        est = prob.interior(lam.reshape(prob.shape).cpu().numpy().astype(np.float64))
        return float(np.linalg.norm(est - truth_c) / np.linalg.norm(truth_c)), est

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _peak_reset() and _rss_hwm_bytes()
        base = base or _rss_hwm_bytes()
    curve, t_loss, t_err = [], None, None
    monitor = 0.0  # seconds spent on metric bookkeeping, excluded from the timings
    t0 = time.perf_counter()
    steps_done = 0
    for i in range(steps):
        if time_limit_s is not None and i >= min_steps:
            if time.perf_counter() - t0 - monitor > time_limit_s:
                break
        loss, misfit, res_loss, lam = step()
        steps_done = i + 1
        m0 = time.perf_counter()
        elapsed = m0 - t0 - monitor
        err, _ = lam_error(lam)
        if t_loss is None and misfit <= target_loss:
            t_loss = elapsed
        if t_err is None and err <= target_error:
            t_err = elapsed
        if i % max(1, steps // 50) == 0 or i == steps - 1:
            curve.append([i, round(elapsed, 4), loss, misfit, res_loss, err])
        monitor += time.perf_counter() - m0
    if dev.type == "cuda":
        torch.cuda.synchronize()
    measured = time.perf_counter() - t0 - monitor
    total = measured * steps / steps_done
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _rss_hwm_bytes() - base
    err, est = lam_error(lam)
    return {
        "problem": problem,
        "order": PROBLEM_ORDERS[problem],
        "backbone": backbone,
        "method": method,
        "noise": noise,
        "seed": seed,
        "grid": grid,
        "points": int(coords.shape[0]),
        "steps": steps,
        "lr": lr,
        "preset": preset,
        "parameters": count_parameters(net),
        "mollifier_width": prob.width,
        "mollifier_width_px": prob.width / min(prob.spacing),
        "crop_px": prob.crop,
        "steps_done": steps_done,
        "projected": steps_done < steps,
        "measured_s": measured,
        "time_s": total,
        "step_ms": 1e3 * total / steps,
        "target_loss": target_loss,
        "time_to_target_loss_s": t_loss,
        "target_error": target_error,
        "time_to_target_error_s": t_err,
        "peak_mb": (max(peak, 0) / 2**20) if measure_memory else None,
        "pearson_r": _pearson(est, truth_c),
        "rel_l2": err,
        "final_loss": loss,
        "final_data": misfit,
        "final_residual": math.sqrt(res_loss),
        "loss_curve": curve,
        "device": device,
    }


def _worker(kwargs, threads, queue):
    import torch

    # one thread by default: on a shared 2-core box two OpenMP threads competing with other
    # processes slow some cells down by 10-50x (spin-waiting), which would make timings random
    torch.set_num_threads(threads)
    try:
        queue.put(train_cell(**kwargs))
    except Exception as exc:  # report, do not hang the parent
        queue.put({**kwargs, "error": f"{type(exc).__name__}: {exc}"})


def run_isolated(kwargs: dict, threads: int = 1, timeout_s: float = 1800) -> dict:
    """Run :func:`train_cell` in a fresh spawned process so its peak memory is its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(kwargs, threads, queue))
    proc.start()
    try:
        result = queue.get(timeout=timeout_s)
    except Exception:
        result = {**kwargs, "error": f"no result within {timeout_s} s"}
    proc.join(10)
    if proc.is_alive():
        proc.kill()
    return result


# --- aggregation and tables -----------------------------------------------------------------
def _fmt(v, spec=".3g"):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return format(v, spec)


def _agg(values, spec=".3g"):
    """'median' or 'median [min, max]' over seeds; '-' when none is defined."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "-" if not values else f"- ({len(values)} not reached)"
    med = statistics.median(vals)
    text = _fmt(med, spec)
    if len(vals) > 1:
        text += f" [{_fmt(min(vals), spec)}, {_fmt(max(vals), spec)}]"
    if len(vals) < len(values):
        text += f" ({len(values) - len(vals)}/{len(values)} not reached)"
    return text


def _groups(cells, keys):
    out: dict = {}
    for c in cells:
        if "error" in c:
            continue
        out.setdefault(tuple(c[k] for k in keys), []).append(c)
    return out


def matrix_table(cells) -> str:
    """Main table: one row per (problem, grid, backbone, method, noise)."""
    head = (
        "| order | problem | grid | backbone | method | noise | steps (done) | time s | ms/step | "
        "time to loss target s | time to error target s | peak MB | Pearson r | rel L2 | "
        "final residual |\n|" + "---|" * 15
    )
    rows = [head]
    keys = ("order", "problem", "grid", "backbone", "method", "noise", "steps")
    for key, group in sorted(_groups(cells, keys).items()):
        order, problem, grid, backbone, method, noise, steps = key

        def g(name, group=group):
            return [c[name] for c in group]

        done = min(c["steps_done"] for c in group)
        star = "*" if any(c["projected"] for c in group) else ""
        rows.append(
            f"| {order} | {problem} | {grid} | {backbone} | {method} | {noise:.0%} | {steps}"
            f"{f' ({done})' if done < steps else ''} | "
            f"{_agg(g('time_s'))}{star} | {_agg(g('step_ms'))} | "
            f"{_agg(g('time_to_target_loss_s'))} | "
            f"{_agg(g('time_to_target_error_s'))} | {_agg(g('peak_mb'))} | "
            f"{_agg(g('pearson_r'), '.3f')} | {_agg(g('rel_l2'), '.3f')} | "
            f"{_agg(g('final_residual'))} |"
        )
    return "\n".join(rows)


def ratio_table(cells) -> str:
    """Autodiff / mollifier ratios of time and peak memory on the same step budget."""
    rows = [
        "| order | problem | grid | backbone | noise | time autodiff / mollifier | "
        "memory autodiff / mollifier | r autodiff | r mollifier |\n|" + "---|" * 9
    ]
    keys = ("order", "problem", "grid", "backbone", "noise", "steps")
    for key, group in sorted(_groups(cells, keys).items()):
        order, problem, grid, backbone, noise, _ = key
        by = {m: [c for c in group if c["method"] == m] for m in METHODS}
        if not by["autodiff"] or not by["mollifier"]:
            continue

        def med(m, name, by=by):
            return statistics.median(c[name] for c in by[m])

        t = med("autodiff", "time_s") / med("mollifier", "time_s")
        mem_m = med("mollifier", "peak_mb")
        mem = med("autodiff", "peak_mb") / mem_m if mem_m and mem_m > 0 else float("nan")
        rows.append(
            f"| {order} | {problem} | {grid} | {backbone} | {noise:.0%} | {t:.1f}x | "
            f"{mem:.1f}x | {med('autodiff', 'pearson_r'):.3f} | "
            f"{med('mollifier', 'pearson_r'):.3f} |"
        )
    return "\n".join(rows)


def paper_table(cells) -> str:
    """Our 4th-order numbers next to the paper's published ones."""
    fourth = [c for c in cells if c.get("order") == 4 and "error" not in c]
    noise_pref = 0.05 if any(c["noise"] == 0.05 for c in fourth) else None

    def pick(backbone, method, name):
        vals = [
            c[name]
            for c in fourth
            if c["backbone"] == backbone
            and c["method"] == method
            and (noise_pref is None or c["noise"] == noise_pref)
        ]
        return statistics.median(vals) if vals else None

    rows = ["| quantity (4th order) | paper (GPU) | ours |\n|---|---|---|"]
    for bb in ("pinn", "pirate"):
        ta, tm = pick(bb, "autodiff", "time_s"), pick(bb, "mollifier", "time_s")
        ma, mm = pick(bb, "autodiff", "peak_mb"), pick(bb, "mollifier", "peak_mb")
        if ta and tm:
            star = "*" if pick(bb, "autodiff", "projected") else ""
            rows.append(
                f"| {bb}: training time autodiff -> mollifier | 3300 s -> 335 s (9.9x) | "
                f"{ta:.1f}{star} s -> {tm:.1f} s ({ta / tm:.1f}x) |"
            )
        if ma is not None and mm:
            rows.append(
                f"| {bb}: peak memory autodiff -> mollifier | 2.7 GB -> 0.2-0.4 GB (7-13x) | "
                f"{ma:.0f} MB -> {mm:.0f} MB ({ma / mm:.1f}x) |"
            )

    def cut(bb, m):
        done, steps = pick(bb, m, "steps_done"), pick(bb, m, "steps")
        return f" (after {done:.0f} of {steps:.0f} steps)" if done and done < steps else ""

    for (bb, m), r_paper in PAPER["fourth_order_pearson_r"].items():
        r = pick(bb, m, "pearson_r")
        rows.append(f"| Pearson r, {m} {bb} | {r_paper:.2f} | {_fmt(r, '.3f')}{cut(bb, m)} |")
    for bb, m in (
        ("pirate", "autodiff"),
        ("pinnsformer", "autodiff"),
        ("pinnsformer", "mollifier"),
    ):
        r = pick(bb, m, "pearson_r")
        rows.append(f"| Pearson r, {m} {bb} | (not given) | {_fmt(r, '.3f')}{cut(bb, m)} |")
    if noise_pref is not None:
        rows.append("| noise of our rows | (paper: its own noise model) | 5 % |")
    return "\n".join(rows)


def targets_table(cells) -> str:
    """The issue's targets: pass / fail with the measured value."""
    fourth = [c for c in cells if c.get("order") == 4 and "error" not in c and c["noise"] == 0.05]

    def med(bb, m, name):
        vals = [c[name] for c in fourth if c["backbone"] == bb and c["method"] == m]
        return statistics.median(vals) if vals else None

    rows = ["| target | measured | met |\n|---|---|---|"]
    for bb in ("pinn", "pirate"):
        for name, label in (("time_s", "time"), ("peak_mb", "memory")):
            a, m = med(bb, "autodiff", name), med(bb, "mollifier", name)
            if a is None or not m:
                continue
            ratio = a / m
            rows.append(
                f"| 4th order {bb}: >= 10x less {label} | {ratio:.1f}x | "
                f"{'yes' if ratio >= TARGETS['speedup_4th'] else 'no'} |"
            )
    for bb, key in (("pinn", "r_pinn_5pct"), ("pirate", "r_pirate_5pct")):
        r = med(bb, "mollifier", "pearson_r")
        if r is not None:
            rows.append(
                f"| mollified {bb} r >= {TARGETS[key]} at 5 % noise | {r:.3f} | "
                f"{'yes' if r >= TARGETS[key] else 'no'} |"
            )
    return "\n".join(rows)


def scaling_table(cells) -> str:
    rows = [
        "| order | problem | grid | points | autodiff ms/step | mollifier ms/step | time ratio | "
        "autodiff MB | mollifier MB | memory ratio |\n|" + "---|" * 10
    ]
    for key, group in sorted(_groups(cells, ("order", "problem", "grid")).items()):
        by = {c["method"]: c for c in group}
        if set(by) != set(METHODS):
            continue
        a, m = by["autodiff"], by["mollifier"]
        mem = a["peak_mb"] / m["peak_mb"] if m["peak_mb"] else float("nan")
        rows.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {a['points']} | {a['step_ms']:.1f} | "
            f"{m['step_ms']:.1f} | {a['step_ms'] / m['step_ms']:.1f}x | {a['peak_mb']:.0f} | "
            f"{m['peak_mb']:.0f} | {mem:.1f}x |"
        )
    return "\n".join(rows)


def plot(results: dict, path: str) -> None:
    """Three panels: step time and peak memory vs order / grid (scaling runs), r vs noise."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scaling = [c for c in results.get("scaling", []) if "error" not in c]
    cells = [c for c in results.get("cells", []) if "error" not in c]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), dpi=80)
    markers = {1: "o", 2: "s", 4: "^"}
    colors = {1: "tab:blue", 2: "tab:orange", 4: "tab:green"}
    for method, style in (("autodiff", "--"), ("mollifier", "-")):
        for order in (1, 2, 4):
            pts = sorted(
                (c["points"], c["step_ms"], c["peak_mb"])
                for c in scaling
                if c["method"] == method and c["order"] == order
            )
            if not pts:
                continue
            xs = [p[0] for p in pts]
            kw = dict(marker=markers[order], color=colors[order])
            label = f"{method}, order {order}"
            axes[0].plot(xs, [p[1] for p in pts], style, label=label, **kw)
            axes[1].plot(xs, [max(p[2], 1e-1) for p in pts], style, **kw)
    for ax, title in ((axes[0], "time per step (ms)"), (axes[1], "peak memory (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("grid points")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(title, fontsize=10)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    fourth = [c for c in cells if c["order"] == 4]
    for (bb, method), group in sorted(_groups(fourth, ("backbone", "method")).items()):
        by_noise: dict = {}
        for c in group:
            by_noise.setdefault(c["noise"], []).append(c["pearson_r"])
        xs = sorted(by_noise)
        cut = any(c["projected"] for c in group)
        axes[2].plot(
            [100 * x for x in xs],
            [statistics.median(by_noise[x]) for x in xs],
            "-" if method == "mollifier" else "--",
            marker="x" if cut else "o",
            label=f"{bb} {method}" + (" (run cut short)" if cut else ""),
        )
    axes[2].set_xlabel("noise (% of field std)")
    axes[2].set_title("Pearson r of lambda, 4th order", fontsize=10)
    axes[2].set_ylim(-0.3, 1.05)
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --- driver ---------------------------------------------------------------------------------
def plan(args) -> tuple[list[dict], list[dict]]:
    """(training cells, scaling cells) as keyword dicts for :func:`train_cell`."""
    mode = MODES[args.mode]
    problems = args.problems or mode["problems"]
    backbones = args.backbones or BACKBONES
    methods = args.methods or METHODS
    seeds = args.seeds if args.seeds is not None else mode["seeds"]
    noises = args.noise if args.noise is not None else mode["matrix_noise"]
    base = dict(lr=args.lr or mode["lr"], preset=mode["preset"], device=args.device)
    limit = mode["time_limit_s"] if args.time_limit is None else args.time_limit
    limit = limit or None

    def cell(problem, backbone, method, noise, seed):
        return dict(
            problem=problem, backbone=backbone, method=method, noise=noise, seed=seed,
            grid=args.grid or mode["grid"][problem],
            steps=args.steps or mode["steps"][problem], time_limit_s=limit, **base,
        )  # fmt: skip

    cells = [
        cell(p, b, m, z, s)
        for p in problems
        for b in backbones
        for z in noises
        for m in methods
        for s in seeds
    ]
    sweep = mode["sweep"]
    if sweep and not args.no_sweep and args.noise is None:
        cells += [
            cell(p, b, m, z, s)
            for p in sweep["problems"]
            if p in problems
            for b in sweep["backbones"]
            if b in backbones
            for z in sweep["noise"]
            for m in sweep.get("methods", METHODS)
            if m in methods
            for s in seeds
        ]
    scaling = []
    sc = mode["scaling"]
    if sc and not args.no_scaling:
        for p, grids in sc["grids"].items():
            if p not in problems:
                continue
            for g in grids:
                for m in methods:
                    scaling.append(
                        dict(
                            problem=p, backbone=sc["backbone"], method=m, noise=0.05, seed=0,
                            grid=g, steps=sc["steps"], time_limit_s=sc["time_limit_s"],
                            **base,
                        )
                    )  # fmt: skip
    return cells, scaling


def machine_name(device: str, threads: int = 1) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    import os

    return (
        f"{platform.machine()} CPU, {os.cpu_count()} cores, {threads} torch thread(s) per "
        f"cell, torch {torch.__version__}"
    )


def report(results: dict) -> str:
    cells, scaling = results["cells"], results.get("scaling", [])
    errors = [c for c in cells + scaling if "error" in c]
    parts = [
        f"Machine: {results['machine']}; mode `{results['mode']}`; backbone preset "
        f"`{results['preset']}`; {results['wall_s']:.0f} s in all.",
        "",
        "### Matrix (median [min, max] over seeds)",
        "",
        matrix_table(cells),
        "",
        "### Autodiff / mollifier on the same step budget",
        "",
        ratio_table(cells),
        "",
        "### Against the paper (4th order)",
        "",
        paper_table(cells),
        "",
        "### Issue targets",
        "",
        targets_table(cells),
    ]
    if scaling:
        parts += [
            "",
            "### Scaling with grid size (PINN, short runs)",
            "",
            scaling_table(scaling),
        ]
    if errors:
        parts += ["", "### Failed cells", ""]
        parts += [f"- {e.get('problem')} {e.get('backbone')} {e.get('method')}: {e['error']}"
                  for e in errors]  # fmt: skip
    return "\n".join(parts)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    grp = parser.add_mutually_exclusive_group()
    grp.add_argument("--quick", dest="mode", action="store_const", const="quick")
    grp.add_argument("--full", dest="mode", action="store_const", const="full")
    parser.set_defaults(mode="quick")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--problems", nargs="+", choices=tuple(PROBLEM_ORDERS))
    parser.add_argument("--backbones", nargs="+", choices=BACKBONES)
    parser.add_argument("--methods", nargs="+", choices=METHODS)
    parser.add_argument("--noise", type=float, nargs="+", help="fractions, e.g. 0 0.01 0.05")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--steps", type=int, help="override the step budget of every problem")
    parser.add_argument("--grid", type=int, help="override the grid size of every problem")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per cell (CPU)")
    parser.add_argument(
        "--time-limit", type=float, help="seconds per cell before projecting (0: never)"
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip the extra noise sweep")
    parser.add_argument("--no-scaling", action="store_true", help="skip the grid-size runs")
    parser.add_argument("--in-process", action="store_true", help="no child processes (no memory)")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/paper_<mode>.json)")
    parser.add_argument("--plot", help="PNG path for the figure")
    args = parser.parse_args(argv)

    cells, scaling = plan(args)
    t0 = time.perf_counter()
    results = {
        "mode": args.mode,
        "preset": MODES[args.mode]["preset"],
        "device": args.device,
        "machine": machine_name(args.device, args.threads),
        "paper": _paper_json(),
        "cells": [],
        "scaling": [],
    }
    for kind, todo in (("cells", cells), ("scaling", scaling)):
        for i, kw in enumerate(todo):
            if args.in_process:
                res = train_cell(**kw, measure_memory=False)
            else:
                res = run_isolated(kw, threads=args.threads)
            res.pop("loss_curve", None) if kind == "scaling" else None
            results[kind].append(res)
            msg = res.get("error") or (
                f"{res['time_s']:.1f}s r={res['pearson_r']:.3f} mem={_fmt(res['peak_mb'])}MB"
            )
            print(
                f"[{kind} {i + 1}/{len(todo)} {time.perf_counter() - t0:.0f}s] {kw['problem']} "
                f"{kw['backbone']} {kw['method']} noise={kw['noise']} seed={kw['seed']} "
                f"grid={kw['grid']}: {msg}",
                file=sys.stderr,
                flush=True,
            )
    results["wall_s"] = time.perf_counter() - t0
    text = report(results)
    print(text)
    out = Path(args.out or HERE / "results" / f"paper_{args.mode}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nresults written to {out}")
    if args.plot:
        plot(results, args.plot)
        print(f"figure written to {args.plot}")
    return results


def _paper_json() -> dict:
    r = {f"{b} {m}": v for (b, m), v in PAPER["fourth_order_pearson_r"].items()}
    return {**PAPER, "fourth_order_pearson_r": r}


if __name__ == "__main__":
    main()
