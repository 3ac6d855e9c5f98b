"""Batch throughput: a folder of sample-sized inputs on one process vs ``--workers N``.

The folder holds ``--files`` copies (20 by default) of the bundled sample density TIFF (150^2
pixels, 20 nm). Each configuration runs the real command line, ``python -m
napari_mollifier.batch FOLDER -o OUT --method M [...] [--workers N]``, in a fresh process, and
the wall time from start to the final summary is measured (Dask cluster start-up included).
Three runs each: one process with torch's default thread count (all cores), one process with
one thread (``OMP_NUM_THREADS=1``), and ``--workers N``: single-threaded Dask worker processes
(Dask sets ``OMP_NUM_THREADS=1`` in every worker; the batch runner keeps glibc's malloc
defaults there, see ``batch/dask_run.py``), so N workers on N cores do not fight over threads.
The throughput ratio is given against both serial runs. Rows: direct (seconds per file:
start-up and I/O dominate) and a short PINN (``--steps``, compute dominates).

    python benchmarks/batch_throughput.py                     # 20 files, workers 2
    python benchmarks/batch_throughput.py --files 8 --pinn-steps 100

Prints a markdown table (files per minute and the throughput ratio) and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _machine import describe_machine  # noqa: E402

SERIAL_ONE_THREAD = "1 process, 1 thread"
SAMPLE = ROOT / "src" / "napari_mollifier" / "sample_data" / "nucleus_density.tif"


def make_folder(folder: Path, n_files: int) -> Path:
    """``n_files`` copies of the sample density TIFF in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_files):
        shutil.copyfile(SAMPLE, folder / f"nucleus_{k:03d}.tif")
    return folder


def run_batch(folder: Path, out: Path, method_args: list[str], workers) -> dict:
    """Wall time of one batch command line (fresh process); the count of maps written.

    ``workers``: None (one process, torch on all cores), ``"1 thread"`` (one process with
    ``OMP_NUM_THREADS=1``) or a number of Dask workers.
    """
    cmd = [sys.executable, "-m", "napari_mollifier.batch", str(folder), "-o", str(out), "-q"]
    env = dict(os.environ)
    if workers == SERIAL_ONE_THREAD:
        env["OMP_NUM_THREADS"] = "1"
    elif workers is not None:
        cmd += ["--workers", str(workers)]
    cmd += method_args
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    written = len(list(out.glob("*.ome.tif")))
    row = {"seconds": seconds, "written": written, "returncode": proc.returncode}
    if proc.returncode != 0:
        row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return row


def table(rows: list[dict]) -> str:
    head = ["run", "workers", "files", "seconds", "files / min", "ratio to all cores",
            "ratio to 1 thread"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["run"],
            str(r["workers"] or "1 process, all cores"),
            f"{r['written']}/{r['files']}",
            f"{r['seconds']:.1f}",
            f"{60 * r['written'] / r['seconds']:.2f}",
            f"{r['ratio']:.2f}" if "ratio" in r else "-",
            f"{r['ratio_1t']:.2f}" if "ratio_1t" in r else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pinn-steps", type=int, default=150)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "batch_throughput.json")
    args = parser.parse_args(argv)
    print(describe_machine("cpu", os.cpu_count()))
    runs = {
        "direct": ["--method", "direct"],
        f"pinn, {args.pinn_steps} steps": ["--method", "pinn", "--steps", str(args.pinn_steps)],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "inputs", args.files)
        for name, method_args in runs.items():
            rate = {}
            for workers in (None, SERIAL_ONE_THREAD, args.workers):
                out = Path(tmp) / f"out_{len(rows)}"
                row = {"run": name, "workers": workers, "files": args.files}
                row.update(run_batch(folder, out, method_args, workers))
                rate[workers] = row["written"] / row["seconds"]
                if rate[None]:
                    row["ratio"] = rate[workers] / rate[None]
                if workers != SERIAL_ONE_THREAD and rate.get(SERIAL_ONE_THREAD):
                    row["ratio_1t"] = rate[workers] / rate[SERIAL_ONE_THREAD]
                rows.append(row)
                print(f"[{time.strftime('%H:%M:%S')}] {name} workers={workers}: "
                      f"{row['seconds']:.1f} s, {row['written']} maps {row.get('error', '')}",
                      file=sys.stderr, flush=True)  # fmt: skip
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": describe_machine("cpu", os.cpu_count()), "rows": rows}
    args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
