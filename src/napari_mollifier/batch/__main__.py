"""``python -m napari_mollifier.batch``: see :mod:`napari_mollifier.batch.cli`."""

import sys

from napari_mollifier.batch.cli import main

if __name__ == "__main__":
    sys.exit(main())
