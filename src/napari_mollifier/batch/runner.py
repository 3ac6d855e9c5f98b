"""Find inputs, plan outputs, run :func:`process_file` over them (here or on Dask), summarise.

The runner never lets one input stop the others: every input ends as one row of the run
summary (``summary.csv``) with status "ok", "resumed", "error" or "not run" (interrupted).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..inverse.config import InferenceConfig
from .dask_run import run_dask, worker_task
from .discovery import BatchUsageError, Job, discover_inputs
from .pipeline import (
    STATUS_ERROR,
    TMP_DIRNAME,
    FileReport,
    atomic_write_text,
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
    summary_table,
    write_summary,
)

__all__ = [
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
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; finished outputs are complete, the rest "not run"


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
) -> BatchResult:
    """Process every input into ``out_dir``; see ``python -m napari_mollifier.batch --help``.

    ``workers`` starts a local Dask cluster of that many single-threaded worker processes;
    ``scheduler`` connects to an existing Dask scheduler instead; neither runs here, one file
    after another. Progress goes to ``stream`` (stderr by default).

    Raises
    ------
    BatchUsageError
        Before any work: bad options, no inputs, existing outputs without ``resume`` /
        ``overwrite``, Dask not installed or not reachable.
    KeyboardInterrupt
        Re-raised after the summary (with "not run" rows) is written; see ``main``.
    """
    stream = sys.stderr if stream is None else stream
    config = config or InferenceConfig()
    _check_options(resume, overwrite, workers, scheduler)
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BatchUsageError(f"output {str(out_dir)!r} exists and is not a folder")
    jobs = _discover(inputs, out_dir, pattern, recursive, stream)
    reports, todo = _plan(jobs, out_dir, config, resume, overwrite, stream)

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / TMP_DIRNAME, ignore_errors=True)  # leftovers of a killed run
    config_path = out_dir / CONFIG_NAME
    summary_path = out_dir / SUMMARY_NAME
    atomic_write_text(config_path, _config_yaml(config))
    say(stream, _start_line(len(jobs), todo, config, out_dir, workers, scheduler))
    n_done = [len(jobs) - len(todo)]

    def finished(index: int, report: FileReport) -> None:
        reports[index] = report
        n_done[0] += 1
        say(stream, file_line(n_done[0], len(jobs), report))
        if report.traceback:
            say(stream, report.traceback.rstrip())
        write_summary(summary_path, jobs, reports)

    try:
        if workers is None and scheduler is None:
            _run_sequential(jobs, todo, out_dir, config, finished, stream)
        else:
            run_dask(jobs, todo, out_dir, config, finished, stream, workers, scheduler)
    except KeyboardInterrupt:
        write_summary(summary_path, jobs, reports)
        raise
    write_summary(summary_path, jobs, reports)
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


def _check_options(resume, overwrite, workers, scheduler) -> None:
    if resume and overwrite:
        raise BatchUsageError("--resume and --overwrite exclude each other")
    if workers is not None and scheduler is not None:
        raise BatchUsageError("--workers and --scheduler exclude each other")
    if workers is not None and workers < 1:
        raise BatchUsageError(f"--workers: expected a positive number of workers, found {workers}")


def _discover(inputs, out_dir: Path, pattern, recursive, stream) -> list[Job]:
    jobs, ignored = discover_inputs(inputs, pattern, recursive, exclude=[out_dir])
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
    for index in todo:
        job = jobs[index]
        printer = ProgressPrinter(job.path.name, stream)
        report = process_file(job.path, out_dir, config, job.stem, on_progress=printer)
        printer.close()
        finished(index, report)
