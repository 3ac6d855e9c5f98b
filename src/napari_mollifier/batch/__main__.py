"""``python -m napari_mollifier.batch``: see :mod:`napari_mollifier.batch.cli`.

The signal handlers are installed before the engine is imported, so that SIGINT / SIGTERM at
any moment (imports, start-up, work, after the last file) give the documented exit status
(130 / 143) and one line instead of a traceback; once the summary is printed the run is
complete and a late signal no longer changes the exit status.
"""

import sys

from napari_mollifier.batch import _signals


def _run() -> int:
    _signals.install()
    try:
        from napari_mollifier.batch.cli import main

        status = main()
    except BaseException as exc:  # noqa: BLE001 - an interrupt may surface as anything
        if _signals.received() is None and not isinstance(exc, KeyboardInterrupt):
            raise
        print("\n" + _signals.MESSAGE, file=sys.stderr)
        status = _signals.status_of(exc)
    while True:
        try:
            _signals.ignore_from_now()
            return status
        except KeyboardInterrupt:
            continue  # a signal on the call itself: the run is complete all the same


if __name__ == "__main__":
    sys.exit(_run())
