"""POSTing webhooks: one pooled, keep-alive HTTP client per process, guarded against SSRF.

Owns URL validation (when a URL is saved) and the outbound connection policy (every time
a connection is opened):

    save:    syntax (http/https, a host, no fragment) -> resolve -> netguard policy
    connect: resolve again -> netguard policy -> connect to a *checked* address
             -> TLS with SNI and certificate check for the URL's host name (https)
    request: POST, no redirects followed, no retries inside the client, one time budget for
             the whole attempt (connect + TLS + send + status line + headers + body)

Why resolve twice: a name that was public when saved may point at 169.254.169.254
tomorrow (DNS rebinding). Connections are opened by :class:`_GuardedConnection`, which
connects only to an address that passed :func:`chalicelib.security.netguard.address_refusal`
at that moment; keep-alive reuses such a connection, never a re-resolved one.

Failure modes are values, not exceptions: :func:`post_webhook` returns a :class:`PostResult`
with ``status_code`` (any HTTP answer, including 3xx: a redirect is reported, not
followed) or an ``error_code``: ``HostNotFound``, ``HostNotAllowed``, ``ConnectionRefused``,
``ConnectionTimeout``, ``Timeout`` (the attempt did not complete within the budget,
however slowly the receiver kept sending: see :mod:`chalicelib.webhooks.deadline`),
``TLSError``, ``ConnectError``. Error texts name host and port, never the URL's path or query (which may
carry a token).
"""

from __future__ import annotations

import email.utils
import functools
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from chalicelib.security.netguard import HostNotAllowedError, HostNotFoundError, resolve_allowed
from chalicelib.security.transport import connect_checked
from chalicelib.webhooks.deadline import Deadline, close_watched

USER_AGENT = "imapless-webhooks/1"
MAX_URL_LENGTH = 2048
RESPONSE_EXCERPT_BYTES = 512
MAX_DRAIN_BYTES = 64 * 1024
POOL_CONNECTIONS_PER_HOST = 16
POOL_HOSTS = 64


class WebhookUrlError(ValueError):
    """A webhook URL that may not be used; ``code`` is the stable API error code."""

    def __init__(self, message: str, code: str = "InvalidWebhookUrl") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PostResult:
    status_code: int | None
    duration_ms: float
    error_code: str | None = None
    error: str | None = None
    retry_after_seconds: float | None = None
    response_excerpt: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _PolicyRefusedError(NewConnectionError):
    """The connect-time address check refused the host (carries the API error code)."""

    def __init__(self, conn: HTTPConnection, message: str, code: str) -> None:
        super().__init__(conn, message)
        self.code = code
        self.reason = message


_attempt = threading.local()  # .deadline: the Deadline of the attempt this thread is making


def _watch(sock: socket.socket | None) -> None:
    deadline: Deadline | None = getattr(_attempt, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _GuardedConnection(HTTPConnection):
    """Mixin for urllib3 connections: resolve and check at connect time, connect to that address;
    the attempt's deadline watches the connection (new or reused) while it is used.

    It derives from HTTPConnection so that its ``super()`` calls type-check; in
    ``_GuardedHTTPSConnection`` they still reach HTTPSConnection first (method resolution order)."""

    _watched_sock: socket.socket | None = None  # a dup of the socket, for the deadline's shutdown

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self._watched_sock)  # a reused keep-alive connection
        super().request(*args, **kwargs)

    def close(self) -> None:
        super().close()
        if self._watched_sock is not None:
            close_watched(self._watched_sock)
            self._watched_sock = None

    def _new_conn(self) -> socket.socket:
        try:
            addresses = resolve_allowed(self._dns_host, self.port)  # urllib3 keeps the name to resolve here
        except HostNotFoundError as exc:
            raise _PolicyRefusedError(self, str(exc), "HostNotFound") from None
        except HostNotAllowedError as exc:
            raise _PolicyRefusedError(self, str(exc), "HostNotAllowed") from None
        timeout = self.timeout if isinstance(self.timeout, int | float) else None
        deadline: Deadline | None = getattr(_attempt, "deadline", None)
        if deadline is not None:
            timeout = min(timeout, deadline.remaining()) if timeout is not None else deadline.remaining()
        try:
            sock = connect_checked(addresses, self.port, timeout)
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"connection to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"could not connect to {self.host}:{self.port}: {exc}") from exc
        for level, option, value in self.socket_options or ():
            sock.setsockopt(level, option, value)
        # TLS detaches ``sock`` when it wraps it; the dup stays usable for the deadline's shutdown.
        if self._watched_sock is not None:
            close_watched(self._watched_sock)
        self._watched_sock = sock.dup()
        _watch(self._watched_sock)
        return sock


class _GuardedHTTPConnection(_GuardedConnection, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


@functools.lru_cache(maxsize=1)
def get_pool_manager() -> urllib3.PoolManager:
    """The process-wide pool: keep-alive connections per host, shared by all threads."""
    manager = urllib3.PoolManager(num_pools=POOL_HOSTS, maxsize=POOL_CONNECTIONS_PER_HOST, block=False,
                                  retries=False)
    manager.pool_classes_by_scheme = {"http": _GuardedHTTPConnectionPool, "https": _GuardedHTTPSConnectionPool}
    return manager


def check_url_syntax(url: str) -> str:
    """The URL if it is an absolute http(s) URL we may POST to; WebhookUrlError otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise WebhookUrlError("has no host name")
    if parts.fragment:
        raise WebhookUrlError("must not have a #fragment (it is never sent)")
    if parts.username is not None or parts.password is not None:
        # It would be a credential we show in every GET /v1/settings; requests are signed
        # instead, and a receiver that wants a token too can take it in the path or query.
        raise WebhookUrlError("must not contain user:password@ (requests are signed; put a token in the path "
                              "or query if the receiver needs one)")
    if port == 0:
        raise WebhookUrlError("port 0 is not a port")
    return url


def check_url_allowed(url: str) -> str:
    """Syntax plus the outbound address policy, resolving the host now (used when saving)."""
    check_url_syntax(url)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        resolve_allowed(parts.hostname or "", port)
    except HostNotFoundError as exc:
        raise WebhookUrlError(str(exc), code="HostNotFound") from None
    except HostNotAllowedError as exc:
        raise WebhookUrlError(str(exc), code="HostNotAllowed") from None
    return url


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _failure(code: str, message: str, started: float) -> PostResult:
    return PostResult(status_code=None, duration_ms=(time.monotonic() - started) * 1000, error_code=code,
                      error=message)


def _classify(exc: BaseException, url: str, timeout: float, started: float) -> PostResult:
    where = _where(url)
    if isinstance(exc, _PolicyRefusedError):
        return _failure(exc.code, exc.reason, started)
    if isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError):
        return _failure("ConnectionTimeout", f"no connection to {where} within {timeout:g} s", started)
    if isinstance(exc, NewConnectionError):
        cause = exc.__cause__
        if isinstance(cause, ConnectionRefusedError):
            return _failure("ConnectionRefused", f"connection to {where} was refused", started)
        return _failure("ConnectError", f"could not connect to {where}: {cause or exc}", started)
    if isinstance(exc, ReadTimeoutError):
        return _failure("Timeout", f"{where} did not answer within {timeout:g} s", started)
    if isinstance(exc, SSLError):
        return _failure("TLSError", f"TLS with {where} failed: {exc.__cause__ or exc}", started)
    if isinstance(exc, ProtocolError):
        return _failure("ConnectError", f"{where} closed the connection without an answer", started)
    return _failure("ConnectError", f"request to {where} failed: {type(exc).__name__}", started)


def _overran(url: str, timeout: float, started: float) -> PostResult:
    return _failure("Timeout", f"{_where(url)} did not complete the request within {timeout:g} s "
                               "(connect, send and the whole answer)", started)


def _drain(response: urllib3.BaseHTTPResponse) -> None:
    """Read what is left of a short answer so the connection can be reused; drop long ones."""
    drained = 0
    while chunk := response.read(8192):
        drained += len(chunk)
        if drained > MAX_DRAIN_BYTES:
            response.close()  # not worth downloading; the pool opens a new connection next time
            return


def _exchange(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[urllib3.BaseHTTPResponse,
                                                                                       bytes]:
    """The answer and the start of its body; raises what urllib3 raises before the status line."""
    response = get_pool_manager().request(
        "POST", url, body=body, headers=headers, redirect=False, retries=False,
        timeout=urllib3.Timeout(connect=timeout, read=timeout), preload_content=False)
    excerpt = b""
    try:
        excerpt = response.read(RESPONSE_EXCERPT_BYTES)
        _drain(response)
    except (HTTPError, OSError):
        pass  # urllib3 closed the connection; the status line and headers already arrived
    finally:
        response.release_conn()
    return response, excerpt


def post_webhook(url: str, body: bytes, headers: dict[str, str], timeout: float) -> PostResult:
    """POST ``body`` once, within ``timeout`` seconds in all; report the answer or why there
    was none (never raises for I/O)."""
    started = time.monotonic()
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    with Deadline(timeout) as deadline:
        _attempt.deadline = deadline  # the connection used for this request registers with it
        try:
            response, excerpt = _exchange(url, body, all_headers, timeout)
        except (HTTPError, OSError) as exc:
            return _overran(url, timeout, started) if deadline.expired else _classify(exc, url, timeout, started)
        finally:
            _attempt.deadline = None
    if deadline.expired:
        # The answer was still arriving when the budget ran out: the receiver held this
        # consumer for the whole budget, and a half-read answer is no answer.
        return _overran(url, timeout, started)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return PostResult(status_code=response.status, duration_ms=(time.monotonic() - started) * 1000,
                      retry_after_seconds=retry_after,
                      response_excerpt=excerpt.decode("utf-8", errors="replace") if excerpt else "")
