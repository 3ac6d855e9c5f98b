"""napari-mollifier: epigenetic rate maps from chromatin super-resolution images.

The engine (``napari_mollifier.mollifier``, ``physics``, ``inverse``, ``io``) is a Qt-free
library; only the ``_*.py`` modules talk to napari. Heavy modules (torch) are imported lazily.
"""

# imported outside the try: an interrupt during this import must not turn the except clause
# below into a NameError (Ctrl-C while `python -m napari_mollifier.batch` starts)
from importlib.metadata import PackageNotFoundError, version

try:  # written by setuptools metadata at install time
    __version__ = version("napari-mollifier")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
