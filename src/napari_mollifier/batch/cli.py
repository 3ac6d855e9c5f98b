"""Command line of ``python -m napari_mollifier.batch`` (argparse; no Qt, no napari)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..choices import BACKBONES, DEVICES, RENDER_METHODS, Z_PROJECTIONS, is_z_plane
from ..inverse.config import InferenceConfig
from ..inverse.registry import estimator_names
from . import _signals
from .analysis_flags import add_domain_arguments, analysis_from_args
from .runner import (
    EXIT_OUTPUT,
    EXIT_USAGE,
    BatchOutputError,
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
  3    the output folder cannot be written (read-only, permission denied, disk full): the
       run stopped; finished outputs are complete, run again with --resume
  130  interrupted by SIGINT (Ctrl-C), at any moment: finished outputs are complete, the
       rest are "not run"
  143  terminated by SIGTERM (kill, batch queues), at any moment: as 130

examples:
  napari-mollifier src/napari_mollifier/sample_data/ -o results/
  napari-mollifier data/ -o out/ --pattern "*.csv" --recursive --workers 4
  napari-mollifier data/ -o out/ --config run.yaml --method direct --resume
  napari-mollifier data/ -o out/ --config results/cell.json   # reproduce a result
  napari-mollifier data/ -o out/ --scheduler tcp://head-node:8786
  napari-mollifier dmso/ ezh2i/ -o out/ --domains --group-by folder
("napari-mollifier" is the same program as "python -m napari_mollifier.batch".)
See docs/batch.md for the config file format.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-mollifier",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
        help="YAML or JSON inference config (same fields as the widget), or the JSON sidecar "
        "of any output map (its run config is used); the flags below override it",
    )
    parser.add_argument(
        "--method",
        choices=estimator_names(),
        help="estimator: pinn (mollified PINN, the default; minutes) or direct (weak form, "
        "seconds)",
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
        "--z-plane",
        type=_z_plane,
        metavar="Z",
        help=f"for Z (or T) stack images: a plane index (0-based) or a projection "
        f"({', '.join(Z_PROJECTIONS)}); without it stacks are refused",
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
    pinn = parser.add_argument_group("mollified-PINN settings (override the config file)")
    pinn.add_argument("--steps", type=int, metavar="N", help="optimisation steps per network")
    pinn.add_argument("--backbone", choices=BACKBONES, help="network architecture")
    pinn.add_argument(
        "--ensemble", type=int, metavar="K", help="independently seeded networks (uncertainty)"
    )
    pinn.add_argument("--patch-size", type=int, metavar="PX", help="training patch edge, pixels")
    render = parser.add_argument_group("localisation tables")
    render.add_argument(
        "--render-pixel-size-nm",
        type=float,
        metavar="NM",
        help="pixel size of the density image rendered from localisations, nm",
    )
    render.add_argument("--render-method", choices=RENDER_METHODS, help="rendering method")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument(
        "-v", "--verbose", action="store_true", help="also print tracebacks and debug logging"
    )
    talk.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars or per-file lines; errors and the final summary only",
    )
    add_domain_arguments(parser)
    return parser


#: Command-line flag (argparse dest) -> config field it sets. The one place to adapt when the
#: config's layout changes (dotted names address nested sections).
FLAG_FIELDS = {
    "method": "method",
    "device": "device",
    "pixel_size_nm": "pixel_size_nm",
    "seed": "seed",
    "z_plane": "z_plane",
    "steps": "pinn.steps",
    "backbone": "pinn.backbone",
    "ensemble": "pinn.ensemble_size",
    "patch_size": "pinn.patch_size",
    "render_pixel_size_nm": "render.pixel_size_nm",
    "render_method": "render.method",
}


def _z_plane(text: str):
    """``--z-plane``: an int for digits, else a projection name."""
    value = int(text) if text.strip().isdigit() else text.strip().lower()
    if not is_z_plane(value):
        raise argparse.ArgumentTypeError(
            f"expected a plane index (0, 1, ...) or one of {', '.join(Z_PROJECTIONS)}, "
            f"found {text!r}"
        )
    return value


def flag_overrides(args: argparse.Namespace) -> dict:
    """The config changes the flags ask for: ``{field: value}``, unset flags left out.

    Dotted field names (``"pinn.steps"``) become nested dicts, which ``InferenceConfig.replace``
    merges into the section.
    """
    changes: dict = {}
    for dest, name in FLAG_FIELDS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        *sections, leaf = name.split(".")
        target = changes
        for section in sections:
            target = target.setdefault(section, {})
        target[leaf] = value
    return changes


#: The method of a run that names none: the mollified PINN, the product's main job (the widget's
#: "Infer rates" runs it too; ``--method direct`` is the seconds-fast preview).
DEFAULT_METHOD = "pinn"


def default_config() -> InferenceConfig:
    """The configuration of a run without ``--config``: every default, method PINN."""
    return InferenceConfig(method=DEFAULT_METHOD)


def read_config_file(path) -> InferenceConfig:
    """A YAML / JSON config, or the JSON sidecar of an output map (its ``config`` section).

    Read safely by :func:`napari_mollifier.inverse.config_files.read_config_file` (size,
    aliases, nesting); fields the file leaves out keep the defaults of :func:`default_config`.
    """
    from ..inverse.config_files import read_config_file as read_mapping
    from ..schema import ConfigError

    data = read_mapping(path)
    try:
        return InferenceConfig.from_dict({"method": DEFAULT_METHOD, **data})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _version() -> str:
    from .. import __version__

    return __version__


def config_from_args(args: argparse.Namespace) -> InferenceConfig:
    """Defaults < ``--config`` file (a config, or an output's JSON sidecar) < command-line flags."""
    config = read_config_file(args.config) if args.config else default_config()
    overrides = flag_overrides(args)
    return config.replace(**overrides) if overrides else config


def _verbosity(args) -> int:
    """0 quiet, 1 normal, 2 verbose (tracebacks and debug logging)."""
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    return 0 if args.quiet else 2 if args.verbose else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (see ``--help``).

    SIGINT and SIGTERM raise :class:`KeyboardInterrupt` for the whole call (temporary files
    are removed, the summary is written) and give 130 / 143; an unwritable output folder gives
    one line and 3. Bad input files never raise: they are rows of the summary.
    """
    previous = _signals.install()
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
            return int(exc.code or 0)
        verbosity = _verbosity(args)
        config = config_from_args(args)
        analysis = analysis_from_args(args)
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
            verbosity=verbosity,
            analysis=analysis,
        )
        sys.stderr.flush()
        summary_table(result, sys.stdout)
        return result.exit_status
    except KeyboardInterrupt as exc:
        print("\n" + _signals.MESSAGE, file=sys.stderr)
        return _signals.status_of(exc)
    except BatchOutputError as exc:
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_OUTPUT
    except ValueError as exc:  # BatchUsageError and config errors: nothing was processed
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        _signals.restore(previous)


__all__ = [
    "FLAG_FIELDS",
    "BatchUsageError",
    "DEFAULT_METHOD",
    "build_parser",
    "config_from_args",
    "default_config",
    "flag_overrides",
    "main",
    "read_config_file",
]
