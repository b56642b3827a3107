"""A logged-in IMAP session used under a request's time budget.

Every IMAP command the mail API sends goes through :meth:`ImapConnection.run`, which

1. refuses to start a command once the budget is spent (504 ``UpstreamTimeout``),
2. sets the socket timeout to what is left of the budget (capped by the per-command
   timeout), so a server that stops answering fails the request in time,
3. translates failures: ``NO``/``BAD`` become the API errors of :mod:`.errors` and leave
   the connection usable; timeouts, resets and protocol garbage mark it ``broken`` so the
   pool throws it away instead of handing a half-read stream to the next request.

A socket timeout bounds each ``recv``, not a whole command: a server that trickles one
byte every few seconds would stretch a command forever. The :class:`Watchdog` closes that
gap: while a connection is checked out its socket is registered with the deadline, and a
single daemon thread shuts the socket down when the deadline passes, which wakes the
blocked ``recv`` with an error.

    request ──▶ Deadline(25 s) ──▶ run(cmd) ── timeout = min(command timeout, remaining)
                     │
                     └──▶ Watchdog: shutdown(socket) at the deadline (trickling servers)
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from chalicelib.errors import UpstreamTimeoutError
from chalicelib.imap.errors import error_from_response, error_from_transport
from chalicelib.imap.session import ImapSession
from chalicelib.imap.wire import AbortError, CommandError, ProtocolError
from chalicelib.observability import timed_imap_command

T = TypeVar("T")


class Deadline:
    """A point in (monotonic) time by which a request's IMAP work must be done."""

    def __init__(self, budget_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_seconds = budget_seconds
        self._clock = clock
        self.expires_at = clock() + budget_seconds

    def remaining(self) -> float:
        return self.expires_at - self._clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def check(self, what: str) -> float:
        """Seconds left; UpstreamTimeoutError when none are."""
        left = self.remaining()
        if left <= 0:
            raise UpstreamTimeoutError(
                f"the request budget of {self.budget_seconds:g} s was spent before {what}",
                details={"command": what})
        return left


class Watchdog:
    """Shuts down registered sockets whose deadline has passed (one daemon thread)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._sockets: dict[int, socket.socket] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, expires_at: float) -> int:
        with self._lock:
            ticket = next(self._ids)
            self._sockets[ticket] = sock
            heapq.heappush(self._heap, (expires_at, ticket))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="imap-watchdog", daemon=True)
                self._thread.start()
            self._lock.notify()
            return ticket

    def unwatch(self, ticket: int) -> None:
        with self._lock:
            self._sockets.pop(ticket, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._heap:
                    self._lock.wait()
                expires_at, ticket = self._heap[0]
                delay = expires_at - self._clock()
                if delay > 0:
                    self._lock.wait(delay)
                    continue
                heapq.heappop(self._heap)
                sock = self._sockets.pop(ticket, None)
            if sock is not None:
                # Wakes a recv() blocked on a server that trickles data; the connection is
                # broken afterwards, which is what the caller's error handling expects.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


WATCHDOG = Watchdog()


class ImapConnection:
    """An :class:`ImapSession` plus the deadline of the request using it."""

    def __init__(self, session: ImapSession, deadline: Deadline, command_timeout: float,
                 watchdog: Watchdog = WATCHDOG, server_key: str | None = None) -> None:
        self.session = session
        # Which account on which server settings this is: callers key per-server caches on it.
        self.server_key = server_key
        self.capabilities = session.capabilities
        self.deadline = deadline
        self.command_timeout = command_timeout
        self.broken = False
        self._watchdog = watchdog
        self._ticket: int | None = None
        # Budget slack for the watchdog: the socket timeout fires first in the normal case.
        with contextlib.suppress(OSError):
            self._ticket = watchdog.watch(session.socket(), deadline.expires_at + 0.5)

    def release(self) -> None:
        """Stop watching the socket (the connection goes back to the pool or is closed)."""
        if self._ticket is not None:
            self._watchdog.unwatch(self._ticket)
            self._ticket = None

    def run(self, command: str, operation: Callable[[], T], *, mailbox: str | None = None) -> T:
        """Run one IMAP exchange under the budget; translate its failures into API errors."""
        if self.broken:
            raise RuntimeError("the connection is broken and must not be used again")
        left = self.deadline.check(command)
        try:
            self.session.socket().settimeout(max(0.05, min(self.command_timeout, left)))
            with timed_imap_command(command.split(" ", 1)[0].upper()):
                return operation()
        except CommandError as exc:
            if isinstance(exc, AbortError | ProtocolError):
                raise self._broken_by(exc, command) from None
            raise error_from_response(exc, command=command, mailbox=mailbox) from None
        except (OSError, EOFError) as exc:
            # Socket timeouts, resets, TLS errors, and the EOF the watchdog causes.
            raise self._broken_by(exc, command) from None

    def _broken_by(self, exc: BaseException, command: str) -> Exception:
        self.broken = True
        return error_from_transport(exc, command=command, budget_seconds=self.deadline.budget_seconds,
                                    budget_spent=self.deadline.expired())
