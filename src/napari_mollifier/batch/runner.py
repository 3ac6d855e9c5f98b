"""Find inputs, plan outputs, run :func:`process_file` over them (here or on Dask), summarise.

The runner never lets one input stop the others: every input ends as one row of the run
summary (``summary.csv``) with status "ok", "resumed", "error" or "not run" (interrupted).
"""

from __future__ import annotations

import csv
import io as _stdio
import math
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..inverse.config import InferenceConfig
from .pipeline import (
    STATUS_ERROR,
    TMP_DIRNAME,
    FileReport,
    atomic_write_text,
    output_paths,
    process_file,
    read_complete_sidecar,
    report_from_sidecar,
    strip_known_suffix,
    supported_suffixes,
)

SUMMARY_NAME = "summary.csv"
CONFIG_NAME = "effective_config.yaml"
STATUS_NOT_RUN = "not run"

#: Exit statuses of ``python -m napari_mollifier.batch`` (documented in docs/batch.md).
EXIT_OK = 0  # every input succeeded (or was already complete with --resume)
EXIT_SOME_FAILED = 1  # at least one input failed; the others were written
EXIT_USAGE = 2  # bad arguments / config, no inputs, outputs in the way, dask missing
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; finished outputs are complete, the rest "not run"

SUMMARY_COLUMNS = (
    "input",
    "status",
    "ratio_mean",
    "ratio_median",
    "n_valid",
    "time_s",
    "maps_path",
    "json_path",
    "input_format",
    "method",
    "device",
    "seed",
    "error",
)


class BatchUsageError(ValueError):
    """The run cannot start (arguments, config, inputs or outputs); nothing was processed."""


@dataclass
class Job:
    """One input and the output name planned for it."""

    path: Path
    stem: str


# --- inputs ---------------------------------------------------------------------------------
def discover_inputs(
    inputs: Sequence[str | Path],
    pattern: str | None = None,
    recursive: bool = False,
    exclude: Iterable[str | Path] = (),
) -> tuple[list[Job], list[Path]]:
    """Expand files and folders into jobs with unique output names.

    Files named explicitly are always taken (an unsupported one becomes an error row).
    Folders contribute the files matching ``pattern`` (default ``*``; searched in sub-folders
    too with ``recursive``) whose suffix is a supported format, skipping hidden files and
    anything under ``exclude`` (the output folder). Output names mirror sub-folders.

    Returns
    -------
    jobs : list of Job
        In input order (folder contents sorted), without duplicates.
    ignored : list of Path
        Folder entries skipped because their suffix is not a supported format.

    Raises
    ------
    BatchUsageError
        When an input does not exist.
    """
    excluded = [Path(p).resolve() for p in exclude]
    suffixes = supported_suffixes()
    seen: set[Path] = set()
    found: list[tuple[Path, Path]] = []  # (path, output name relative to OUT_DIR)
    ignored: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_file():
            key = item.resolve()
            if key not in seen:
                seen.add(key)
                found.append((item, Path(strip_known_suffix(item.name))))
            continue
        if not item.is_dir():
            raise BatchUsageError(f"input {str(item)!r} does not exist (expected a file or folder)")
        matches = item.rglob(pattern or "*") if recursive else item.glob(pattern or "*")
        for path in sorted(matches):
            rel = path.relative_to(item)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            key = path.resolve()
            if any(key.is_relative_to(ex) for ex in excluded) or key in seen:
                continue
            if not path.name.lower().endswith(suffixes):
                ignored.append(path)
                continue
            seen.add(key)
            found.append((path, rel.parent / strip_known_suffix(path.name)))
    return _unique_stems(found), ignored


def _unique_stems(found: list[tuple[Path, Path]]) -> list[Job]:
    """Give colliding output names the input suffix (``cell.csv`` -> ``cell_csv``), then -2, -3."""

    def key(p: Path) -> str:
        return p.as_posix().lower()

    counts: dict[str, int] = {}
    for _, stem in found:
        counts[key(stem)] = counts.get(key(stem), 0) + 1
    used: set[str] = set()
    jobs = []
    for path, stem in found:
        if counts[key(stem)] > 1:
            stem = stem.parent / path.name.replace(".", "_")
        candidate, n = stem, 2
        while key(candidate) in used:
            candidate = stem.parent / f"{stem.name}-{n}"
            n += 1
        used.add(key(candidate))
        jobs.append(Job(path, candidate.as_posix()))
    return jobs


# --- run --------------------------------------------------------------------------------------
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
    analysis=None,
) -> BatchResult:
    """Process every input into ``out_dir``; see ``python -m napari_mollifier.batch --help``.

    ``workers`` starts a local Dask cluster of that many single-threaded worker processes;
    ``scheduler`` connects to an existing Dask scheduler instead; neither runs here, one file
    after another. Progress goes to ``stream`` (stderr by default). ``analysis`` (an
    :class:`napari_mollifier.analysis.batch.BatchAnalysis`) adds the domain analysis per input
    (``<stem>.domains.csv``, summary columns) and the condition comparison at the end.

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
    if resume and overwrite:
        raise BatchUsageError("--resume and --overwrite exclude each other")
    if workers is not None and scheduler is not None:
        raise BatchUsageError("--workers and --scheduler exclude each other")
    if workers is not None and workers < 1:
        raise BatchUsageError(f"--workers: expected a positive number of workers, found {workers}")
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BatchUsageError(f"output {str(out_dir)!r} exists and is not a folder")

    jobs, ignored = discover_inputs(inputs, pattern, recursive, exclude=[out_dir])
    if ignored:
        shown = ", ".join(p.name for p in ignored[:5]) + (" ..." if len(ignored) > 5 else "")
        _say(stream, f"ignoring {len(ignored)} file(s) of unsupported type: {shown}")
    if not jobs:
        where = ", ".join(str(p) for p in inputs)
        raise BatchUsageError(
            f"no inputs found in {where} (pattern {pattern or '*'!r}"
            f"{', recursive' if recursive else ''}); supported suffixes: "
            f"{', '.join(supported_suffixes())}"
        )

    # decide per input: resume, redo, or refuse to clobber
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
                _say(
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

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / TMP_DIRNAME, ignore_errors=True)  # leftovers of a killed run
    config_path = out_dir / CONFIG_NAME
    summary_path = out_dir / SUMMARY_NAME
    atomic_write_text(config_path, _config_yaml(config))

    extra: list[dict] | None = None
    if analysis is not None and analysis.domains:
        extra = [{} for _ in jobs]
        for i, report in enumerate(reports):
            if report is not None:  # resumed: the maps exist, the analysis runs again
                extra[i] = analysis.row(jobs[i].path, out_dir, jobs[i].stem, report.maps_path)

    total = len(jobs)
    n_done = [total - len(todo)]
    n_resumed = total - len(todo)
    mode = (
        "sequentially"
        if workers is None and scheduler is None
        else f"on a local Dask cluster of {workers} worker(s)"
        if scheduler is None
        else f"on the Dask scheduler {scheduler}"
    )
    _say(
        stream,
        f"{total} input(s), {n_resumed} already complete, {len(todo)} to run {mode}; "
        f"method {config.method}, output {out_dir}",
    )

    def finished(index: int, report: FileReport) -> None:
        reports[index] = report
        if extra is not None:
            extra[index] = analysis.row(jobs[index].path, out_dir, jobs[index].stem,
                                        report.maps_path)  # fmt: skip
        n_done[0] += 1
        _say(stream, _file_line(n_done[0], total, report))
        if extra is not None and extra[index].get("domain_status") == "error":
            _say(stream, f"  domain analysis failed: {extra[index]['domain_error']}")
        if report.traceback:
            _say(stream, report.traceback.rstrip())
        write_summary(summary_path, jobs, reports, extra)

    try:
        if workers is None and scheduler is None:
            _run_sequential(jobs, todo, out_dir, config, finished, stream)
        else:
            _run_dask(jobs, todo, out_dir, config, finished, stream, workers, scheduler)
    except KeyboardInterrupt:
        write_summary(summary_path, jobs, reports, extra)
        raise
    write_summary(summary_path, jobs, reports, extra)
    if analysis is not None and analysis.compares:
        analysis.compare(_summary_rows(summary_path), out_dir, lambda text: _say(stream, text))
    final = [r for r in reports if r is not None]
    failed = any(r.status != "ok" and r.status != "resumed" for r in final)
    return BatchResult(
        reports=final,
        out_dir=out_dir,
        summary_path=summary_path,
        config_path=config_path,
        exit_status=EXIT_SOME_FAILED if failed else EXIT_OK,
        wall_s=time.perf_counter() - t_start,
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


def _gpu_count(config: InferenceConfig) -> int:
    """GPUs this machine would use for ``config`` (0 when the device is CPU/MPS or no CUDA)."""
    if config.device not in ("auto", "cuda"):
        return 0
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_task(path: str, out_dir: str, config: dict, stem: str, n_local_gpus: int = 0):
    """The function Dask runs: :func:`process_file`, pinned to one GPU on a local cluster.

    With ``n_local_gpus`` > 0 the worker named ``i`` (LocalCluster names workers 0..N-1) sees
    only GPU ``i % n_local_gpus``; the choice is made before CUDA starts in that process.
    Nothing else depends on the worker: the seed is ``config["seed"]`` for every file.
    """
    if n_local_gpus > 0 and "_NAPARI_MOLLIFIER_GPU_PINNED" not in os.environ:
        from distributed import get_worker

        try:
            index = int(get_worker().name)
        except (TypeError, ValueError):
            index = 0
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % n_local_gpus)
        os.environ["_NAPARI_MOLLIFIER_GPU_PINNED"] = "1"
    return process_file(path, out_dir, config, stem)


def _run_dask(jobs, todo, out_dir, config, finished, stream, workers, scheduler) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise BatchUsageError(
            "--workers / --scheduler need Dask distributed, which is not installed; install it "
            "with: pip install 'napari-mollifier[dask]'  (or: pip install 'dask[distributed]')"
        ) from exc

    cluster = None
    n_local_gpus = 0
    resources = None
    try:
        if scheduler is None:
            n_local_gpus = _gpu_count(config)
            n_workers = workers
            if n_local_gpus:
                # one task per GPU at a time: one single-threaded worker per GPU
                n_workers = min(workers, n_local_gpus)
                resources = {"GPU": 1}
                _say(stream, f"{n_local_gpus} GPU(s) found: {n_workers} worker(s), one per GPU")
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                resources=resources,
            )
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise BatchUsageError(
                    f"cannot reach the Dask scheduler {scheduler}: {exc}"
                ) from exc
            info = client.scheduler_info()
            if any("GPU" in (w.get("resources") or {}) for w in info.get("workers", {}).values()):
                resources = {"GPU": 1}  # workers advertise GPUs: one task per GPU slot
        _say(stream, f"Dask dashboard: {client.dashboard_link}")
    except BatchUsageError:
        if cluster is not None:
            cluster.close()
        raise
    except Exception as exc:
        if cluster is not None:
            cluster.close()
        raise BatchUsageError(f"cannot start the Dask cluster: {exc}") from exc

    out_abs = str(Path(out_dir).resolve())
    config_dict = config.to_dict()
    futures = {}
    try:
        for index in todo:
            job = jobs[index]
            future = client.submit(
                worker_task,
                str(job.path.resolve()),
                out_abs,
                config_dict,
                job.stem,
                n_local_gpus,
                key=f"napari-mollifier-{index}-{job.stem}",
                pure=False,
                resources=resources,
            )
            futures[future] = index
        for future in as_completed(futures):
            index = futures[future]
            job = jobs[index]
            try:
                report = future.result()
                # report paths in the caller's terms, not the worker's absolute ones
                report.input = str(job.path)
                if report.maps_path:
                    report.maps_path, report.json_path = (
                        str(p) for p in output_paths(out_dir, job.stem)
                    )
            except Exception as exc:  # a killed worker, a lost connection: report, go on
                report = FileReport(
                    input=str(job.path),
                    status=STATUS_ERROR,
                    output_stem=job.stem,
                    method=config.method,
                    seed=config.seed,
                    error=f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:2000],
                )
            finished(index, report)
    except KeyboardInterrupt:
        client.cancel(list(futures))
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --- reporting --------------------------------------------------------------------------------
def write_summary(
    path: Path,
    jobs: Sequence[Job],
    reports: Sequence[FileReport | None],
    extra: Sequence[dict] | None = None,
) -> None:
    """Write the run summary CSV atomically: one row per input, in input order.

    ``extra`` (one dict per input) adds the domain-analysis columns
    (``analysis.batch.BATCH_COLUMNS``) after the runner's own.
    """
    columns = list(SUMMARY_COLUMNS)
    if extra is not None:
        from ..analysis.batch import BATCH_COLUMNS, format_value

        columns += [c for c in BATCH_COLUMNS if c not in columns]
    buffer = _stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for i, (job, report) in enumerate(zip(jobs, reports, strict=True)):
        if report is None:
            report = FileReport(input=str(job.path), status=STATUS_NOT_RUN, output_stem=job.stem)
        row = report.to_dict()
        for name in ("ratio_mean", "ratio_median"):
            value = row[name]
            row[name] = "" if value is None or math.isnan(value) else f"{value:.6g}"
        row["time_s"] = f"{row['time_s']:.3f}"
        out = {name: row[name] for name in SUMMARY_COLUMNS}
        if extra is not None:
            out.update({c: format_value(extra[i].get(c, "")) for c in BATCH_COLUMNS})
        writer.writerow(out)
    atomic_write_text(path, buffer.getvalue())


def _summary_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _file_line(done: int, total: int, report: FileReport) -> str:
    width = len(str(total))
    head = f"[{done:>{width}}/{total}] {report.status:<7} {report.input}"
    if report.status == STATUS_ERROR:
        # io errors start with the file name already
        error = report.error.removeprefix(f"{report.input}: ")
        return f"{head}: {error}"
    median = report.ratio_median
    ratio = "n/a" if math.isnan(median) else f"{median:.4g}"
    return f"{head}  median ratio {ratio}  ({report.time_s:.1f} s) -> {report.maps_path}"


def _say(stream: TextIO, text: str) -> None:
    print(text, file=stream, flush=True)


class ProgressPrinter:
    """Prints :class:`ProgressEvent` s of one inference on ``stream``.

    On a terminal: one bar redrawn in place (at most every ``interval_s``); otherwise (logs,
    pipes) a line at every 10 % of the step budget. One-shot methods ("direct") print nothing.
    """

    def __init__(self, label: str, stream: TextIO, interval_s: float = 0.5, width: int = 24):
        self.label = label
        self.stream = stream
        self.interval_s = interval_s
        self.width = width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_time = -math.inf
        self._last_decile = -1
        self._drawn = False

    def __call__(self, event) -> None:
        total = max(int(event.total), 1)
        if total <= 1:
            return
        fraction = min(max(event.step / total, 0.0), 1.0)
        losses = " ".join(f"{k} {v:.3g}" for k, v in list(event.losses.items())[:3])
        text = f"  {self.label}: step {event.step}/{total} {losses} {event.elapsed_s:.1f} s"
        if event.message:
            text += f" ({event.message})"
        if self.tty:
            now = time.monotonic()
            if now - self._last_time < self.interval_s and event.result is None:
                return
            self._last_time = now
            filled = int(round(fraction * self.width))
            bar = "#" * filled + "." * (self.width - filled)
            columns = shutil.get_terminal_size((100, 20)).columns
            self.stream.write(("\r" + f"[{bar}] {fraction:4.0%}" + text)[: columns - 1] + "\x1b[K")
            self.stream.flush()
            self._drawn = True
        else:
            decile = int(fraction * 10)
            if decile > self._last_decile:
                self._last_decile = decile
                _say(self.stream, f"{fraction:4.0%}{text}")

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def summary_table(result: BatchResult, stream: TextIO) -> None:
    """Print where the outputs are and a short table of the run (the CLI's last words)."""
    out = result.out_dir
    print(
        f"napari-mollifier batch: {len(result.reports)} input(s): {result.n_ok} ok, "
        f"{result.n_resumed} resumed, {result.n_failed} failed, in {result.wall_s:.1f} s",
        file=stream,
    )
    rows = [("input", "status", "median ratio", "maps")]
    for r in result.reports:
        median = "" if math.isnan(r.ratio_median) else f"{r.ratio_median:.4g}"
        rows.append((r.input, r.status, median, r.maps_path or r.error[:60]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  "
            + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True))
            + "  "
            + row[3],
            file=stream,
        )
    print(
        f"maps:    {out}{os.sep}<name>.ome.tif  (+ <name>.json: config, versions, timings)",
        file=stream,
    )
    print(f"summary: {result.summary_path}", file=stream)
    print(f"config:  {result.config_path}", file=stream)
