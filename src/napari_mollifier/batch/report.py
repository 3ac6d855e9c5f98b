"""What a batch run tells: the summary CSV, the per-file lines and the progress bar."""

from __future__ import annotations

import csv
import io as _stdio
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .discovery import Job
from .pipeline import STATUS_ERROR, FileReport, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from .runner import BatchResult

STATUS_NOT_RUN = "not run"

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


def write_summary(path: Path, jobs: Sequence[Job], reports: Sequence[FileReport | None]) -> None:
    """Write the run summary CSV atomically: one row per input, in input order."""
    buffer = _stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for job, report in zip(jobs, reports, strict=True):
        if report is None:
            report = FileReport(input=str(job.path), status=STATUS_NOT_RUN, output_stem=job.stem)
        row = report.to_dict()
        for name in ("ratio_mean", "ratio_median"):
            value = row[name]
            row[name] = "" if value is None or math.isnan(value) else f"{value:.6g}"
        row["time_s"] = f"{row['time_s']:.3f}"
        writer.writerow({name: row[name] for name in SUMMARY_COLUMNS})
    atomic_write_text(path, buffer.getvalue())


def file_line(done: int, total: int, report: FileReport) -> str:
    width = len(str(total))
    head = f"[{done:>{width}}/{total}] {report.status:<7} {report.input}"
    if report.status == STATUS_ERROR:
        # io errors start with the file name already
        error = report.error.removeprefix(f"{report.input}: ")
        return f"{head}: {error}"
    median = report.ratio_median
    ratio = "n/a" if math.isnan(median) else f"{median:.4g}"
    return f"{head}  median ratio {ratio}  ({report.time_s:.1f} s) -> {report.maps_path}"


def say(stream: TextIO, text: str) -> None:
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
                say(self.stream, f"{fraction:4.0%}{text}")

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
