"""Where FFT convolution overtakes direct convolution in the mollifier layer's 1D passes.

    python benchmarks/fft_crossover.py                 # CPU, 1 torch thread, float32 + float64
    python benchmarks/fft_crossover.py --threads 2 --sizes 64 128 256 512
    python benchmarks/fft_crossover.py --device cuda

``MollifierLayer(method="auto")`` applies each separable 1D kernel by ``F.conv1d`` below
``napari_mollifier.mollifier.layer.FFT_MIN_TAPS`` taps and by FFT from there on. This script
times the two on exactly the operation the layer runs: ``rows = channels x N`` rows of
``N + taps - 1`` samples (an N x N image of 4 channels, padded by the kernel radius), one
kernel, valid output. It prints a markdown table of ms per pass and the ratio direct / FFT
(> 1: FFT faster), plus the smallest tap count from which FFT is faster at every size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from napari_mollifier.mollifier.functional import FFT_MIN_TAPS
from napari_mollifier.mollifier.functional import fft_conv_valid as _fft_conv_valid

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from _machine import describe_machine  # noqa: E402

TAPS = (3, 5, 7, 9, 11, 13, 17, 25, 41)


def _direct(flat: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return F.conv1d(flat, kernel.flip(0).view(1, 1, -1))


def _time_ms(fn, *args, device: str, min_s: float, repeats: int = 3) -> float:
    """Median over ``repeats`` rounds of the mean time per call (each round >= min_s)."""

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        fn(*args)
    sync()
    rounds = []
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn(*args)
            calls += 1
            sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_s:
                break
        rounds.append(elapsed / calls * 1e3)
    return sorted(rounds)[len(rounds) // 2]


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--taps", type=int, nargs="+", default=list(TAPS))
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per timing round")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)

    rows = []
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        for n in args.sizes:
            for taps in args.taps:
                flat = torch.randn(args.channels * n, 1, n + taps - 1, generator=generator)
                kernel = torch.randn(taps, generator=generator)
                flat, kernel = flat.to(args.device, dtype), kernel.to(args.device, dtype)
                ref, fft = _direct(flat, kernel), _fft_conv_valid(flat, kernel)
                scale = float(ref.abs().max())
                error = float((ref - fft).abs().max()) / scale
                t_direct = _time_ms(_direct, flat, kernel, device=args.device, min_s=args.min_time)
                t_fft = _time_ms(
                    _fft_conv_valid, flat, kernel, device=args.device, min_s=args.min_time
                )
                rows.append(
                    dict(dtype=dtype_name, n=n, taps=taps, direct_ms=t_direct, fft_ms=t_fft,
                         ratio=t_direct / t_fft, max_rel_diff=error)
                )  # fmt: skip

    print(
        f"Machine: {describe_machine(args.device, args.threads)}; "
        f"current FFT_MIN_TAPS = {FFT_MIN_TAPS}\n"
    )
    print("| dtype | N | taps | conv1d ms | FFT ms | conv1d / FFT | max diff / max |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dtype']} | {r['n']} | {r['taps']} | {r['direct_ms']:.3f} | {r['fft_ms']:.3f} "
            f"| {r['ratio']:.2f}x | {r['max_rel_diff']:.1e} |"
        )
    print()
    for dtype_name in args.dtypes:
        mine = [r for r in rows if r["dtype"] == dtype_name]
        # smallest tap count from which FFT wins at every size and every longer kernel
        crossover = None
        for taps in sorted(args.taps, reverse=True):
            if all(r["ratio"] > 1.0 for r in mine if r["taps"] >= taps):
                crossover = taps
            else:
                break
        text = f"{crossover} taps" if crossover is not None else "not within the tested taps"
        print(f"{dtype_name}: FFT faster at every size from {text}")
    return rows


if __name__ == "__main__":
    main()
