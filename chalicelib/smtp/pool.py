"""Authenticated SMTP sessions kept open between messages of a warm process.

A new submission session costs TCP + TLS + EHLO + AUTH: four to six round trips before
MAIL FROM. A warm Lambda (or the local API process) sending again for the same account
reuses the session it already has, at the cost of one RSET round trip that proves the
connection is alive and clears any transaction state.

    checkout ──idle list empty──────────────────────────────▶ connect (session.connect)
        │
        ├─idle longer than max_idle_seconds ──▶ QUIT, try the next one
        ├─RSET answered 250 ──────────────────▶ reuse
        └─RSET failed / timed out ────────────▶ drop, try the next one

    release ──broken (any error during use) / used max times / list full──▶ QUIT or drop
            └─otherwise─────────────────────────────────────────────────────▶ back to the idle list

Invariants:
- A session is used by one caller at a time (checked out under a lock).
- Sessions are keyed by :attr:`SmtpLogin.key`, a fingerprint of everything that identifies
  the login (server settings and the sealed credentials), never the password itself: a
  changed password never reuses a session of the old one, and a warm send needs no
  decryption at all (the password is only read when a new session is opened).
- Anything that goes wrong while a session is checked out marks it broken: it is never
  returned to the pool, whatever state the server is in.
- ``max_idle_seconds = 0`` turns pooling off: every session is closed after its message.

Failure modes: a pooled socket can die silently (NAT gateways forget idle flows after
350 s; servers close idle sessions after RFC 5321's 5 minutes or sooner). The idle limit
(default 60 s) stays well below both, and the RSET probe uses a short timeout so a dead
peer costs seconds, not the full command timeout. Lambda freezes between invocations;
the same checks apply after a thaw.
"""

from __future__ import annotations

import functools
import hashlib
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from chalicelib.security.transport import MailServer
from chalicelib.settings import get_settings
from chalicelib.smtp import session as smtp_session
from chalicelib.token_refusal import login_refreshing_once

MAX_IDLE_PER_SERVER = 2
MAX_MESSAGES_PER_SESSION = 100  # some providers (Exchange Online) cap messages per session
PROBE_TIMEOUT_SECONDS = 5.0

Connector = Callable[[MailServer, str], smtplib.SMTP]


@dataclass(frozen=True)
class SmtpLogin:
    """Where to submit, the key of the sessions that may be reused, and how to get the secret."""

    host: str
    port: int
    key: str
    credentials: Callable[[], tuple[MailServer, str]] = field(repr=False, compare=False)
    # For refreshed OAuth2 access tokens: the credentials again after the server refused the
    # secret ``credentials`` gave (refreshed at once, whatever the token's expiry said).
    refreshed: Callable[[str], tuple[MailServer, str]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def direct(cls, server: MailServer, password: str) -> SmtpLogin:
        """A login from a known password (tests, scripts): keyed by a digest of all of it."""
        material = f"{server!r}\0{password}".encode()
        return cls(server.host, server.port, hashlib.sha256(material).hexdigest(), lambda: (server, password))


@dataclass
class PooledSession:
    """A checked-out session. Set ``broken`` when it must not be reused."""

    client: smtplib.SMTP
    reused: bool = False
    uses: int = 0
    broken: bool = False
    idle_since: float = field(default=0.0, repr=False)


class SmtpPool:
    def __init__(self, *, max_idle_seconds: float, connect: Connector = smtp_session.connect,
                 max_idle_per_server: int = MAX_IDLE_PER_SERVER,
                 max_messages_per_session: int = MAX_MESSAGES_PER_SESSION,
                 probe_timeout: float = PROBE_TIMEOUT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_idle_seconds = max_idle_seconds
        self._connect = connect
        self._max_idle_per_server = max_idle_per_server
        self._max_messages = max_messages_per_session
        self._probe_timeout = probe_timeout
        self._clock = clock
        self._idle: dict[str, list[PooledSession]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def session(self, login: SmtpLogin, *, fresh: bool = False) -> Iterator[PooledSession]:
        """A live authenticated session; ``fresh`` skips the idle ones (after a failure on one)."""
        key = login.key
        lease = None if fresh else self._checkout(key)
        if lease is None:
            lease = PooledSession(self._open(login))
        try:
            yield lease
        except BaseException:
            lease.broken = True
            raise
        finally:
            lease.uses += 1
            self._release(key, lease)

    def _open(self, login: SmtpLogin) -> smtplib.SMTP:
        refreshed = login.refreshed
        return login_refreshing_once(lambda pair: self._connect(*pair), login.credentials(),
                                     None if refreshed is None else lambda refused: refreshed(refused[1]))

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(sessions) for sessions in self._idle.values())

    def close_all(self) -> None:
        with self._lock:
            sessions = [s for idle in self._idle.values() for s in idle]
            self._idle.clear()
        for lease in sessions:
            smtp_session.close_session(lease.client)

    def _checkout(self, key: str) -> PooledSession | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                lease = idle.pop()  # most recently used first: the others may age out
            if self._clock() - lease.idle_since > self._max_idle_seconds:
                smtp_session.close_session(lease.client)
                continue
            if self._probe(lease.client):
                lease.reused = True
                return lease
            smtp_session.close_session(lease.client, graceful=False)

    def _probe(self, client: smtplib.SMTP) -> bool:
        sock = client.sock
        if sock is None:
            return False
        previous = sock.gettimeout()
        try:
            sock.settimeout(self._probe_timeout)
            code, _ = client.rset()
            sock.settimeout(previous)
        except (smtplib.SMTPException, OSError):
            return False
        return code == 250

    def _release(self, key: str, lease: PooledSession) -> None:
        keep = not lease.broken and self._max_idle_seconds > 0 and lease.uses < self._max_messages
        if keep:
            lease.idle_since = self._clock()
            with self._lock:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self._max_idle_per_server:
                    idle.append(lease)
                    return
        smtp_session.close_session(lease.client, graceful=not lease.broken)


@functools.lru_cache(maxsize=1)
def get_pool() -> SmtpPool:
    """The process-wide pool, configured from the settings on first use."""
    return SmtpPool(max_idle_seconds=get_settings().smtp_pool_idle_seconds)


def reset_pool() -> None:
    """Close every pooled session and forget the pool (tests, settings changes)."""
    if get_pool.cache_info().currsize:
        get_pool().close_all()
    get_pool.cache_clear()
