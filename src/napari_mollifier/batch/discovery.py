"""Which files a batch run processes and the output name planned for each."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .pipeline import strip_known_suffix, supported_suffixes


class BatchUsageError(ValueError):
    """The run cannot start (arguments, config, inputs or outputs); nothing was processed."""


@dataclass
class Job:
    """One input and the output name planned for it."""

    path: Path
    stem: str


# --- run --------------------------------------------------------------------------------------
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
