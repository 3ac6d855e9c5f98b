"""Batch throughput: a folder of sample-sized inputs on one process vs ``--workers N``.

The folder holds ``--files`` copies (20 by default) of the bundled sample density TIFF (150^2
pixels, 20 nm). Each configuration runs the real command line, ``python -m
napari_mollifier.batch FOLDER -o OUT --method M [...] [--workers N]``, in a fresh process, and
the wall time from start to the final summary is measured (Dask cluster start-up included).
Runs: one process with torch's default thread count (all cores), one process with
one thread (``OMP_NUM_THREADS=1``), and ``--workers N``: single-threaded Dask worker processes
(Dask sets ``OMP_NUM_THREADS=1`` in every worker; the batch runner sets their malloc and
profiler, see ``batch/dask_run.py``), so N workers on N cores do not fight over threads.
A fourth run gives the machine's ceiling for N workers: N independent single-threaded
command lines at once, each on its share of the files, no Dask (wall time until the last ends).
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
INDEPENDENT = "independent"  # N single-threaded command lines at once, no Dask
SAMPLE = ROOT / "src" / "napari_mollifier" / "sample_data" / "nucleus_density.tif"


def make_folder(folder: Path, n_files: int) -> Path:
    """``n_files`` copies of the sample density TIFF in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_files):
        shutil.copyfile(SAMPLE, folder / f"nucleus_{k:03d}.tif")
    return folder


def _command(folder: Path, out: Path, method_args: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "napari_mollifier.batch", str(folder), "-o", str(out), "-q"]
    return cmd + method_args


def run_batch(folder: Path, out: Path, method_args: list[str], workers) -> dict:
    """Wall time of one batch command line (fresh process); the count of maps written.

    ``workers``: None (one process, torch on all cores), ``"1 process, 1 thread"`` (one process
    with ``OMP_NUM_THREADS=1``) or a number of Dask workers.
    """
    cmd = _command(folder, out, method_args)
    env = dict(os.environ)
    if workers == SERIAL_ONE_THREAD:
        env["OMP_NUM_THREADS"] = "1"
    elif workers is not None:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    written = len(list(out.glob("*.ome.tif")))
    row = {"seconds": seconds, "written": written, "returncode": proc.returncode}
    if proc.returncode != 0:
        row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return row


def run_independent(folder: Path, out: Path, method_args: list[str], n_processes: int) -> dict:
    """``n_processes`` single-threaded command lines at once, file k in share k % n: the wall
    time until the last one ends (what N workers could give with no scheduling cost)."""
    files = sorted(folder.glob("*.tif"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    shares = []
    for k in range(n_processes):
        share = out.parent / f"{out.name}_share{k}"
        share.mkdir(parents=True)
        for path in files[k::n_processes]:
            os.link(path, share / path.name)
        shares.append(share)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(_command(share, out / share.name, method_args), env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for share in shares
    ]  # fmt: skip
    errors = [p.communicate()[1] for p in procs]
    seconds = time.perf_counter() - t0
    written = len(list(out.glob("*/*.ome.tif")))
    row = {"seconds": seconds, "written": written,
           "returncode": max(p.returncode for p in procs)}  # fmt: skip
    if row["returncode"] != 0:
        row["error"] = next(e for e, p in zip(errors, procs) if p.returncode).splitlines()[-3:]
    return row


def table(rows: list[dict]) -> str:
    head = ["run", "workers", "files", "seconds", "files / min", "ratio to all cores",
            "ratio to 1 thread"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["run"],
            _workers_label(r["workers"], r.get("processes")),
            f"{r['written']}/{r['files']}",
            f"{r['seconds']:.1f}",
            f"{60 * r['written'] / r['seconds']:.2f}",
            f"{r['ratio']:.2f}" if "ratio" in r else "-",
            f"{r['ratio_1t']:.2f}" if "ratio_1t" in r else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _workers_label(workers, processes) -> str:
    if workers == INDEPENDENT:
        return f"{processes} independent processes, 1 thread each (no Dask)"
    return str(workers or "1 process, all cores")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pinn-steps", type=int, default=150)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "batch_throughput.json")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.files < args.workers:
        parser.error(f"--files ({args.files}) must be at least --workers ({args.workers}) >= 1: "
                     "every independent process of the ceiling run needs a file")  # fmt: skip
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
            for workers in (None, SERIAL_ONE_THREAD, args.workers, INDEPENDENT):
                out = Path(tmp) / f"out_{len(rows)}"
                row = {"run": name, "workers": workers, "files": args.files}
                if workers == INDEPENDENT:
                    row["processes"] = args.workers
                    row.update(run_independent(folder, out, method_args, args.workers))
                else:
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
