"""Long-running worker processes: the mailbox watcher and the local webhook dispatcher.

Unlike the Lambda handlers in ``app.py``, these run until told to stop. They all stop the
same way, under the local supervisor (``local/run.py``) as under a container runtime:
SIGTERM (or SIGINT from a terminal) asks for a clean stop, and :func:`wait_for_stop_signal`
is how a worker's main thread waits for it.
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
