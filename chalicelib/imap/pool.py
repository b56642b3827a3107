"""Warm IMAP connections per account, bounded in this process and across all processes.

Connect + TLS + LOGIN costs 3-5 round trips and a handshake (50-300 ms to a remote
provider); a warm Lambda container or the local API process keeps logged-in connections
and lends them to requests instead.

    checkout(account, fingerprint)
      ├─ an idle connection of this account+fingerprint?        ── yes ─▶ validate ─▶ use
      │    validate: idle > NOOP_AFTER, or the socket is readable (EOF, BYE) -> NOOP;
      │              lease runs out within the budget -> renew
      ├─ fewer than LIMIT connections of this account here?      ── yes ─▶ lease + connect ─▶ use
      └─ otherwise wait (condition variable) for a checkin, up to LEASE_WAIT, then 429

    checkin(connection): broken -> close + release lease; else idle, LIFO (few stay hot)
    idle longer than the lease lifetime -> closed and its lease released (swept on every
    checkout/checkin and by a daemon timer)

Why a lease per connection and not per request: the cross-process bound
(:mod:`chalicelib.store.connection_leases`) costs a DynamoDB Query + conditional Put to
acquire (measured 4-10 ms against moto by bench/api_latency.py; single-digit ms on
DynamoDB) and a conditional Delete to release (3-4 ms). Per
request that would double the latency of a warm `GET /message`. Per pooled connection it
is paid once per connect and again only when the lease nears its end (renewal when less
than the request budget + margin is left, so a lease never expires under a running
request). The price: a lease is held while a connection sits idle, for at most the lease
lifetime, which is why idle connections are closed when their lease would expire.

Caveat (Lambda): a container frozen between invocations keeps its sockets open without
running code. Its leases expire after ``IMAPLESS_IMAP_LEASE_SECONDS`` and other containers
may then connect, while the server still counts the frozen container's connection until
it is thawed (and closes it on the next checkout) or the server's idle timeout drops it.
Keep the per-account limit well below the provider's cap (default 3 vs Gmail's 15).

Invariants:
- Connections of one account are keyed by a fingerprint of its server settings and
  sealed credentials: after an account update, idle connections with the old fingerprint
  are closed, never lent out.
- A connection that failed at the transport level is never lent again.
- At most ``limit`` connections per account exist in this process (in use + idle +
  connecting).
"""

from __future__ import annotations

import contextlib
import itertools
import select
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from chalicelib.connection_slots import Lease, LeaseUnavailable
from chalicelib.errors import TooManyConnectionsError
from chalicelib.imap.connection import Deadline, ImapConnection
from chalicelib.imap.session import ImapSession
from chalicelib.observability import logger

PROCESS_ID = uuid.uuid4().hex[:12]
# Renew a lease when less than (request budget + this) is left, so it outlives the request.
LEASE_RENEW_MARGIN_SECONDS = 5.0
NOOP_TIMEOUT_SECONDS = 5.0
SWEEP_INTERVAL_SECONDS = 5.0


class LeaseBroker(Protocol):
    def acquire(self, account: str, holder: str, *, limit: int, ttl_seconds: float,
                wait_seconds: float) -> Lease: ...

    def renew(self, lease: Lease, *, ttl_seconds: float) -> Lease | None: ...

    def release(self, lease: Lease) -> None: ...


Opener = Callable[[float], ImapSession]  # argument: seconds the connect may take


@dataclass(frozen=True)
class PoolLimits:
    per_account: int = 3
    lease_seconds: float = 60.0
    noop_after_seconds: float = 30.0
    lease_wait_seconds: float = 3.0
    command_timeout_seconds: float = 20.0


@dataclass(eq=False)
class _Entry:
    account: str
    fingerprint: str
    session: ImapSession | None = None
    lease: Lease | None = None
    last_used: float = 0.0
    in_use: bool = True
    holder: str = field(default="")


def _has_input(session: ImapSession) -> bool:
    """Whether an idle connection has something to read: a BYE, an EOF (the server closed it),
    or an unsolicited update. Costs no round trip; the NOOP that follows finds out which."""
    try:
        sock = session.socket()
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class ConnectionPool:
    """Per-process pool of logged-in IMAP sessions (thread-safe)."""

    def __init__(self, leases: LeaseBroker, limits: PoolLimits, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._leases = leases
        self.limits = limits
        self._clock = clock
        self._wall_clock = wall_clock
        self._cond = threading.Condition()
        self._entries: dict[str, list[_Entry]] = {}
        self._serial = itertools.count(1)
        self._sweeper: threading.Timer | None = None

    # -- public ----------------------------------------------------------------------------

    @contextmanager
    def connection(self, account: str, fingerprint: str, opener: Opener,
                   deadline: Deadline) -> Iterator[ImapConnection]:
        """Lend a connection for the duration of the block; it returns to the pool afterwards."""
        entry = self._checkout(account, fingerprint, opener, deadline)
        assert entry.session is not None
        connection = ImapConnection(entry.session, deadline, self.limits.command_timeout_seconds,
                                    server_key=f"{account}/{fingerprint}")
        try:
            yield connection
        finally:
            connection.release()
            self._checkin(entry, broken=connection.broken)

    def stats(self, account: str) -> tuple[int, int]:
        """(in use, idle) connections of ``account`` in this process."""
        with self._cond:
            entries = self._entries.get(account, [])
            return sum(e.in_use for e in entries), sum(not e.in_use for e in entries)

    def close_all(self) -> None:
        """Close every idle connection and release its lease (shutdown, tests)."""
        with self._cond:
            idle = [e for entries in self._entries.values() for e in entries if not e.in_use]
            for entry in idle:
                self._forget(entry)
        for entry in idle:
            self._close(entry)

    # -- checkout ----------------------------------------------------------------------------

    def _checkout(self, account: str, fingerprint: str, opener: Opener, deadline: Deadline) -> _Entry:
        # Waiting is real time (a condition variable), whatever clock ages the connections.
        wait_until = time.monotonic() + min(self.limits.lease_wait_seconds, max(0.0, deadline.remaining()))
        while True:
            entry, stale = self._take_or_reserve(account, fingerprint, wait_until)
            for old in stale:
                self._close(old)
            if entry.session is None:
                return self._open(entry, opener, deadline, wait_until)
            if self._usable(entry, deadline):
                return entry
            self._checkin(entry, broken=True)

    def _take_or_reserve(self, account: str, fingerprint: str, wait_until: float) -> tuple[_Entry, list[_Entry]]:
        """An idle entry to reuse, or a reserved empty one to connect; waits while at the limit."""
        with self._cond:
            while True:
                stale = self._expired_locked(account, fingerprint)
                entries = self._entries.setdefault(account, [])
                idle = [e for e in entries if not e.in_use and e.fingerprint == fingerprint]
                if idle:
                    entry = max(idle, key=lambda e: e.last_used)  # LIFO: the warmest one
                    entry.in_use = True
                    return entry, stale
                if len(entries) < self.limits.per_account:
                    entry = _Entry(account, fingerprint, holder=f"{PROCESS_ID}/{next(self._serial)}")
                    entries.append(entry)
                    return entry, stale
                left = wait_until - time.monotonic()
                if left <= 0:
                    raise TooManyConnectionsError(
                        f"all {self.limits.per_account} IMAP connections of this account are busy in this process",
                        retry_after=1, details={"limit": self.limits.per_account})
                self._cond.wait(left)

    def _expired_locked(self, account: str, fingerprint: str) -> list[_Entry]:
        """Idle entries to close now: other credentials, or idle past their lease lifetime."""
        now = self._clock()
        stale = [e for e in self._entries.get(account, []) if not e.in_use and (
            e.fingerprint != fingerprint or now - e.last_used > self.limits.lease_seconds)]
        for entry in stale:
            self._forget(entry)
        return stale

    def _usable(self, entry: _Entry, deadline: Deadline) -> bool:
        """Renew the lease if it would run out during this request; NOOP after idling."""
        assert entry.session is not None and entry.lease is not None
        if entry.lease.expires_at - self._wall_clock() < deadline.budget_seconds + LEASE_RENEW_MARGIN_SECONDS:
            renewed = self._leases.renew(entry.lease, ttl_seconds=self.limits.lease_seconds)
            if renewed is None:
                logger.info("connection lease was taken over; reconnecting", extra={"account": entry.account})
                return False
            entry.lease = renewed
        if self._clock() - entry.last_used > self.limits.noop_after_seconds or _has_input(entry.session):
            session = entry.session
            try:
                session.socket().settimeout(min(NOOP_TIMEOUT_SECONDS, max(0.05, deadline.remaining())))
                session.noop()
            except Exception:  # noqa: BLE001 - any failure means: do not reuse, connect afresh
                logger.info("pooled IMAP connection failed its NOOP check", extra={"account": entry.account})
                return False
        return True

    def _open(self, entry: _Entry, opener: Opener, deadline: Deadline, wait_until: float) -> _Entry:
        try:
            try:
                entry.lease = self._leases.acquire(
                    entry.account, entry.holder, limit=self.limits.per_account,
                    ttl_seconds=self.limits.lease_seconds, wait_seconds=max(0.0, wait_until - time.monotonic()))
            except LeaseUnavailable as exc:
                raise TooManyConnectionsError(
                    f"all {exc.limit} IMAP connections the API may open for this account are in use",
                    retry_after=exc.retry_after, details={"limit": exc.limit}) from None
            entry.session = opener(max(0.05, deadline.check("connect")))
        except BaseException:
            self._checkin(entry, broken=True)
            raise
        return entry

    # -- checkin -----------------------------------------------------------------------------

    def _checkin(self, entry: _Entry, *, broken: bool) -> None:
        with self._cond:
            if broken or entry.session is None:
                self._forget(entry)
            else:
                entry.in_use = False
                entry.last_used = self._clock()
            stale = [e for entries in self._entries.values() for e in list(entries)
                     if not e.in_use and self._clock() - e.last_used > self.limits.lease_seconds]
            for old in stale:
                self._forget(old)
            self._cond.notify_all()
            self._schedule_sweep_locked()
        if broken or entry.session is None:
            self._close(entry)
        for old in stale:
            self._close(old)

    def _forget(self, entry: _Entry) -> None:
        entries = self._entries.get(entry.account, [])
        if entry in entries:
            entries.remove(entry)
        if not entries:
            self._entries.pop(entry.account, None)

    def _close(self, entry: _Entry) -> None:
        if entry.session is not None:
            with contextlib.suppress(Exception):
                entry.session.socket().settimeout(2.0)
            entry.session.close()
            entry.session = None
        if entry.lease is not None:
            try:
                self._leases.release(entry.lease)
            except Exception:  # noqa: BLE001 - the lease expires by itself; never fail a request over it
                logger.warning("could not release a connection lease", extra={"account": entry.account})
            entry.lease = None

    def _schedule_sweep_locked(self) -> None:
        """Close idle connections when their lease lapses even if no request comes (live processes)."""
        has_idle = any(not e.in_use for entries in self._entries.values() for e in entries)
        if has_idle and self._sweeper is None:
            self._sweeper = threading.Timer(SWEEP_INTERVAL_SECONDS, self._sweep)
            self._sweeper.daemon = True
            self._sweeper.start()

    def _sweep(self) -> None:
        with self._cond:
            self._sweeper = None
            now = self._clock()
            stale = [e for entries in self._entries.values() for e in list(entries)
                     if not e.in_use and now - e.last_used > self.limits.lease_seconds]
            for entry in stale:
                self._forget(entry)
            self._schedule_sweep_locked()
        for entry in stale:
            self._close(entry)
