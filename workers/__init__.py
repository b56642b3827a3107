"""The long-running watcher process: what the watcher container image holds (with chalicelib/).

Unlike the Lambda handlers in ``app.py``, it runs until told to stop, and it stops the
same way under the local supervisor (``local/run.py``) as under a container runtime:
SIGTERM (or SIGINT from a terminal) asks for a clean stop. :func:`wait_for_stop_signal`
blocks a main thread until then; the local dispatcher (:mod:`local.dispatcher`, never in
the image) stops the same way through it.
"""

from __future__ import annotations

import signal
import threading


def wait_for_stop_signal() -> signal.Signals:
    """Block until SIGTERM or SIGINT arrives and return it (main thread only)."""
    received: list[signal.Signals] = []
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum))
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    stop.wait()
    return received[0]
