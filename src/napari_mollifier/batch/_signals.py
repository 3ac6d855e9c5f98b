"""Signals of the batch command line: SIGINT (Ctrl-C) and SIGTERM at any moment.

Both raise :class:`Interrupted` (a ``KeyboardInterrupt``), so every ``except KeyboardInterrupt``
and ``finally`` of the engine cleans up (temporary files removed, summary written with
"not run" rows). The exit status is 128 + the signal number, the shell convention:
:data:`EXIT_INTERRUPTED` (130) for SIGINT and :data:`EXIT_TERMINATED` (143) for SIGTERM.

The handler also records the signal, so that an interrupt that surfaces as another exception
(a library import cut short can raise NameError or ImportError) still ends with the signal's
exit status. This module imports nothing heavy: ``__main__`` installs it before anything else.
"""

from __future__ import annotations

import signal
import sys
import threading

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: The one line printed when a run is interrupted.
MESSAGE = "interrupted: finished outputs are complete; run again with --resume to do the rest"

_received: list[int] = []
_absorbing = False  # set once the run is complete: the handler then records, never raises


class Interrupted(KeyboardInterrupt):
    """Raised by the handler; ``signum`` is the signal received."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def exit_status(signum: int | None) -> int:
    """143 for SIGTERM, 130 for SIGINT (and for a plain KeyboardInterrupt)."""
    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


def status_of(exc: BaseException) -> int:
    """Exit status for an interrupt exception (``Interrupted`` knows its signal)."""
    return exit_status(getattr(exc, "signum", None) or received())


def received() -> int | None:
    """The last signal the handler saw in this process, or None."""
    return _received[-1] if _received else None


def _raise(signum, frame):
    _received.append(signum)
    if not _absorbing:
        raise Interrupted(signum)


def install() -> dict | None:
    """Install the handler for SIGINT and SIGTERM; returns the previous handlers (None off the
    main thread, where signals cannot be handled)."""
    global _absorbing
    if threading.current_thread() is not threading.main_thread():
        return None
    _absorbing = False
    return {s: signal.signal(s, _raise) for s in SIGNALS}


def restore(previous: dict | None) -> None:
    for signum, handler in (previous or {}).items():
        signal.signal(signum, handler)


def ignore_from_now() -> None:
    """After the work is done and the summary printed: flush, then ignore both signals while
    Python shuts down (the interpreter restores the default action, death by signal, for a
    handled signal during finalization; an ignored one stays ignored). The exit status is then
    the run's own.

    A signal that lands on the call itself still raises :class:`Interrupted` (the caller
    retries); from this function's first statement on, the handler no longer raises."""
    global _absorbing
    _absorbing = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
