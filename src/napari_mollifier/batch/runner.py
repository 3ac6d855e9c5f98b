"""Find inputs, plan outputs, run :func:`process_file` over them (here or on Dask), summarise.

The runner never lets one input stop the others: every input ends as one row of the run
summary (``summary.csv``) with status "ok", "resumed", "error" or "not run" (interrupted).
"""

from __future__ import annotations

import io as _stdio
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..inverse.config import InferenceConfig
from . import _signals
from .dask_run import run_dask, worker_task
from .discovery import BatchUsageError, Job, discover_inputs
from .faults import BatchOutputError, output_error
from .pipeline import (
    STATUS_ERROR,
    TMP_DIRNAME,
    FileReport,
    atomic_write_text,
    input_changed,
    output_paths,
    process_file,
    read_complete_sidecar,
    report_from_sidecar,
    supported_suffixes,
)
from .report import (
    STATUS_NOT_RUN,
    SUMMARY_COLUMNS,
    ProgressPrinter,
    file_line,
    say,
    summary_rows,
    summary_table,
    write_summary,
)

__all__ = [
    "BatchOutputError",
    "BatchResult",
    "BatchUsageError",
    "Job",
    "ProgressPrinter",
    "STATUS_NOT_RUN",
    "SUMMARY_COLUMNS",
    "discover_inputs",
    "run_batch",
    "summary_table",
    "worker_task",
    "write_summary",
]

SUMMARY_NAME = "summary.csv"
CONFIG_NAME = "effective_config.yaml"

#: Exit statuses of ``python -m napari_mollifier.batch`` (documented in docs/batch.md).
EXIT_OK = 0  # every input succeeded (or was already complete with --resume)
EXIT_SOME_FAILED = 1  # at least one input failed; the others were written
EXIT_USAGE = 2  # bad arguments / config, no inputs, outputs in the way, dask missing
EXIT_OUTPUT = 3  # the output folder cannot be written (read-only, no permission, disk full)
EXIT_INTERRUPTED = _signals.EXIT_INTERRUPTED  # 130: SIGINT (Ctrl-C); finished outputs complete
EXIT_TERMINATED = _signals.EXIT_TERMINATED  # 143: SIGTERM; finished outputs are complete


@dataclass
class BatchResult:
    """Everything a caller needs after a run."""

    reports: list[FileReport]
    out_dir: Path
    summary_path: Path
    config_path: Path
    exit_status: int
    wall_s: float

    @property
    def n_ok(self) -> int:
        return sum(r.status == "ok" for r in self.reports)

    @property
    def n_resumed(self) -> int:
        return sum(r.status == "resumed" for r in self.reports)

    @property
    def n_failed(self) -> int:
        return sum(r.status == STATUS_ERROR for r in self.reports)


def run_batch(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: InferenceConfig | None = None,
    *,
    pattern: str | None = None,
    recursive: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    stream: TextIO | None = None,
    verbosity: int = 1,
    analysis=None,
) -> BatchResult:
    """Process every input into ``out_dir``; see ``python -m napari_mollifier.batch --help``.

    ``config`` None runs the CLI's default (the mollified PINN).
    ``workers`` starts a local Dask cluster of that many single-threaded worker processes;
    ``scheduler`` connects to an existing Dask scheduler instead; neither runs here, one file
    after another. Progress goes to ``stream`` (stderr by default): with ``verbosity`` 0 only
    errors, 1 also progress bars and one line per finished file, 2 also the tracebacks of
    unexpected failures. ``analysis`` (an :class:`napari_mollifier.analysis.batch.BatchAnalysis`)
    adds the domain analysis per input (``<stem>.domains.csv``, summary columns) and the
    condition comparison at the end.

    Raises
    ------
    BatchUsageError
        Before any work: bad options, no inputs, existing outputs without ``resume`` /
        ``overwrite``, Dask not installed or not reachable.
    BatchOutputError
        The output folder cannot be written (read-only, permission denied, full): the run
        stops; the summary is written where the folder still allows it.
    KeyboardInterrupt
        Re-raised after the summary (with "not run" rows) is written; see ``main``.
    """
    stream = sys.stderr if stream is None else stream
    chatty = stream if verbosity >= 1 else _stdio.StringIO()
    if config is None:
        from .cli import default_config

        config = default_config()
    _check_options(resume, overwrite, workers, scheduler)
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BatchUsageError(f"output {str(out_dir)!r} exists and is not a folder")
    jobs = _discover(inputs, out_dir, pattern, recursive, chatty)
    reports, todo = _plan(jobs, out_dir, config, resume, overwrite, chatty)

    config_path = out_dir / CONFIG_NAME
    summary_path = out_dir / SUMMARY_NAME
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out_dir / TMP_DIRNAME, ignore_errors=True)  # leftovers of a killed run
        atomic_write_text(config_path, _config_yaml(config))
    except OSError as exc:
        raise output_error(out_dir, exc, CONFIG_NAME) from exc
    say(chatty, _start_line(len(jobs), todo, config, out_dir, workers, scheduler))
    n_done = [len(jobs) - len(todo)]
    extra = _resumed_domains(analysis, jobs, reports, out_dir)

    def finished(index: int, report: FileReport) -> None:
        signum = _signals.received()
        if signum is not None:  # an interrupt that surfaced as this file's error: "not run"
            raise _signals.Interrupted(signum)
        reports[index] = report
        if extra is not None:
            job = jobs[index]
            extra[index] = analysis.row(job.path, out_dir, job.stem, report.maps_path)
        n_done[0] += 1
        for warning in report.warnings:
            say(stream, f"warning: {warning}")
        where = stream if report.status == STATUS_ERROR else chatty
        say(where, file_line(n_done[0], len(jobs), report))
        if extra is not None and extra[index].get("domain_status") == "error":
            say(stream, f"  domain analysis failed: {extra[index]['domain_error']}")
        if report.traceback and verbosity >= 2:
            say(stream, report.traceback.rstrip())
        elif report.traceback:
            say(stream, "  (unexpected error: run with --verbose for its traceback)")
        _write_summary_or_stop(summary_path, jobs, reports, out_dir, extra)

    try:
        if workers is None and scheduler is None:
            progress = stream if verbosity >= 1 else None
            _run_sequential(jobs, todo, out_dir, config, finished, progress)
        else:
            run_dask(jobs, todo, out_dir, config, finished, chatty, workers, scheduler)
    except (KeyboardInterrupt, BatchOutputError):
        try:
            write_summary(summary_path, jobs, reports, extra)
        except OSError:
            pass  # the folder refuses writes: the error or interrupt is what the user sees
        raise
    _write_summary_or_stop(summary_path, jobs, reports, out_dir, extra)
    if analysis is not None and analysis.compares:
        analysis.compare(summary_rows(summary_path), out_dir, lambda text: say(chatty, text))
    final = [r for r in reports if r is not None]
    failed = any(r.status not in ("ok", "resumed") for r in final)
    return BatchResult(
        reports=final,
        out_dir=out_dir,
        summary_path=summary_path,
        config_path=config_path,
        exit_status=EXIT_SOME_FAILED if failed else EXIT_OK,
        wall_s=time.perf_counter() - t_start,
    )


def _write_summary_or_stop(summary_path, jobs, reports, out_dir, extra=None) -> None:
    try:
        write_summary(summary_path, jobs, reports, extra)
    except OSError as exc:
        raise output_error(out_dir, exc, SUMMARY_NAME) from exc


def _resumed_domains(analysis, jobs, reports, out_dir: Path) -> list[dict] | None:
    """Domain columns per input (None when off); resumed inputs are analysed again here."""
    if analysis is None or not analysis.domains:
        return None
    extra = [{} for _ in jobs]
    for i, report in enumerate(reports):
        if report is not None:
            extra[i] = analysis.row(jobs[i].path, out_dir, jobs[i].stem, report.maps_path)
    return extra


def _check_options(resume, overwrite, workers, scheduler) -> None:
    if resume and overwrite:
        raise BatchUsageError("--resume and --overwrite exclude each other")
    if workers is not None and scheduler is not None:
        raise BatchUsageError("--workers and --scheduler exclude each other")
    if workers is not None and workers < 1:
        raise BatchUsageError(f"--workers: expected a positive number of workers, found {workers}")


def _discover(inputs, out_dir: Path, pattern, recursive, stream) -> list[Job]:
    skipped: list[tuple[Path, str]] = []
    jobs, ignored = discover_inputs(inputs, pattern, recursive, [out_dir], skipped)
    for path, kind in skipped:
        say(stream, f"skipping {path}: {kind}, not a regular file (not opened)")
    if ignored:
        shown = ", ".join(p.name for p in ignored[:5]) + (" ..." if len(ignored) > 5 else "")
        say(stream, f"ignoring {len(ignored)} file(s) of unsupported type: {shown}")
    if not jobs:
        where = ", ".join(str(p) for p in inputs)
        raise BatchUsageError(
            f"no inputs found in {where} (pattern {pattern or '*'!r}"
            f"{', recursive' if recursive else ''}); supported suffixes: "
            f"{', '.join(supported_suffixes())}"
        )
    return jobs


def _plan(jobs, out_dir: Path, config, resume: bool, overwrite: bool, stream):
    """Per input: resumed (its report from the sidecar), to do, or in the way (refused)."""
    reports: list[FileReport | None] = [None] * len(jobs)
    todo: list[int] = []
    in_the_way: list[str] = []
    current_config = InferenceConfig.from_dict(config.to_dict()).to_dict()
    for i, job in enumerate(jobs):
        maps_path, json_path = output_paths(out_dir, job.stem)
        meta = read_complete_sidecar(out_dir, job.stem)
        changed = input_changed(meta, job.path) if meta is not None and resume else None
        if changed is not None:
            say(
                stream,
                f"warning: {job.path} changed since {json_path} was made ({changed}); redoing it",
            )
            todo.append(i)
            continue
        if meta is not None and resume:
            reports[i] = report_from_sidecar(str(job.path), out_dir, job.stem, meta)
            if _config_differs(meta.get("config"), current_config):
                say(
                    stream,
                    f"warning: {json_path} was made with a different config; resumed "
                    "anyway (use --overwrite to redo it)",
                )
            continue
        if (maps_path.exists() or json_path.exists()) and not (resume or overwrite):
            in_the_way.append(str(maps_path if maps_path.exists() else json_path))
        todo.append(i)
    if in_the_way:
        shown = ", ".join(in_the_way[:3]) + (" ..." if len(in_the_way) > 3 else "")
        raise BatchUsageError(
            f"{len(in_the_way)} output(s) already exist in {out_dir} ({shown}); pass --resume to "
            "keep complete ones and do the rest, or --overwrite to redo everything"
        )
    return reports, todo


def _start_line(total, todo, config, out_dir, workers, scheduler) -> str:
    if workers is None and scheduler is None:
        mode = "sequentially"
    elif scheduler is None:
        mode = f"on a local Dask cluster of {workers} worker(s)"
    else:
        mode = f"on the Dask scheduler {scheduler}"
    return (
        f"{total} input(s), {total - len(todo)} already complete, {len(todo)} to run {mode}; "
        f"method {config.method}, output {out_dir}"
    )


def _config_differs(old: dict | None, new: dict) -> bool:
    if not isinstance(old, dict):
        return True
    try:
        return InferenceConfig.from_dict(old).to_dict() != new
    except (TypeError, ValueError):
        return True


def _config_yaml(config: InferenceConfig) -> str:
    import yaml

    header = (
        "# Effective napari-mollifier configuration of this batch run (defaults < --config <\n"
        "# command-line flags). Pass it back with --config to reproduce the run.\n"
    )
    return header + yaml.safe_dump(config.to_dict(), sort_keys=True)


def _run_sequential(jobs, todo, out_dir, config, finished, stream) -> None:
    """One file after another; progress bars on ``stream`` (None: no bars)."""
    for index in todo:
        job = jobs[index]
        printer = ProgressPrinter(job.path.name, stream) if stream is not None else None
        try:
            report = process_file(job.path, out_dir, config, job.stem, on_progress=printer)
        finally:
            if printer is not None:
                printer.close()
        finished(index, report)
