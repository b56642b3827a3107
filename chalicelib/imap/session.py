"""The IMAP adapter: the only module that talks to imapclient.

It opens a connection the way the account asks (implicit TLS, or plain + STARTTLS),
through the outbound address policy, logs in, and reports every failure as a
:class:`~chalicelib.errors.MailServerError` with a stable code. Capabilities are read
once per session and exposed as a frozenset of upper-case strings.

Connection pinning: imapclient connects by host name. We subclass its imaplib
transports so the TCP connection goes to the address :mod:`netguard` checked, while TLS
still verifies the certificate against the *name* the user gave (SNI + hostname check).

Cleartext: with ``secure: false`` the session upgrades with STARTTLS whenever the server
offers it; when it does not, it refuses to send the password unless the account set
``tls.allowPlaintextAuth`` (there is no other way to a password in the clear).

Errors quote what the server said only when it spoke IMAP: host and port are the caller's
choice, and the banner of another service on that port is not ours to reveal.
"""

from __future__ import annotations

import contextlib
import imaplib
import io
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imapclient import SocketTimeout, _quote

from chalicelib.errors import MailServerError
from chalicelib.imap.errors import refused_greeting, server_words
from chalicelib.imap.limits import BoundedReads, exceeded
from chalicelib.security.netguard import ResolvedAddress
from chalicelib.security.transport import (
    MailServer,
    build_tls_context,
    classify_connection_error,
    connect_checked,
    resolve_mail_host,
)
from chalicelib.settings import get_settings

PROTOCOL = "imap"
# imaplib reads through ``sock.makefile('rb')``: an 8 KB buffer per connection, held for
# the connection's life. The watcher keeps thousands of connections idle; 1 KB holds any
# IDLE push, a longer line takes a few more reads, and literals bigger than the buffer
# are read straight into their result anyway (measured: 7 KB less per connection).
READ_BUFFER_BYTES = 1024
# Connections to one server share one capability list; keep one copy of each (three
# copies per connection otherwise, ~8 KB). Bounded: distinct servers are few.
SHARED_CAPABILITIES_MAX = 1024
_shared_capabilities: dict[object, object] = {}


class _PinnedIMAP4(BoundedReads, imaplib.IMAP4):
    """Plain IMAP transport connecting only to pre-checked addresses, reading within
    :mod:`~chalicelib.imap.limits` (a server chosen by the caller cannot flood our memory)."""

    def __init__(self, host: str, port: int, addresses: list[ResolvedAddress], timeout: float) -> None:
        self._addresses = addresses
        self._connect_timeout = timeout
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return connect_checked(self._addresses, self.port, self._connect_timeout)

    @property
    def file(self) -> io.BufferedReader[io.RawIOBase]:
        return self._reader

    # typeshed declares imaplib's ``file`` as any text or binary IO; imaplib itself only ever
    # assigns ``sock.makefile('rb')``, a BufferedReader.
    @file.setter  # type: ignore[override]
    def file(self, reader: io.BufferedReader) -> None:
        # imaplib assigns a fresh ``makefile('rb')`` after connecting and after STARTTLS,
        # before reading from it: nothing is buffered yet, so the socket moves to a smaller reader.
        self._reader = io.BufferedReader(reader.detach(), READ_BUFFER_BYTES)

    def _log(self, line: str) -> None:
        """imaplib keeps the last ten lines per connection for ``print_log`` (when ``__debug__``),
        which nothing here calls: ~1 KB per connection kept for nothing."""


class _PinnedIMAP4TLS(_PinnedIMAP4):
    """Implicit-TLS transport: TLS verifies the user's host name, not the address."""

    def __init__(self, host: str, port: int, addresses: list[ResolvedAddress], timeout: float,
                 ssl_context: ssl.SSLContext) -> None:
        self.ssl_context = ssl_context
        super().__init__(host, port, addresses, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = super()._create_socket(timeout)
        try:
            return self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class _PinnedIMAPClient(IMAPClient):
    def __init__(self, server: MailServer, addresses: list[ResolvedAddress], ssl_context: ssl.SSLContext,
                 connect_timeout: float, command_timeout: float) -> None:
        self._pinned_addresses = addresses
        super().__init__(server.host, port=server.port, ssl=server.secure, ssl_context=ssl_context,
                         timeout=SocketTimeout(connect=connect_timeout, read=command_timeout))
        # imapclient turns imaplib's debug output to 5 and routes it to a DEBUG logger, so
        # imaplib formats the repr() of every response, literals included, whether or not
        # anything logs it: a FETCH of an 8 MiB body allocated ~19 MB more just for that.
        self._imap.debug = 0

    def _create_IMAP4(self) -> imaplib.IMAP4:  # noqa: N802 - imapclient's hook name
        connect_timeout = self._timeout.connect
        if self.ssl:
            return _PinnedIMAP4TLS(self.host, self.port, self._pinned_addresses, connect_timeout, self.ssl_context)
        return _PinnedIMAP4(self.host, self.port, self._pinned_addresses, connect_timeout)


class ImapSession:
    """A logged-in IMAP connection. Use :func:`open_session` to get one."""

    def __init__(self, client: IMAPClient, capabilities: frozenset[str]) -> None:
        self.client = client
        self.capabilities = capabilities

    def has_capability(self, name: str) -> bool:
        return name.upper() in self.capabilities

    def close(self) -> None:
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - the connection may already be gone; closing must not fail
            _discard(self.client)


def _shared(value: object) -> object:
    found = _shared_capabilities.get(value)
    if found is not None:
        return found
    if len(_shared_capabilities) >= SHARED_CAPABILITIES_MAX:
        return value
    return _shared_capabilities.setdefault(value, value)


def _capabilities(client: IMAPClient) -> frozenset[str]:
    raw = client.capabilities()
    # imapclient and imaplib each keep their own copy on the connection: point them at the
    # shared one. imapclient caches only after login (before, it answers imaplib's list).
    if client._cached_capabilities is not None:
        client._cached_capabilities = _shared(client._cached_capabilities)
    client._imap.capabilities = _shared(client._imap.capabilities)
    # _shared interns any hashable value and hands back an equal one: here, a frozenset of str.
    return _shared(frozenset(c.decode("ascii", "replace").upper() for c in raw))  # type: ignore[return-value]


def connect(server: MailServer, password: str, *, connect_timeout: float | None = None,
            command_timeout: float | None = None) -> ImapSession:
    """Connect, secure and log in; raise MailServerError with a stable code on failure.

    The timeouts default to the settings; callers working under a request budget pass
    smaller ones so that connecting cannot outlive the budget.
    """
    settings = get_settings()
    addresses = resolve_mail_host(server.host, server.port, PROTOCOL)
    ssl_context = build_tls_context(server.tls)
    where = f"{server.host}:{server.port}"
    try:
        client = _PinnedIMAPClient(server, addresses, ssl_context,
                                   connect_timeout if connect_timeout is not None else settings.connect_timeout_seconds,
                                   command_timeout if command_timeout is not None else settings.command_timeout_seconds)
    except imaplib.IMAP4.error as exc:
        if (too_large := exceeded(exc)) is not None:
            raise too_large.mail_server_error() from None
        # imaplib insists on an IMAP greeting ("* OK"); an SMTP, SSH or HTTP server lands here.
        # Host and port are the caller's choice: quote the greeting only if it was IMAP
        # ("* BYE Too many connections"), never another service's banner.
        raise MailServerError(f"{where} did not greet as an IMAP server", code="NoIMAPCapability",
                              protocol=PROTOCOL, server_response=refused_greeting(exc)) from None
    except Exception as exc:  # noqa: BLE001 - every socket/TLS failure is classified below
        raise classify_connection_error(exc, protocol=PROTOCOL, host=server.host, port=server.port) from None
    try:
        capabilities = _capabilities(client)
        if "IMAP4REV1" not in capabilities and "IMAP4REV2" not in capabilities:
            raise MailServerError(f"{where} does not announce IMAP4rev1", code="NoIMAPCapability",
                                  protocol=PROTOCOL, server_response=" ".join(sorted(capabilities)))
        if not server.secure:
            if "STARTTLS" in capabilities:
                client.starttls(ssl_context)
                capabilities = _capabilities(client)
            elif not server.tls.allow_plaintext_auth:
                raise MailServerError(
                    f"{where} offers no STARTTLS; refusing to send the password in cleartext "
                    "(use secure: true, or set tls.allowPlaintextAuth to accept the risk)",
                    code="TLSUnavailable", protocol=PROTOCOL)
        try:
            # imaplib quotes the password but sends the user name bare (an atom): quote it, so
            # "a b" or "{5}" is one string. The account schema refused CR, LF and NUL in both.
            client.login(_quote(server.user), password)
        except LoginError as exc:
            # imapclient reports any failure of LOGIN as a LoginError, a cut-off flood included.
            if (too_large := exceeded(exc)) is not None:
                raise too_large.mail_server_error() from None
            raise MailServerError(f"{where} rejected the credentials", code="AuthenticationFailed",
                                  protocol=PROTOCOL, server_response=server_words(exc)) from None
        capabilities = _capabilities(client)
        return ImapSession(client, capabilities)
    except MailServerError:
        _discard(client)
        raise
    except imaplib.IMAP4.error as exc:
        _discard(client)
        if (too_large := exceeded(exc)) is not None:
            raise too_large.mail_server_error() from None
        raise MailServerError(f"{where} answered unexpectedly", code="ProtocolError", protocol=PROTOCOL,
                              server_response=server_words(exc)) from None
    except Exception as exc:  # noqa: BLE001
        _discard(client)
        raise classify_connection_error(exc, protocol=PROTOCOL, host=server.host, port=server.port) from None


def _discard(client: IMAPClient) -> None:
    # Best effort on a connection that is already failing: the original error matters, not this one.
    with contextlib.suppress(Exception):
        client.shutdown()


@contextmanager
def open_session(server: MailServer, password: str) -> Iterator[ImapSession]:
    """A short-lived logged-in session, logged out on exit."""
    session = connect(server, password)
    try:
        yield session
    finally:
        session.close()


def verify_login(server: MailServer, password: str) -> frozenset[str]:
    """Check that we can log in; return the post-login capabilities."""
    with open_session(server, password) as session:
        return session.capabilities
