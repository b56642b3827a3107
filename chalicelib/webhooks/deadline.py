"""Hard deadlines for one blocking HTTP attempt: a watchdog shuts its sockets down on time.

Socket timeouts bound each ``recv``, not a request: a receiver that sends one byte every
0.4 s never trips a 1 s read timeout (urllib3's ``Timeout(total=...)`` is no help either,
it is only re-applied per call), and would hold a 1 s attempt for as long as it likes.
So an attempt runs inside a :class:`Deadline`::

    with Deadline(seconds) as deadline:        registered with the watchdog
        connection opened -> deadline.watch(sock)     (a dup of its socket)
        connect, TLS, send, status line, headers, body: blocking calls, as usual
    at deadline.at, if still inside:  watchdog: shutdown(SHUT_RDWR) every watched socket
                                      -> the blocked recv/send returns at once (EOF / EPIPE),
                                         the caller sees an I/O error and ``deadline.expired``

One daemon thread serves every deadline of the process (a heap ordered by expiry), so an
attempt costs no thread of its own. ``shutdown`` acts on the connection, not on the file
descriptor, so it is done on a duplicate descriptor that the connection owns: that one
stays valid after TLS wraps (and detaches) the original socket. The duplicate is closed
only through :func:`close_watched`, under the same lock as the shutdown, so the watchdog
never shuts down a descriptor number that was closed and reused meanwhile.

Invariants: a deadline that has been left is never fired; a socket watched after its
deadline has passed is shut down at once.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from types import TracebackType

_lock = threading.Lock()  # guards the heap, every deadline's sockets, and closing watched sockets
_wakeup = threading.Condition(_lock)
_heap: list[tuple[float, int, Deadline]] = []
_order = itertools.count()
_thread: threading.Thread | None = None


class Deadline:
    """The budget of one attempt; use as a context manager around the blocking work."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._active = False
        self._sockets: list[socket.socket] = []

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it already has)."""
        with _lock:
            if self.expired:
                _shutdown(sock)
            elif self._active:
                self._sockets.append(sock)

    def __enter__(self) -> Deadline:
        global _thread
        with _lock:
            self._active = True
            heapq.heappush(_heap, (self.at, next(_order), self))
            if _thread is None or not _thread.is_alive():
                _thread = threading.Thread(target=_watchdog, name="webhook-deadlines", daemon=True)
                _thread.start()
            if _heap[0][2] is self:  # the earliest deadline now: the watchdog must wake sooner
                _wakeup.notify()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        with _lock:
            self._active = False  # the heap entry stays until due, and is then dropped unfired
            self._sockets.clear()


def close_watched(sock: socket.socket) -> None:
    """Close a socket that a deadline may be watching (never while the watchdog shuts it)."""
    with _lock:
        sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed, or the peer is gone: nothing left to interrupt


def _watchdog() -> None:
    with _lock:
        while True:
            now = time.monotonic()
            while _heap and _heap[0][0] <= now:
                _, _, deadline = heapq.heappop(_heap)
                if deadline._active:
                    deadline.expired = True
                    for sock in deadline._sockets:
                        _shutdown(sock)
                    deadline._sockets.clear()
            _wakeup.wait(_heap[0][0] - now if _heap else None)
