"""Reproduce the Mollifier Layers paper's benchmark matrix (issue 8).

Problems of derivative order 1 (Langevin forcing), 2 (heat conduction diffusivity) and 4 (the
chromatin rate ratio), backbones PINN / PirateNet / PINNsFormer, residual derivatives by nested
autodiff or by one mollifier layer, noise 0 / 1 / 5 / 10 %. One generic training loop for all:

    backbone(coords) -> normalised fields + lambda on the grid
    loss = data misfit (normalised) + residual_weight * mean((residual / residual_scale)^2)

with the same optimiser (Adam), learning rate and step budget for both derivative methods. Per
cell it records wall time to the step budget, time to a target loss (the data-misfit term, the
same definition for both methods) and to a target recovery error, peak memory (CPU: VmHWM of a
fresh child process above its live memory, over two steps run before the timed ones with glibc
set to return freed memory; CUDA: ``torch.cuda.max_memory_allocated`` of the timed steps;
meters from ``benchmarks/_memory.py``),
Pearson r and relative L2 of the recovered lambda (on the interior the mollified residual
covers, for both methods), and the final residual.

    python benchmarks/paper.py --quick            # 2-core CPU, < 15 min
    python benchmarks/paper.py --full --device cuda
    python benchmarks/paper.py --problems chromatin --backbones pinn --methods mollifier \\
        --noise 0.05 --seeds 0 --steps 200          # one custom slice

The 4th-order ``chromatin`` data are a simulated steady state, cached under
benchmarks/results/sim_cache/ (``--sim-cache``) so repeated runs do not re-simulate.

Results: a markdown report on stdout and JSON (``--out``, default
benchmarks/results/paper_<mode>.json); ``--plot PNG`` draws time / memory / r figures (needs
matplotlib; without it the figure is skipped with a message).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import queue as queue_module
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _machine import describe_machine  # noqa: E402
from _memory import (  # noqa: E402
    MALLOC_ENV,
    MMAP_THRESHOLD_BYTES,
    PeakMeter,
    malloc_tunables_active,
)
from _paper_problems import PROBLEM_ORDERS, make_problem, simulated_steady_state  # noqa: E402

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
        "grid": {"langevin": 192, "heat": 40, "heat-div": 40, "chromatin": 40,
                 "chromatin-manufactured": 40},
        # 4th order, simulated: the mollified PINN's loss still halves between steps 300 and
        # 700 (plateau from ~700), so 300 steps would report an unconverged run
        "steps": {"langevin": 1000, "heat": 300, "heat-div": 300, "chromatin": 1000,
                  "chromatin-manufactured": 300},
        "lr": 5e-3,
        # nested autodiff at 2nd / 4th order takes seconds per step on 2 CPU cores: such cells
        # stop after 40 s and report the measured time per step x the budget (marked *);
        # mollifier cells get 180 s (PINNsFormer: 75-95 ms/step x 1000 steps at 4th order)
        "time_limit_s": {"autodiff": 40.0, "mollifier": 180.0},
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
        "grid": {"langevin": 1024, "heat": 128, "heat-div": 128, "chromatin": 128,
                 "chromatin-manufactured": 128},
        "steps": {"langevin": 5000, "heat": 5000, "heat-div": 5000, "chromatin": 5000,
                  "chromatin-manufactured": 5000},
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
    target_error: float | None = None,
    device: str = "cpu",
    measure_memory: bool = True,
    time_limit_s: float | None = None,
    min_steps: int = 2,
    sim_cache: str | None = None,
    memory_steps: int = 2,
) -> dict:
    """Train one backbone on one problem with one derivative method; return the metrics.

    Returns a JSON-able dict: configuration, ``time_s`` (wall time of ``steps`` steps),
    ``time_to_target_loss_s`` / ``time_to_target_error_s`` (None if never reached),
    ``peak_mb``, ``pearson_r``, ``rel_l2``, ``final_loss``, ``final_data``,
    ``final_residual`` (RMS of the method's own normalised residual) and ``loss_curve``.

    ``time_limit_s`` stops a run early (after at least ``min_steps``) when its training time
    exceeds the limit: ``steps_done`` < ``steps``, ``projected`` is True and ``time_s`` is the
    measured time per step times ``steps`` (recovery metrics are those after ``steps_done``).

    ``target_error`` None takes the problem's own (relative L2 of lambda; see
    ``Problem.target_error``). ``sim_cache`` is the folder of cached simulations (simulated
    ``chromatin`` only). ``peak_mb`` is None where memory cannot be measured.

    Memory on CPU is measured *before* the timed run, over ``memory_steps`` steps of a
    throw-away copy of the network (same seed), with glibc set to return freed memory to the
    OS (:func:`_malloc_returns_memory`); then the default allocator behaviour is restored, the
    network and optimiser are rebuilt from the seed and the timed run starts. Timing with
    those tunables on would be wrong: every large tensor becomes a fresh mmap, and nested
    4th-order autodiff ran ~2x slower (mollifier ~1.2x). On CUDA the peak is that of the
    timed steps.
    """
    import numpy as np
    import torch

    from napari_mollifier.inverse.pinn.trainer import Trainer
    from napari_mollifier.nets import build_backbone, count_parameters

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, found {method!r}")
    dev = torch.device(device)
    cpu_memory = measure_memory and dev.type != "cuda"
    # before any large allocation: freed blocks then never linger in the heap's bins
    tunables = _malloc_returns_memory(True) if cpu_memory else None
    prob = make_problem(problem, grid, noise, seed=seed, sim_cache=sim_cache, sim_device=device)
    if target_error is None:
        target_error = prob.target_error
    dtype = torch.float32
    coords = torch.as_tensor(prob.coords, dtype=dtype, device=dev)
    data = torch.as_tensor(prob.data, dtype=dtype, device=dev)
    mean = data.reshape(prob.n_fields, -1).mean(1)
    std = data.reshape(prob.n_fields, -1).std(1)

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

    def objective(model):
        """The cell's loss on the whole grid (the library's trainer takes the step)."""
        if method == "autodiff":
            c = coords.clone().requires_grad_(True)
            fields, lam = outputs(model(c))
            res = prob.residual_autodiff(fields, lam, c, known_flat)
        else:
            fields, lam = outputs(model(coords))
            grids = torch.stack(fields).reshape(prob.n_fields, *prob.shape)
            res = prob.residual_mollifier(grids, lam.reshape(prob.shape), layers, known_moll)
        misfit = sum(((f - data_flat[c]) / std[c]).pow(2).mean() for c, f in enumerate(fields))
        misfit = misfit / prob.n_fields
        res_loss = (res / scale).pow(2).mean()
        loss = misfit + residual_weight * res_loss
        return loss, {"misfit": misfit, "residual": res_loss, "lam": lam.detach()}

    def build() -> Trainer:
        net = build_backbone(
            backbone, in_dim=prob.ndim, out_dim=prob.n_fields + 1, preset=preset, seed=seed
        ).to(dev)
        return Trainer(net, torch.optim.Adam(net.parameters(), lr=lr), objective)

    def step():
        out = trainer.step(0, steps)  # 0-d losses come back as floats (read_losses)
        loss = out["misfit"] + residual_weight * out["residual"]
        return loss, out["misfit"], out["residual"], out["lam"]

    trainer = build()

    def lam_error(lam):
        est = prob.interior(lam.reshape(prob.shape).cpu().numpy().astype(np.float64))
        return float(np.linalg.norm(est - truth_c) / np.linalg.norm(truth_c)), est

    meter = PeakMeter(device)
    peak_mb = None
    if cpu_memory:
        meter.start()  # after setup: the peak of training steps alone
        for _ in range(memory_steps):
            step()
        peak_mb = meter.peak_mb()
        _malloc_returns_memory(False)
        trainer = build()  # the timed run starts from the same initialisation
    elif measure_memory:
        meter.start()
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
    err, est = lam_error(lam)
    if measure_memory and not cpu_memory:
        peak_mb = meter.peak_mb()
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
        "parameters": count_parameters(trainer.model),
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
        "peak_mb": peak_mb,
        "memory_method": meter.method if measure_memory else "not measured",
        "malloc_tunables": tunables,
        "pearson_r": _pearson(est, truth_c),
        "rel_l2": err,
        "final_loss": loss,
        "final_data": misfit,
        "final_residual": math.sqrt(res_loss),
        "loss_curve": curve,
        "device": device,
        "data_info": prob.info,
    }


#: glibc's defaults once its dynamic mmap threshold has grown to its 64-bit maximum (blocks up
#: to 32 MiB come from the heap, the heap top is trimmed above twice that), as after warm-up
_MALLOC_DEFAULT_MMAP_BYTES = 32 * 2**20
_MALLOC_DEFAULT_TRIM_BYTES = 2 * _MALLOC_DEFAULT_MMAP_BYTES


def _malloc_returns_memory(on: bool) -> bool | None:
    """Switch glibc malloc to hand freed memory back to the OS (``on``) or back to defaults.

    ``on``: the tunables ``benchmarks/_memory.py`` sets through the environment before
    spawning (mmap every block >= ``MMAP_THRESHOLD_BYTES``, trim the heap top on every free),
    applied at run time with ``mallopt`` so that they can be switched off again for the timed
    steps. Returns whether a 96 KiB block is now mmapped (``_memory.malloc_tunables_active``),
    None where this is not glibc (the peak may then include freed memory).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mmap_bytes = MMAP_THRESHOLD_BYTES if on else _MALLOC_DEFAULT_MMAP_BYTES
        trim_bytes = 0 if on else _MALLOC_DEFAULT_TRIM_BYTES
        libc.mallopt(-3, mmap_bytes)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, trim_bytes)  # M_TRIM_THRESHOLD
        if on:
            libc.malloc_trim(0)
    except (OSError, AttributeError):
        return None
    return malloc_tunables_active() if on else None


def _cell_job(threads: int = 1, **kwargs) -> dict:
    """Child-process entry: one :func:`train_cell` with ``threads`` torch threads."""
    import torch

    # one thread by default: on a shared 2-core box two OpenMP threads competing with other
    # processes slow some cells down by 10-50x (spin-waiting), which would make timings random
    torch.set_num_threads(threads)
    return train_cell(**kwargs)


def _child(kwargs, queue):
    try:
        queue.put(_cell_job(**kwargs))
    except Exception as exc:  # report, do not leave the parent waiting
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def run_isolated(kwargs: dict, threads: int = 1, timeout_s: float = 1800) -> dict:
    """Run :func:`train_cell` in a fresh spawned process so its peak memory is its own.

    Not ``_memory.run_isolated``: that sets the malloc tunables in the environment before
    spawning, which slows the timed steps (see :func:`train_cell`); here the child switches
    them on for its memory steps only. The parent's environment must not carry them.
    """
    for name in MALLOC_ENV:
        if name in os.environ:
            print(f"warning: {name} is set: timings include its allocator cost", file=sys.stderr)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=({"threads": threads, **kwargs}, queue))
    proc.start()
    try:
        result = queue.get(timeout=timeout_s)  # before join: a full pipe would block the child
    except queue_module.Empty:
        result = {"error": f"no result within {timeout_s:.0f} s"}
        proc.kill()
    proc.join(30)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return {**kwargs, **result} if "error" in result else result


# --- aggregation and tables -----------------------------------------------------------------
def _fmt(v, spec=".3g"):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return format(v, spec)


def _agg(values, spec=".3g", missing="not reached"):
    """'median' or 'median [min, max]' over seeds; '-' when none is defined.

    ``missing`` names why a value is undefined (None: just '-').
    """
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "-" if not values or missing is None else f"- ({len(values)} {missing})"
    med = statistics.median(vals)
    text = _fmt(med, spec)
    if len(vals) > 1:
        text += f" [{_fmt(min(vals), spec)}, {_fmt(max(vals), spec)}]"
    if len(vals) < len(values) and missing is not None:
        text += f" ({len(values) - len(vals)}/{len(values)} {missing})"
    return text


def _median(values):
    """Median of the defined values (None where there is none, e.g. memory not measured)."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(vals) if vals else None


def _fourth(cells) -> list[dict]:
    """The 4th-order cells compared with the paper: the simulated problem when present."""
    ok = [c for c in cells if c.get("order") == 4 and "error" not in c]
    return [c for c in ok if c["problem"] == "chromatin"] or ok


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
            f"{_agg(g('time_to_target_error_s'))} | {_agg(g('peak_mb'), missing=None)} | "
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
            return _median([c[name] for c in by[m]])

        t = med("autodiff", "time_s") / med("mollifier", "time_s")
        mem_a, mem_m = med("autodiff", "peak_mb"), med("mollifier", "peak_mb")
        mem = mem_a / mem_m if mem_a is not None and mem_m else float("nan")
        rows.append(
            f"| {order} | {problem} | {grid} | {backbone} | {noise:.0%} | {t:.1f}x | "
            f"{mem:.1f}x | {med('autodiff', 'pearson_r'):.3f} | "
            f"{med('mollifier', 'pearson_r'):.3f} |"
        )
    return "\n".join(rows)


def paper_table(cells) -> str:
    """Our 4th-order numbers next to the paper's published ones."""
    fourth = _fourth(cells)
    noise_pref = 0.05 if any(c["noise"] == 0.05 for c in fourth) else None

    def pick(backbone, method, name):
        vals = [
            c[name]
            for c in fourth
            if c["backbone"] == backbone
            and c["method"] == method
            and (noise_pref is None or c["noise"] == noise_pref)
        ]
        return _median(vals)

    problem = fourth[0]["problem"] if fourth else "chromatin"
    rows = [f"| quantity (4th order, ours: `{problem}`) | paper (GPU) | ours |\n|---|---|---|"]
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
    fourth = [c for c in _fourth(cells) if c["noise"] == 0.05]

    def med(bb, m, name):
        return _median([c[name] for c in fourth if c["backbone"] == bb and c["method"] == m])

    rows = ["| target | measured | met |\n|---|---|---|"]
    for bb in ("pinn", "pirate"):
        for name, label in (("time_s", "time"), ("peak_mb", "memory")):
            a, m = med(bb, "autodiff", name), med(bb, "mollifier", name)
            if a is None or not m:
                continue  # not run, or memory not measured
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


def baselines_table(cells) -> str:
    """Network-free estimates of lambda on the same noisy data (4th order), for reference."""
    rows = [
        "| problem | grid | noise | seeds | direct weak form r | mass balance r (no derivatives) "
        "| pointwise phi_h/phi_e r |\n|" + "---|" * 7
    ]
    seen: dict = {}
    for c in cells:
        ref = (c.get("data_info") or {}).get("reference_r")
        if "error" not in c and ref:
            seen[(c["problem"], c["grid"], c["noise"], c["seed"])] = ref
    by: dict = {}
    for (problem, grid, noise, _), ref in sorted(seen.items()):
        by.setdefault((problem, grid, noise), []).append(ref)
    for (problem, grid, noise), refs in sorted(by.items()):

        def g(name, refs=refs):
            return _agg([r[name] for r in refs], ".3f")

        rows.append(
            f"| {problem} | {grid} | {noise:.0%} | {len(refs)} | {g('direct')} | "
            f"{g('mass_balance')} | {g('pointwise_ratio')} |"
        )
    return "\n".join(rows) if len(rows) > 1 else ""


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
        measured = a["peak_mb"] is not None and m["peak_mb"]
        mem = a["peak_mb"] / m["peak_mb"] if measured else float("nan")
        rows.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {a['points']} | {a['step_ms']:.1f} | "
            f"{m['step_ms']:.1f} | {a['step_ms'] / m['step_ms']:.1f}x | "
            f"{_fmt(a['peak_mb'], '.0f')} | {_fmt(m['peak_mb'], '.0f')} | {mem:.1f}x |"
        )
    return "\n".join(rows)


def plot(results: dict, path: str) -> bool:
    """Three panels: step time and peak memory vs order / grid (scaling runs), r vs noise.

    Returns False (with a message on stderr, no exception) when matplotlib is not installed.
    """
    try:
        import matplotlib
        import matplotlib.ticker
    except ImportError:
        print(
            f"--plot {path}: skipped, matplotlib is not installed "
            "(pip install matplotlib, or the package's 'testing' extra)",
            file=sys.stderr,
        )
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scaling = [c for c in results.get("scaling", []) if "error" not in c]
    cells = [c for c in results.get("cells", []) if "error" not in c]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), dpi=80)
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
            mem = [(x, p[2]) for x, p in zip(xs, pts) if p[2] is not None]
            if mem:
                axes[1].plot([m[0] for m in mem], [max(m[1], 1e-1) for m in mem], style, **kw)
    for ax, title in ((axes[0], "time per step (ms)"), (axes[1], "peak memory (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("grid points")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(title, fontsize=10)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    fourth = _fourth(cells)
    backbone_colors = {"pinn": "tab:blue", "pirate": "tab:red", "pinnsformer": "tab:purple"}
    for (bb, method), group in sorted(_groups(fourth, ("backbone", "method")).items()):
        by_noise: dict = {}
        for c in group:
            by_noise.setdefault(c["noise"], []).append(c["pearson_r"])
        xs = sorted(by_noise)
        cut = any(c["projected"] for c in group)
        axes[2].plot(
            [100 * x for x in xs],
            [statistics.median(by_noise[x]) for x in xs],
            linestyle="-" if method == "mollifier" else "",
            marker="x" if cut else "o",
            markersize=7 if cut else 4,
            color=backbone_colors.get(bb),
            label=f"{bb} {method}" + (" (cut short)" if cut else ""),
        )
    axes[2].set_xlabel("noise (% of field std)")
    refs: dict = {}  # the network-free weak-form estimate on the same data, per noise
    for c in fourth:
        ref = (c.get("data_info") or {}).get("reference_r", {}).get("direct")
        if ref is not None:
            refs.setdefault(c["noise"], {})[c["seed"]] = ref
    if refs:
        xs = sorted(refs)
        axes[2].plot(
            [100 * x for x in xs], [statistics.median(refs[x].values()) for x in xs], ":",
            color="black", linewidth=1.5, zorder=5, label="direct weak form (no network)",
        )  # fmt: skip
    problem = fourth[0]["problem"] if fourth else "chromatin"
    axes[2].set_title(f"Pearson r of lambda, 4th order ({problem})", fontsize=10)
    axes[2].set_ylim(-0.3, 1.05)
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


# --- driver ---------------------------------------------------------------------------------
def plan(args) -> tuple[list[dict], list[dict]]:
    """(training cells, scaling cells) as keyword dicts for :func:`train_cell`."""
    mode = MODES[args.mode]
    problems = args.problems or mode["problems"]
    backbones = args.backbones or BACKBONES
    methods = args.methods or METHODS
    seeds = args.seeds if args.seeds is not None else mode["seeds"]
    noises = args.noise if args.noise is not None else mode["matrix_noise"]
    base = dict(
        lr=args.lr or mode["lr"], preset=mode["preset"], device=args.device,
        sim_cache=args.sim_cache,
    )  # fmt: skip
    limit = mode["time_limit_s"] if args.time_limit is None else args.time_limit

    def limit_of(method):
        value = limit.get(method) if isinstance(limit, dict) else limit
        return value or None  # 0 / None: never cut

    def cell(problem, backbone, method, noise, seed):
        return dict(
            problem=problem, backbone=backbone, method=method, noise=noise, seed=seed,
            grid=args.grid or mode["grid"][problem],
            steps=args.steps or mode["steps"][problem], time_limit_s=limit_of(method), **base,
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


def prepare_simulations(todo: list[dict], threads: int = 1) -> list[dict]:
    """Simulate (or find in the cache) every steady state the ``chromatin`` cells need.

    Done once in the parent, before any cell, so that no cell's child process simulates and
    the cells only read the cache. Returns one report per simulation.
    """
    import torch
    from _paper_problems import DEFAULT_SIM

    torch.set_num_threads(threads)  # two OpenMP threads on a busy 2-core box: see _cell_job
    per_tile = DEFAULT_SIM.pixels_per_tile
    keys = sorted(
        {(kw["seed"], -(-kw["grid"] // per_tile), kw["device"], kw.get("sim_cache"))
         for kw in todo if kw["problem"] == "chromatin"},
        key=str,
    )  # fmt: skip
    reports = []
    for seed, tiles, device, cache in keys:
        sim = simulated_steady_state(seed, tiles, cache, device)
        rep = {k: v for k, v in sim["report"].items() if k != "key"}
        reports.append(rep)
        how = "from cache" if rep["cached"] else f"simulated in {rep['elapsed_s']:.1f} s"
        print(
            f"[data] chromatin seed {seed}: {rep['n']}^2 on {rep['L']:g} x {rep['L']:g} units, "
            f"max |dphi/dt| {rep['max_rate']:.2g} at t = {rep['t_end']:g}, {how} "
            f"({rep['file']})",
            file=sys.stderr,
            flush=True,
        )
    return reports


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
    baselines = baselines_table(cells)
    if baselines:
        parts += ["", "### Data baselines (4th order, no network, same noisy data)", "", baselines]
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
    parser.add_argument("--plot", help="PNG path for the figure (needs matplotlib)")
    parser.add_argument(
        "--from-json",
        help="print the tables (and --plot) of a saved results JSON instead of running",
    )
    parser.add_argument(
        "--sim-cache",
        help="folder of cached chromatin simulations (default benchmarks/results/sim_cache)",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        print(report(results))
        if args.plot and plot(results, args.plot):
            print(f"figure written to {args.plot}")
        return results

    cells, scaling = plan(args)
    simulations = prepare_simulations(cells + scaling, args.threads)
    t0 = time.perf_counter()
    results = {
        "mode": args.mode,
        "preset": MODES[args.mode]["preset"],
        "device": args.device,
        "machine": describe_machine(args.device, args.threads, note="per cell"),
        "paper": _paper_json(),
        "simulations": simulations,
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
    if args.plot and plot(results, args.plot):
        print(f"figure written to {args.plot}")
    return results


def _paper_json() -> dict:
    r = {f"{b} {m}": v for (b, m), v in PAPER["fourth_order_pearson_r"].items()}
    return {**PAPER, "fourth_order_pearson_r": r}


if __name__ == "__main__":
    main()
