"""Command line of ``python -m napari_mollifier.batch`` (argparse; no Qt, no napari)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from ..choices import DEVICES
from ..inverse.config import InferenceConfig
from ..inverse.registry import estimator_names
from .runner import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    BatchUsageError,
    run_batch,
    summary_table,
)

DESCRIPTION = """\
Infer Gamma_me/Gamma_ac rate-ratio maps for every localisation table or density image in
INPUT (files or folders), without Qt, here or on a Dask cluster. Per input <name>, OUT_DIR gets
<name>.ome.tif (maps: ratio, phi_h, residual, uncertainty, with pixel size) and <name>.json
(config, versions, device, seed, timings, diagnostics); plus summary.csv (one row per input)
and effective_config.yaml.
"""

EPILOG = """\
exit status:
  0    every input succeeded (or was already complete with --resume)
  1    some inputs failed (see summary.csv); the others were written
  2    usage error: bad option or config, no inputs, outputs in the way, Dask missing or
       unreachable; nothing was processed
  130  interrupted (Ctrl-C, SIGTERM): finished outputs are complete, the rest are "not run"

examples:
  python -m napari_mollifier.batch sample_data/ -o results/
  python -m napari_mollifier.batch data/ -o out/ --pattern "*.csv" --recursive --workers 4
  python -m napari_mollifier.batch data/ -o out/ --config run.yaml --method pinn --resume
  python -m napari_mollifier.batch data/ -o out/ --scheduler tcp://head-node:8786
See docs/batch.md for the config file format.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m napari_mollifier.batch",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="localisation / image files, or folders of them"
    )
    parser.add_argument(
        "-o",
        "--output",
        "--out-dir",
        dest="out_dir",
        required=True,
        metavar="OUT_DIR",
        help="output folder (created if needed)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML or JSON inference config (same fields as the widget); "
        "the flags below override it",
    )
    parser.add_argument(
        "--method",
        choices=estimator_names(),
        help="estimator: direct (weak form, seconds) or pinn (mollified PINN)",
    )
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        help=f"compute device: {', '.join(DEVICES)} or cuda:N (default: auto)",
    )
    parser.add_argument(
        "--pixel-size-nm",
        type=float,
        metavar="X",
        help="fallback pixel size in nm for inputs that carry none (density "
        "images, camera-pixel localisation files); the file's own wins",
    )
    parser.add_argument(
        "--pattern",
        metavar="GLOB",
        help='file-name pattern inside folders, e.g. "*.csv" (default: every supported file)',
    )
    parser.add_argument(
        "--recursive", action="store_true", help="also search sub-folders (outputs mirror them)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, metavar="N", help="run on a local Dask cluster of N worker processes"
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing Dask scheduler, e.g. tcp://host:8786",
    )
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="skip inputs whose outputs are complete; do the rest"
    )
    again.add_argument(
        "--overwrite", action="store_true", help="redo inputs whose outputs exist, replacing them"
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="random seed (same for every file; default from config: 0)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> InferenceConfig:
    """Defaults < ``--config`` file < command-line flags."""
    config = InferenceConfig.from_file(args.config) if args.config else InferenceConfig()
    overrides = {
        "method": args.method,
        "device": args.device,
        "pixel_size_nm": args.pixel_size_nm,
        "seed": args.seed,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return config.replace(**overrides) if overrides else config


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _terminate_as_interrupt():
    """Treat SIGTERM (batch schedulers, ``kill``) like Ctrl-C so temporary files are removed
    and the summary is written; returns the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (see ``--help``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    previous = _terminate_as_interrupt()
    try:
        config = config_from_args(args)
        result = run_batch(
            args.inputs,
            args.out_dir,
            config,
            pattern=args.pattern,
            recursive=args.recursive,
            resume=args.resume,
            overwrite=args.overwrite,
            workers=args.workers,
            scheduler=args.scheduler,
            stream=sys.stderr,
        )
    except KeyboardInterrupt:
        print(
            "\ninterrupted: finished outputs are complete; run again with --resume to do the rest",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except ValueError as exc:  # BatchUsageError and config errors: nothing was processed
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.stderr.flush()
    summary_table(result, sys.stdout)
    return result.exit_status


__all__ = ["BatchUsageError", "build_parser", "config_from_args", "main"]
