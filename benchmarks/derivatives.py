"""Training-step time and peak memory: nested autodiff vs the mollifier layer.

An MLP backbone maps grid coordinates to a field ``u``; one training step evaluates a PDE
operator of order 1 (gradient), 2 (laplacian) or 4 (biharmonic) on the whole N x N grid, adds a
data misfit, back-propagates and takes an Adam step. Three variants per (N, order):

- ``autodiff``: coordinates require grad, derivatives by nested ``torch.autograd.grad`` (the
  biharmonic as the laplacian of the laplacian: 6 nested calls; the 8-call form through mixed
  partials cost the same within noise);
- ``mollifier``: the MLP output on the grid goes through one ``MollifierLayer``;
- ``no physics``: the data misfit alone (the floor: what the network itself costs).

For each (N, order) the three variants run one after another in the same invocation:

- time: 2 warm-up steps per variant, then rounds of about ``--round-s`` seconds per variant
  (at least 3, more while under ``--budget-s``); a step time is the median over rounds.
  ``mollifier`` and ``no physics`` share one fresh process and alternate round by round, so
  their ratio (the cost of the physics) is not moved by load drift; ``autodiff`` runs in a
  fresh process of its own (its graph takes up to ~90x the memory). Timing processes keep freed
  memory in the heap (``malloc="keep"`` in ``_memory.py``): with glibc's default trimming the
  same step page-faults or not depending on the process's history, which moved step times by
  up to 65 %; minor page faults per step are recorded to show they are ~0;
- peak memory: one more fresh process per variant, with malloc tunables that return freed
  memory to the OS at once; after setup and 1 warm-up step the RSS high-water mark is reset
  and the peak of the next step above that baseline is reported (``_memory.py``; CUDA:
  ``torch.cuda.max_memory_allocated``). Time is not taken there: the tunables make every large
  allocation page-fault afresh (~20 % slower steps at N = 256).

The load average is recorded around every timing; the machine may be shared.

    python benchmarks/derivatives.py                      # N = 64, 128, 256 on CPU, 2 threads
    python benchmarks/derivatives.py --threads 1          # a shared machine: see docs/benchmarks.md
    python benchmarks/derivatives.py --device cuda --sizes 128 256 512 1024
    python benchmarks/derivatives.py --selfcheck          # self-check of the memory meter
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _machine import describe_machine  # noqa: E402
from _memory import PeakMeter, run_isolated, selfcheck  # noqa: E402

OPERATORS = {1: "gradient", 2: "laplacian", 4: "biharmonic"}
VARIANTS = ("autodiff", "mollifier", "no physics")
TIME_GROUPS = (("autodiff",), ("mollifier", "no physics"))  # one timing process per group
BOX = 10.0  # domain side, model units
WARMUP_STEPS = 2  # timing: the first steps fault in fresh memory and are 2-5x slower
MEMORY_WARMUP_STEPS = 1  # memory: Adam's state and the allocator's caches exist after one step
MEMORY_STEPS = 1  # steady state: every step has the same peak
MIN_ROUNDS = 3


def _mlp(width: int, depth: int):
    import torch
    from torch import nn

    layers, d_in = [], 2
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.Tanh()]
        d_in = width
    layers.append(nn.Linear(d_in, 1))
    torch.manual_seed(0)  # same initial network for every variant
    return nn.Sequential(*layers)


def _autodiff_operator(u, coords, order):
    import torch

    def grad(f):
        return torch.autograd.grad(f, coords, torch.ones_like(f), create_graph=True)[0]

    def laplacian(f):
        g = grad(f)
        return grad(g[:, 0:1])[:, 0:1] + grad(g[:, 1:2])[:, 1:2]

    if order == 1:
        g = grad(u)
        return [g[:, 0:1], g[:, 1:2]]
    if order == 2:
        return [laplacian(u)]
    return [laplacian(laplacian(u))]


def mollifier_width(n: int) -> float:
    """10 grid spacings (1.28x the smallest width for 4th derivatives), at least 0.3 units."""
    return max(0.3, 10 * BOX / n)


def make_step(variant: str, order: int, n: int, device: str, mlp_width: int, mlp_depth: int):
    """Build one variant's model, optimiser and data; return its training-step callable."""
    import torch

    from napari_mollifier.mollifier import MollifierLayer

    dev = torch.device(device)
    model = _mlp(mlp_width, mlp_depth).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    h = BOX / n
    axis = (torch.arange(n, device=dev, dtype=torch.float32) + 0.5) * h
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    coords = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)  # row-major (y, x)
    target = (torch.sin(xx) * torch.cos(yy)).reshape(-1, 1)
    names = {1: ("dx", "dy"), 2: ("laplacian",), 4: ("biharmonic",)}[order]
    layer = None
    if variant == "mollifier":
        layer = MollifierLayer(
            width=mollifier_width(n), spacing=(h, h), derivatives=names, boundary="reflect"
        ).to(dev)

    def step():
        opt.zero_grad(set_to_none=True)
        if variant == "autodiff":
            c = coords.clone().requires_grad_(True)
            u = model(c)
            ops = _autodiff_operator(u, c, order)
        else:
            u = model(coords)
            ops = []
            if layer is not None:
                out = layer(u.view(1, 1, n, n))
                ops = [out[name] for name in names]
        loss = ((u - target) ** 2).mean() + sum((o**2).mean() for o in ops) * 1e-3
        loss.backward()
        opt.step()

    return step


def _minor_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` does not exist)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_job(
    variants: list[str],
    order: int,
    n: int,
    device: str,
    threads: int,
    mlp_width: int,
    mlp_depth: int,
    rounds: int,
    round_s: float,
    budget_s: float,
) -> dict:
    """Child process: median step time of each variant, timed in alternating rounds.

    Each round runs every variant for about ``round_s`` (order rotated round by round); at least
    MIN_ROUNDS rounds, then more while the time spent is under ``budget_s``.
    """
    import torch

    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    steps = {v: make_step(v, order, n, device, mlp_width, mlp_depth) for v in variants}
    warmup_s: dict[str, list[float]] = {v: [] for v in variants}
    for v in variants:
        for _ in range(WARMUP_STEPS):
            t0 = time.perf_counter()
            steps[v]()
            _sync(device)
            warmup_s[v].append(time.perf_counter() - t0)
    round_step_s: dict[str, list[float]] = {v: [] for v in variants}
    steps_per_round: dict[str, list[int]] = {v: [] for v in variants}
    faults_per_step: dict[str, list[float]] = {v: [] for v in variants}
    t_start = time.perf_counter()
    for r in range(rounds):
        if r >= MIN_ROUNDS and time.perf_counter() - t_start > budget_s:
            break
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            # steps so that a round lasts about round_s, from the typical step time so far
            typical = statistics.median(round_step_s[v] or warmup_s[v][-1:])
            count = max(1, math.ceil(round_s / typical))
            faults = _minor_faults()
            t0 = time.perf_counter()
            for _ in range(count):
                steps[v]()
            _sync(device)
            round_step_s[v].append((time.perf_counter() - t0) / count)
            steps_per_round[v].append(count)
            faults_per_step[v].append((_minor_faults() - faults) / count)
    return {
        "step_s": {v: statistics.median(s) for v, s in round_step_s.items()},
        "warmup_s": warmup_s,
        "round_step_s": round_step_s,
        "steps_per_round": steps_per_round,
        "minor_faults_per_step": {v: statistics.median(f) for v, f in faults_per_step.items()},
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def memory_job(
    variant: str, order: int, n: int, device: str, threads: int, mlp_width: int, mlp_depth: int
) -> dict:
    """Child process: peak memory of a training step above the post-warm-up baseline."""
    import torch

    torch.set_num_threads(threads)
    step = make_step(variant, order, n, device, mlp_width, mlp_depth)
    for _ in range(MEMORY_WARMUP_STEPS):
        step()
    meter = PeakMeter(device)
    meter.start()
    for _ in range(MEMORY_STEPS):
        step()
    return {
        "peak_mb": meter.peak_mb(),
        "baseline_mb": None if meter.baseline_bytes is None else meter.baseline_bytes / 2**20,
        "method": meter.method,
    }


def _fmt_mb(mb) -> str:
    return "n/m" if mb is None else f"{mb:.1f}"


def _ratio(a, b) -> str:
    if a is None or b is None:
        return "n/m"
    return f"{a / b:.1f}x" if b > 0 else "inf"


def table(rows: list[dict]) -> str:
    lines = [
        "| N | operator | autodiff ms/step | mollifier ms/step | no-physics ms/step | "
        "speed-up autodiff / mollifier | mollifier / no-physics | autodiff MB | mollifier MB | "
        "no-physics MB | memory autodiff / mollifier | load 1 min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, mb = r["step_s"], r["peak_mb"]
        lines.append(
            f"| {r['n']} | {OPERATORS[r['order']]} | {1e3 * t['autodiff']:.1f} | "
            f"{1e3 * t['mollifier']:.2f} | {1e3 * t['no physics']:.2f} | "
            f"{r['speedup']:.1f}x | {r['overhead']:.2f}x | {_fmt_mb(mb['autodiff'])} | "
            f"{_fmt_mb(mb['mollifier'])} | {_fmt_mb(mb['no physics'])} | "
            f"{_ratio(mb['autodiff'], mb['mollifier'])} | "
            f"{r['load_before']:.1f}-{r['load_after']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 4], choices=[1, 2, 4])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--rounds", type=int, default=9, help="most timed rounds (3 at least)")
    parser.add_argument("--round-s", type=float, default=0.3, help="seconds per variant a round")
    parser.add_argument(
        "--budget-s", type=float, default=10.0, help="no new round after this (per process)"
    )
    parser.add_argument("--mlp-width", type=int, default=64)
    parser.add_argument("--mlp-depth", type=int, default=4)
    parser.add_argument("--no-memory", action="store_true", help="time only")
    parser.add_argument(
        "--selfcheck", action="store_true", help="check the memory meter on known allocations"
    )
    parser.add_argument(
        "--out", default=str(HERE / "results" / "derivatives.json"), help="JSON results"
    )
    args = parser.parse_args(argv)
    if args.selfcheck:
        sys.exit(0 if selfcheck() else 1)

    machine = describe_machine(args.device, args.threads)
    print(f"Machine: {machine}; load average at start {os.getloadavg()}", file=sys.stderr)
    net = {"mlp_width": args.mlp_width, "mlp_depth": args.mlp_depth}
    rows, t_start = [], time.perf_counter()
    for n in args.sizes:
        for order in args.orders:
            common = {"order": order, "n": n, "device": args.device, "threads": args.threads}
            common.update(net)
            timing = {}
            for group in TIME_GROUPS:  # back to back, so that all see the same machine
                kwargs = {
                    **common,
                    "variants": list(group),
                    "rounds": args.rounds,
                    "round_s": args.round_s,
                    "budget_s": args.budget_s,
                }
                out = run_isolated(time_job, kwargs, malloc="keep")
                timing.update({v: out for v in group})
            memory = {}
            for v in VARIANTS:
                memory[v] = (
                    {} if args.no_memory else run_isolated(memory_job, {**common, "variant": v})
                )
                if "error" in memory[v]:  # reported as "n/m", the row is kept
                    print(f"N={n} order={order} {v} memory: {memory[v]['error']}", file=sys.stderr)
            if any("error" in timing[v] for v in VARIANTS):
                for v in VARIANTS:
                    print(
                        f"N={n} order={order} {v} time: {timing[v].get('error')}", file=sys.stderr
                    )
                continue
            row = {
                "n": n,
                "order": order,
                "operator": OPERATORS[order],
                "threads": args.threads,
                "step_s": {v: timing[v]["step_s"][v] for v in VARIANTS},
                "peak_mb": {v: memory[v].get("peak_mb") for v in VARIANTS},
                "load_before": timing[VARIANTS[0]]["load_before"],
                "load_after": timing[VARIANTS[-1]]["load_after"],
                "timing": {"+".join(g): timing[g[0]] for g in TIME_GROUPS},
                "memory": memory,
            }
            row["speedup"] = row["step_s"]["autodiff"] / row["step_s"]["mollifier"]
            shared = timing["mollifier"]["round_step_s"]  # same rounds: ratio per round
            row["overhead"] = statistics.median(
                m / p for m, p in zip(shared["mollifier"], shared["no physics"])
            )
            rows.append(row)
            t = row["step_s"]
            print(
                f"N={n} {OPERATORS[order]}: autodiff {1e3 * t['autodiff']:.1f} ms, mollifier "
                f"{1e3 * t['mollifier']:.2f} ms, no physics {1e3 * t['no physics']:.2f} ms; "
                f"peak MB {[_fmt_mb(row['peak_mb'][v]) for v in VARIANTS]}; load "
                f"{row['load_before']:.1f}-{row['load_after']:.1f}; "
                f"{time.perf_counter() - t_start:.0f} s so far",
                file=sys.stderr,
                flush=True,
            )

    tunables = {m.get("malloc_tunables") for r in rows for m in r["memory"].values()}
    print(
        f"\nMachine: {machine}. MLP {args.mlp_depth} x {args.mlp_width} tanh, Adam; mollifier "
        f"'polynomial' kernel, width 10 grid spacings, reflect boundary. Time: median over "
        f"rounds after {WARMUP_STEPS} warm-up steps (autodiff in its own process, mollifier and "
        f"no physics alternating in another; mollifier / no physics = median of per-round "
        f"ratios), freed memory kept in the heap. Memory: peak "
        f"of {MEMORY_STEPS} step(s) above the baseline after {MEMORY_WARMUP_STEPS} warm-up "
        f"step(s), another fresh process per cell (malloc tunables active: "
        f"{sorted(tunables, key=str)}). "
        f"Load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.\n"
    )
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"machine": machine, "device": args.device, "args": vars(args), "rows": rows},
            indent=2,
        )
    )
    print(f"\nresults written to {out}")


if __name__ == "__main__":
    main()
