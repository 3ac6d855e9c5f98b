"""The one exception type raised by every reader and writer of :mod:`napari_mollifier.io`."""

from __future__ import annotations


class FormatError(ValueError):
    """A file is not in the expected format, or lacks what is needed to read it.

    Messages name the file, what was expected and what was found, e.g.
    ``"cells.csv: no x column: found columns id, frame, xpos"``.
    """
