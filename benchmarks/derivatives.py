"""Training-step time and peak memory: nested autodiff vs the mollifier layer.

An MLP backbone maps grid coordinates to a field ``u``; one training step evaluates a PDE
operator of order 1 (gradient), 2 (laplacian) or 4 (biharmonic) on the whole N x N grid, adds a
data misfit, and back-propagates. Three variants, measured side by side in one run:

- ``autodiff``: coordinates require grad, derivatives by nested ``torch.autograd.grad``;
- ``mollifier``: the MLP output on the grid goes through one ``MollifierLayer``;
- ``no physics``: the data misfit alone (the floor: what the network itself costs).

Each configuration runs in a fresh process so that CPU peak memory (RSS high-water mark above
the process's own baseline) is its own; on CUDA ``torch.cuda.max_memory_allocated`` is used.

    python benchmarks/derivatives.py                      # N = 64, 128, 256 on CPU
    python benchmarks/derivatives.py --device cuda --sizes 128 256 512 1024
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import sys
import time
from pathlib import Path

OPERATORS = {1: "gradient", 2: "laplacian", 4: "biharmonic"}


def _mlp(width: int, depth: int):
    import torch
    from torch import nn

    layers, d_in = [], 2
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.Tanh()]
        d_in = width
    layers.append(nn.Linear(d_in, 1))
    torch.manual_seed(0)
    return nn.Sequential(*layers)


def _autodiff_operator(u, coords, order):
    import torch

    def grad(f):
        return torch.autograd.grad(f, coords, torch.ones_like(f), create_graph=True)[0]

    g = grad(u)
    u_x, u_y = g[:, 0:1], g[:, 1:2]
    if order == 1:
        return [u_x, u_y]
    gx, gy = grad(u_x), grad(u_y)
    u_xx, u_yy = gx[:, 0:1], gy[:, 1:2]
    if order == 2:
        return [u_xx + u_yy]
    gxx, gyy = grad(u_xx), grad(u_yy)
    u_xxx, u_xxy, u_yyy = gxx[:, 0:1], gxx[:, 1:2], gyy[:, 1:2]
    u_xxxx = grad(u_xxx)[:, 0:1]
    u_xxyy = grad(u_xxy)[:, 1:2]
    u_yyyy = grad(u_yyy)[:, 1:2]
    return [u_xxxx + 2 * u_xxyy + u_yyyy]


def run_one(
    variant: str, order: int, n: int, device: str, steps: int, width: int, depth: int, queue
):
    import psutil
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    from napari_mollifier.mollifier import MollifierLayer

    dev = torch.device(device)
    model = _mlp(width, depth).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    box = 10.0
    h = box / n
    axis = (torch.arange(n, device=dev, dtype=torch.float32) + 0.5) * h
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    coords = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    target = torch.sin(xx).reshape(-1, 1) * torch.cos(yy).reshape(-1, 1)
    names = {0: (), 1: ("dx", "dy"), 2: ("laplacian",), 4: ("biharmonic",)}[order]
    layer = (
        MollifierLayer(
            width=max(0.3, 10 * h), spacing=(h, h), derivatives=names, boundary="reflect"
        ).to(dev)
        if variant == "mollifier"
        else None
    )

    def step():
        opt.zero_grad(set_to_none=True)
        if variant == "autodiff":
            c = coords.clone().requires_grad_(True)
            u = model(c)
            ops = _autodiff_operator(u, c, order)
        else:
            u = model(coords)
            ops = []
            if variant == "mollifier":
                out = layer(u.view(1, 1, n, n))
                ops = [out[name] for name in names]
        loss = ((u - target) ** 2).mean() + sum((o**2).mean() for o in ops) * 1e-3
        loss.backward()
        opt.step()
        return loss

    step()  # warm-up (allocations, kernel caches)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / steps
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    queue.put(
        {
            "variant": variant,
            "order": order,
            "n": n,
            "step_s": seconds,
            "peak_mb": max(peak, 0) / 2**20,
        }
    )


def measure(variant, order, n, device, steps, width, depth, timeout=900):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=run_one, args=(variant, order, n, device, steps, width, depth, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        return {
            "variant": variant,
            "order": order,
            "n": n,
            "step_s": float("nan"),
            "peak_mb": float("nan"),
            "note": "timed out",
        }
    return (
        queue.get()
        if not queue.empty()
        else {
            "variant": variant,
            "order": order,
            "n": n,
            "step_s": float("nan"),
            "peak_mb": float("nan"),
            "note": f"exit {proc.exitcode}",
        }
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--mlp-width", type=int, default=64)
    parser.add_argument("--mlp-depth", type=int, default=4)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "derivatives.json")
    )
    args = parser.parse_args(argv)

    import torch

    machine = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    rows = []
    for n in args.sizes:
        base = measure("no physics", 0, n, args.device, args.steps, args.mlp_width, args.mlp_depth)
        for order in args.orders:
            auto = measure(
                "autodiff", order, n, args.device, args.steps, args.mlp_width, args.mlp_depth
            )
            moll = measure(
                "mollifier", order, n, args.device, args.steps, args.mlp_width, args.mlp_depth
            )
            rows.append(
                {
                    "n": n,
                    "order": order,
                    "operator": OPERATORS[order],
                    "autodiff_s": auto["step_s"],
                    "mollifier_s": moll["step_s"],
                    "no_physics_s": base["step_s"],
                    "autodiff_mb": auto["peak_mb"],
                    "mollifier_mb": moll["peak_mb"],
                    "no_physics_mb": base["peak_mb"],
                }
            )
            r = rows[-1]
            print(
                f"n={n} order={order}: autodiff {r['autodiff_s']:.3f}s mollifier "
                f"{r['mollifier_s']:.4f}s",
                file=sys.stderr,
                flush=True,
            )

    print(
        f"\nMachine: {machine}; torch {torch.__version__}; "
        f"MLP {args.mlp_depth}x{args.mlp_width} tanh; "
        f"{args.steps} timed steps after one warm-up; peak memory above each process's baseline.\n"
    )
    print(
        "| N | operator | autodiff s/step | mollifier s/step | no-physics s/step | speed-up | "
        "mollifier / no-physics | autodiff MB | mollifier MB | memory ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        speed = r["autodiff_s"] / r["mollifier_s"]
        over = r["mollifier_s"] / r["no_physics_s"]
        mem = r["autodiff_mb"] / max(r["mollifier_mb"], 1e-9)
        print(
            f"| {r['n']} | {r['operator']} | {r['autodiff_s']:.4f} | {r['mollifier_s']:.4f} | "
            f"{r['no_physics_s']:.4f} | {speed:.1f}x | {over:.2f}x | {r['autodiff_mb']:.1f} | "
            f"{r['mollifier_mb']:.1f} | {mem:.1f}x |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "device": args.device, "rows": rows}, indent=2))
    print(f"\nresults written to {out}")


if __name__ == "__main__":
    main()
