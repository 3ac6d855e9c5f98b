"""What a batch run tells: the summary CSV, the per-file lines and the progress bar."""

from __future__ import annotations

import csv
import io as _stdio
import math
import os
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


def summary_rows(path: Path) -> list[dict]:
    """The rows of a written summary CSV (strings)."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


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
    """Shows the :class:`ProgressEvent` s of one inference as a tqdm bar on ``stream``.

    On a terminal the bar is redrawn in place (at most every ``interval_s``); on other streams
    (logs, pipes) each redraw is its own line, at every 10 % of the step budget. One-shot methods
    ("direct") show nothing.
    """

    def __init__(self, label: str, stream: TextIO, interval_s: float = 0.5):
        self.label = label
        self.stream = stream
        self.interval_s = interval_s
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._bar = None

    def __call__(self, event) -> None:
        total = max(int(event.total), 1)
        if total <= 1:
            return
        if self._bar is None:
            self._bar = self._open(total)
        step = min(max(int(event.step), 0), total)
        losses = " ".join(f"{k} {v:.3g}" for k, v in list(event.losses.items())[:3])
        postfix = " ".join(p for p in (losses, f"({event.message})" if event.message else "") if p)
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.update(step - self._bar.n)

    def _open(self, total: int):
        from tqdm import tqdm

        if self.tty:
            return tqdm(
                total=total,
                desc=f"  {self.label}",
                file=self.stream,
                unit="step",
                mininterval=self.interval_s,
                dynamic_ncols=True,
                leave=False,
            )
        return tqdm(
            total=total,
            desc=f"  {self.label}",
            file=_LineStream(self.stream),
            unit="step",
            mininterval=0.0,
            miniters=max(total // 10, 1),
            bar_format="{percentage:3.0f}%{desc}: step {n}/{total}{postfix} {elapsed}",
            leave=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _LineStream:
    """A file for tqdm that turns each in-place redraw into one line (for logs and pipes)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line and line != self._last:  # tqdm redraws the final state on close
            self.stream.write(line + "\n")
            self._last = line

    def flush(self) -> None:
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
