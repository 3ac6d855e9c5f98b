"""Faults of the machine, not of an input: an output folder that cannot take more files.

A read-only folder, a permission problem or a full disk fails every file alike, so the run
stops at the first one with a :class:`BatchOutputError` (one line naming the folder and the
cause; exit status ``EXIT_OUTPUT`` = 3) instead of an error row per input.
"""

from __future__ import annotations

import errno
from pathlib import Path

#: errno values that mean "this output folder cannot take more files": stop the whole run
OUTPUT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class BatchOutputError(OSError):
    """The output folder cannot be written (read-only, permission denied, disk full): the run
    stops; outputs finished before are complete. ``strerror`` is the one-line message."""


def is_output_fault(exc: BaseException) -> bool:
    """True for an OSError that no other input would escape (folder read-only or full)."""
    return isinstance(exc, OSError) and exc.errno in OUTPUT_ERRNOS


def output_error(out_dir: str | Path, exc: OSError, what: str = "outputs") -> BatchOutputError:
    """One-line :class:`BatchOutputError` for ``exc`` raised while writing ``what``."""
    if isinstance(exc, BatchOutputError):
        return exc
    cause = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    if exc.errno in _FULL:
        advice = "free some space (or choose another folder with -o) and run again with --resume"
    else:
        advice = "choose a writable folder with -o, or fix its permissions"
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return BatchOutputError(
        exc.errno, f"cannot write {what} to the output folder {out_dir}: {cause}{where}; {advice}"
    )
