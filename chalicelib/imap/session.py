"""The IMAP session: the one type the mail API's pool and the watcher both talk through.

It opens a connection the way the account asks (implicit TLS, or plain + STARTTLS),
through the outbound address policy, logs in, and reports every failure as a
:class:`~chalicelib.errors.MailServerError` with a stable code. Capabilities are read
once per session into a shared :class:`~chalicelib.imap.capabilities.Capabilities`.

:class:`ImapSession` offers typed verbs (list, status, select, fetch, search, store,
move/copy, append, expunge, ...) that turn imapclient's bytes-keyed answers into values
at this boundary, and the primitives for commands we read ourselves (a tag, a line, a
response; used by :mod:`.watch` for QRESYNC, VANISHED, NOTIFY and IDLE). Only this module
and :mod:`.wire` import imapclient; only :mod:`.wire` touches its internals.

Connection pinning: imapclient connects by host name. We subclass its imaplib
transports so the TCP connection goes to the address :mod:`netguard` checked, while TLS
still verifies the certificate against the *name* the user gave (SNI + hostname check).

Cleartext: with ``secure: false`` the session upgrades with STARTTLS whenever the server
offers it; when it does not, it refuses to send the password unless the account set
``tls.allowPlaintextAuth`` (there is no other way to a password in the clear). The same
holds for an access token: ``server.login == "oauth2"`` logs in with AUTHENTICATE XOAUTH2 (or
OAUTHBEARER) instead of LOGIN (:mod:`chalicelib.security.bearer`).

Errors quote what the server said only when it spoke IMAP: host and port are the caller's
choice, and the banner of another service on that port is not ours to reveal. NO/BAD to a
verb raise :data:`~chalicelib.imap.wire.CommandError` (the caller, :mod:`.connection`,
maps them); a dead connection raises ``OSError``/:data:`~chalicelib.imap.wire.AbortError`.
"""

from __future__ import annotations

import contextlib
import imaplib
import io
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imapclient import SocketTimeout

from chalicelib.errors import MailServerError
from chalicelib.imap import wire
from chalicelib.imap.capabilities import Capabilities, shared_capabilities
from chalicelib.imap.errors import (
    MAILBOX_NOT_CONNECTED,
    is_not_connected,
    login_refusal_code,
    refused_greeting,
    server_text,
    server_words,
)
from chalicelib.imap.flags import canonical, message_flags, text
from chalicelib.imap.folders import ListEntry, MailboxStatus, SelectedMailbox, parse_lists, parse_statuses
from chalicelib.imap.limits import BoundedReads, ResponseTooLargeError, exceeded
from chalicelib.imap.responses import Untagged, parse_untagged
from chalicelib.security.bearer import BearerExchange, choose_mechanism, encoded_length
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
# Only Exchange Online (Microsoft 365, Outlook.com) names this capability after login; it is
# the server that can accept a login it cannot serve (see _check_mailbox_connected).
EXCHANGE_ONLINE_CAPABILITY = "CLIENTACCESSRULES"
# Servers bound a command line: Dovecot drops the connection on an AUTHENTICATE response over
# 8 KB (measured: a base64 login string of 8,064 characters passes, 8,732 is cut off), without
# a word. A drop after a login string past this is reported as the token's size, not a network
# fault: retrying cannot help. (Microsoft's tokens are 1.5-3 KB, Google's under 300 characters.)
IMAP_LOGIN_LINE_MAX_CHARS = 8192
_shared_capabilities: dict[object, object] = {}
StoreAction = Literal["set", "add", "remove"]


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


class ConnectionLostError(Exception):
    """The connection is unusable (EOF, timeout, BYE, garbage); reconnect and resync."""


class CommandFailedError(Exception):
    """The server answered NO/BAD to a command we read ourselves (:meth:`ImapSession.command`)
    (``server_response``: its words, tag removed), or an answer the watcher cannot use."""

    def __init__(self, message: str, *, server_response: str | None = None) -> None:
        super().__init__(message)
        self.server_response = server_response


def _lost(exc: BaseException) -> ConnectionLostError:
    return ConnectionLostError(f"connection lost: {type(exc).__name__}")


class _PinnedIMAPClient(IMAPClient):
    def __init__(self, server: MailServer, addresses: list[ResolvedAddress], ssl_context: ssl.SSLContext,
                 connect_timeout: float, command_timeout: float) -> None:
        self._pinned_addresses = addresses
        super().__init__(server.host, port=server.port, ssl=server.secure, ssl_context=ssl_context,
                         timeout=SocketTimeout(connect=connect_timeout, read=command_timeout))
        wire.silence_debug(self)

    def _create_IMAP4(self) -> imaplib.IMAP4:  # noqa: N802 - imapclient's hook name
        connect_timeout = wire.connect_timeout(self)
        if self.ssl:
            return _PinnedIMAP4TLS(self.host, self.port, self._pinned_addresses, connect_timeout, self.ssl_context)
        return _PinnedIMAP4(self.host, self.port, self._pinned_addresses, connect_timeout)


class ImapSession:
    """A logged-in IMAP connection. Use :func:`connect` or :func:`open_session` to get one.

    Verbs run one command each and return values; they do not catch errors (see the module
    docstring). Mailbox names are ``str`` both ways (modified UTF-7 on the wire).
    """

    __slots__ = ("_client", "capabilities")

    def __init__(self, client: IMAPClient, capabilities: Capabilities) -> None:
        self._client = client
        self.capabilities = capabilities

    # -- the connection ------------------------------------------------------------------------

    @property
    def greeting(self) -> bytes:
        """The server's greeting line (servers without a capability of their own name themselves here)."""
        welcome = getattr(self._client, "welcome", None)
        return welcome if isinstance(welcome, bytes) else b""

    def socket(self) -> socket.socket:
        sock: socket.socket = self._client.socket()
        return sock

    def noop(self) -> None:
        self._client.noop()

    def close(self) -> None:
        """LOGOUT and close; never fails (the connection may already be gone)."""
        try:
            self._client.logout()
        except Exception:  # noqa: BLE001 - the connection may already be gone; closing must not fail
            _discard(self._client)

    def shutdown(self) -> None:
        """Close the socket without a word to the server."""
        _discard(self._client)

    # -- mailboxes -----------------------------------------------------------------------------

    def list_mailboxes(self, *, command: bytes = b"LIST", pattern: str = "*",
                       returns: Sequence[bytes] = ()) -> tuple[list[ListEntry], dict[str, MailboxStatus]]:
        """``LIST "" pattern [RETURN (returns)]`` (or LSUB/XLIST): entries (no roles yet) and,
        under ``RETURN (STATUS ...)``, the statuses the server sent along. ``pattern`` is a
        mailbox name in which ``*`` and ``%`` are wildcards (as imapclient's ``list_folders``)."""
        args = [b'""', wire.encode_mailbox_name(pattern)]
        if returns:
            args += [b"RETURN", b"(" + b" ".join(returns) + b")"]
        wire.pop_untagged(self._client, "STATUS")
        lines = wire.raw_untagged(self._client, command, args)
        statuses = parse_statuses(wire.group_responses(wire.pop_untagged(self._client, "STATUS")))
        return parse_lists(wire.group_responses(lines)), statuses

    def status(self, path: str, items: Sequence[str]) -> MailboxStatus:
        """``STATUS path (items)``, read by the folder model's one STATUS parser."""
        wire.pop_untagged(self._client, "STATUS")  # nothing stale from an earlier answer
        lines = wire.raw_untagged(self._client, b"STATUS",
                                  [wire.encode_mailbox_name(path), b"(" + " ".join(items).encode("ascii") + b")"])
        statuses = parse_statuses(wire.group_responses(lines))
        # Servers echo the name as they store it; with one STATUS asked, the one answer is ours.
        return statuses.get(path) or next(iter(statuses.values()), MailboxStatus())

    def select(self, path: str, *, readonly: bool = True) -> SelectedMailbox:
        answer = self._client.select_folder(path, readonly=readonly)
        return SelectedMailbox(
            path=path, uid_validity=int(answer.get(b"UIDVALIDITY") or 0), exists=int(answer.get(b"EXISTS") or 0),
            uid_next=answer.get(b"UIDNEXT"), highest_modseq=answer.get(b"HIGHESTMODSEQ"),
            read_only=b"READ-WRITE" not in answer,
            permanent_flags=tuple(canonical(flag) for flag in answer.get(b"PERMANENTFLAGS", ())))

    @property
    def selected(self) -> bool:
        return wire.is_selected(self._client)

    def unselect(self) -> None:
        self._client.unselect_folder()

    def close_mailbox(self) -> None:
        """CLOSE: leaves the selected state (and expunges a read-write selection)."""
        self._client.close_folder()

    def create(self, path: str) -> None:
        self._client.create_folder(path)

    def rename(self, path: str, new_path: str) -> None:
        self._client.rename_folder(path, new_path)

    def delete(self, path: str) -> None:
        self._client.delete_folder(path)

    def subscribe(self, path: str) -> None:
        self._client.subscribe_folder(path)

    def unsubscribe(self, path: str) -> None:
        self._client.unsubscribe_folder(path)

    # -- messages ------------------------------------------------------------------------------

    def fetch(self, messages: Sequence[int | str], items: Sequence[str], *,
              by_sequence: bool = False) -> dict[int, dict[bytes, Any]]:
        """``UID FETCH`` (or FETCH by sequence number): parsed items by UID (by sequence number)."""
        client = self._client
        if not by_sequence:
            return dict(client.fetch(list(messages), list(items)))
        client.use_uid = False
        try:
            return dict(client.fetch(list(messages), list(items)))
        finally:
            client.use_uid = True

    def search(self, criteria: Sequence[bytes], *, charset: str | None = None) -> list[int]:
        """``UID SEARCH``: matching UIDs, ascending (8-bit criteria go out as literals)."""
        args = ([b"CHARSET", charset.encode("ascii")] if charset else []) + list(criteria)
        uids: set[int] = set()
        for line in wire.raw_untagged(self._client, b"SEARCH", args, uid=True):
            if isinstance(line, bytes) and line:
                words = text(line).split("(", 1)[0]  # drop a trailing (MODSEQ n)
                uids.update(int(token) for token in words.split() if token.isdigit())
        return sorted(uids)

    def search_count(self, criteria: Sequence[bytes]) -> int:
        """``UID SEARCH RETURN (COUNT)`` (ESEARCH): how many match, in one short answer."""
        lines = wire.raw_untagged(self._client, b"SEARCH", [b"RETURN", b"(COUNT)", *criteria],
                                  response_name=b"ESEARCH", uid=True)
        tokens = [token for line in lines if line for token in wire.parse_response([line])]
        for index, token in enumerate(tokens[:-1]):
            if isinstance(token, bytes) and token.upper() == b"COUNT":
                return int(tokens[index + 1])
        return 0

    def store(self, messages: Sequence[int | str], action: StoreAction, flags: Sequence[str], *,
              silent: bool = False) -> dict[int, tuple[str, ...]]:
        """``UID STORE [+-]FLAGS[.SILENT]``: the resulting flags by UID (none when silent)."""
        client = self._client
        method = {"set": client.set_flags, "add": client.add_flags, "remove": client.remove_flags}[action]
        answer = method(list(messages), list(flags), silent=silent)
        return {uid: message_flags(value) for uid, value in (answer or {}).items()}

    def store_labels(self, messages: Sequence[int | str], action: StoreAction,
                     labels: Sequence[str]) -> dict[int, tuple[str, ...]]:
        """Gmail's ``UID STORE [+-]X-GM-LABELS``: the resulting labels by UID."""
        client = self._client
        method = {"set": client.set_gmail_labels, "add": client.add_gmail_labels,
                  "remove": client.remove_gmail_labels}[action]
        answer = method(list(messages), list(labels))
        return {uid: tuple(text(label) for label in value) for uid, value in (answer or {}).items()}

    def labels(self, messages: Sequence[int]) -> dict[int, tuple[str, ...]]:
        """Gmail labels (``X-GM-LABELS``) by UID."""
        answer = self._client.get_gmail_labels(list(messages))
        return {uid: tuple(text(label) for label in value) for uid, value in answer.items()}

    def transfer(self, uid_sets: Sequence[str], destination: str, *, move: bool) -> list[str]:
        """``UID MOVE`` (or ``UID COPY``) each set; the ``COPYUID`` codes the server sent."""
        client = self._client
        wire.pop_untagged(client, "COPYUID")  # a pooled connection may carry old ones
        for uid_set in uid_sets:
            (client.move if move else client.copy)([uid_set], destination)
        return [text(value) for value in wire.pop_untagged(client, "COPYUID")]

    def expunge(self, uid_set: str | None = None) -> None:
        """``UID EXPUNGE uid_set`` (UIDPLUS) or, without a set, a plain EXPUNGE."""
        if uid_set is None:
            self._client.expunge()
        else:
            self._client.uid_expunge([uid_set])

    def append(self, path: str, raw: bytes, *, flags: Sequence[str] = (),
               internal_date: datetime | None = None) -> list[str]:
        """APPEND; the ``APPENDUID`` codes the server sent (UIDPLUS)."""
        wire.pop_untagged(self._client, "APPENDUID")
        self._client.append(path, raw, flags=list(flags), msg_time=internal_date)
        return [text(value) for value in wire.pop_untagged(self._client, "APPENDUID")]

    # -- commands whose answers we read ourselves (QRESYNC, VANISHED, NOTIFY, IDLE) ---------------
    # These raise ConnectionLostError for a dead connection and CommandFailedError for NO/BAD.

    def command(self, line: bytes, on_untagged: Callable[[Untagged], None] | None = None) -> list[Untagged]:
        """Run ``<tag> line``; its untagged responses, each also passed to ``on_untagged`` as it
        arrives (the watcher keeps unsolicited ones as hints, even when the command then fails)."""
        tag = self.send_command(line)
        collected: list[Untagged] = []
        while True:
            parts = self.read_response()
            head = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
            if head.startswith(tag + b" "):
                status = head[len(tag) + 1:].split(b" ", 1)[0].upper()
                if status != b"OK":
                    raise CommandFailedError(f"{line.split(b' ', 1)[0].decode()} failed: "
                                             f"{head.decode('utf-8', 'replace')[:200]}",
                                             server_response=head[len(tag) + 1:].decode("utf-8", "replace")[:200])
                return collected
            if head.startswith(b"* "):
                response = checked_untagged(parts)
                collected.append(response)
                if on_untagged is not None:
                    on_untagged(response)

    def send_command(self, line: bytes) -> bytes:
        """Send ``<tag> line``; return the tag. The caller reads the answer (:meth:`read_response`)."""
        try:
            return wire.send_tagged(self._client, line)
        except OSError as exc:
            raise _lost(exc) from None

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (``DONE`` ending IDLE)."""
        try:
            wire.send(self._client, data)
        except OSError as exc:
            raise _lost(exc) from None

    def read_response(self) -> list[wire.Part]:
        """One complete response (blocks up to the socket's timeout). More than a cap of
        :mod:`.limits` allows raises MailServerError ``ServerResponseTooLarge`` (connection shut)."""
        try:
            return wire.read_response(self._client)
        except ResponseTooLargeError as exc:
            # The transport has shut the connection; the account's server is not usable.
            raise exc.mail_server_error() from None
        except (OSError, EOFError, wire.AbortError, ValueError) as exc:
            raise _lost(exc) from None

    def buffered_input(self) -> bytes:
        """Octets already read from the socket but not yet consumed (see :func:`wire.buffered_input`)."""
        return wire.buffered_input(self._client)


def checked_untagged(parts: list[wire.Part]) -> Untagged:
    """An untagged response, or ConnectionLostError for garbage and for ``BYE``."""
    try:
        response = parse_untagged(parts)
    except ValueError as exc:
        raise ConnectionLostError(str(exc)) from None
    if response.kind == "BYE":
        raise ConnectionLostError("server said BYE: " + response.text.decode("utf-8", "replace")[:200])
    return response


def _shared(value: object) -> object:
    found = _shared_capabilities.get(value)
    if found is not None:
        return found
    if len(_shared_capabilities) >= SHARED_CAPABILITIES_MAX:
        return value
    return _shared_capabilities.setdefault(value, value)


def _capabilities(client: IMAPClient) -> Capabilities:
    raw = client.capabilities()
    # imapclient and imaplib each keep their own copy on the connection: point them at the shared one.
    wire.share_capabilities(client, _shared)
    return shared_capabilities(Capabilities.parse(raw))


def connect(server: MailServer, secret: str, *, connect_timeout: float | None = None,
            command_timeout: float | None = None) -> ImapSession:
    """Connect, secure and log in with ``secret`` (the password, or the access token when
    ``server.login`` is ``oauth2``); raise MailServerError with a stable code on failure.

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
        if not capabilities.imap4rev1:
            raise MailServerError(f"{where} does not announce IMAP4rev1", code="NoIMAPCapability",
                                  protocol=PROTOCOL, server_response=" ".join(capabilities))
        if not server.secure:
            if capabilities.starttls:
                client.starttls(ssl_context)
                capabilities = _capabilities(client)
            elif not server.tls.allow_plaintext_auth:
                raise MailServerError(
                    f"{where} offers no STARTTLS; refusing to send the password in cleartext "
                    "(use secure: true, or set tls.allowPlaintextAuth to accept the risk)",
                    code="TLSUnavailable", protocol=PROTOCOL)
        _log_in(client, server, secret, capabilities)
        capabilities = _capabilities(client)
        if EXCHANGE_ONLINE_CAPABILITY in capabilities:
            _check_mailbox_connected(client, server)
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


def _log_in(client: IMAPClient, server: MailServer, secret: str, capabilities: Capabilities) -> None:
    """LOGIN with a password, or AUTHENTICATE XOAUTH2/OAUTHBEARER with an access token.

    ``NO [UNAVAILABLE]`` is a temporary failure (RFC 5530): Dovecot answers it when its
    OAuth2 introspection endpoint is down, and it never means the credentials are wrong.
    """
    exchange: BearerExchange | None = None
    try:
        if server.login == "oauth2":
            offered = [name[len("AUTH="):] for name in capabilities.names if name.startswith("AUTH=")]
            exchange = BearerExchange(choose_mechanism(offered), server.user, secret)
            # imaplib sends the login string after the server's "+" (no SASL-IR), so a long
            # Microsoft token never makes an over-long command line.
            wire.authenticate(client, exchange.mechanism, exchange)
        else:
            # imaplib quotes the password but sends the user name bare (an atom): quote it, so
            # "a b" or "{5}" is one string. The account schema refused CR, LF and NUL in both.
            client.login(wire.quote(server.user), secret)
    except LoginError as exc:
        # imapclient reports any failure of LOGIN as a LoginError, a cut-off flood included.
        if (too_large := exceeded(exc)) is not None:
            raise too_large.mail_server_error() from None
        raise _refused(server, server_words(exc), None) from None
    except (imaplib.IMAP4.abort, OSError):
        if exchange is not None and encoded_length(exchange.mechanism, server.user, secret) > IMAP_LOGIN_LINE_MAX_CHARS:
            raise MailServerError(
                f"{server.host}:{server.port} closed the connection on a login string of "
                f"{encoded_length(exchange.mechanism, server.user, secret)} characters: the access token is longer "
                "than this server accepts", code="AccessTokenTooLarge", protocol=PROTOCOL) from None
        raise  # the connection broke: connect() classifies it
    except imaplib.IMAP4.error as exc:
        # AUTHENTICATE answered NO/BAD: imaplib passes the server's text as it came.
        if (too_large := exceeded(exc)) is not None:
            raise too_large.mail_server_error() from None
        assert exchange is not None, "only AUTHENTICATE raises a bare imaplib error here"
        raise _refused(server, server_text(exc)[1] or None, exchange.challenge) from None


def _check_mailbox_connected(client: IMAPClient, server: MailServer) -> None:
    """Exchange Online answers AUTHENTICATE with OK and then ``BAD User is authenticated but not
    connected.`` to every mailbox command (IMAP off for the mailbox, or a passing backend fault;
    CAPABILITY still works). One NAMESPACE finds out while this is still the login, so the watcher
    records a temporary connectError rather than failing its first sync, and the API answers 503."""
    try:
        client.namespace()
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as exc:
        words = server_text(exc)[1] or None
        if not is_not_connected(words):
            raise
        raise MailServerError(f"{server.host}:{server.port} accepted the login but cannot open the mailbox "
                              "(IMAP may be turned off for it); retry later", code=MAILBOX_NOT_CONNECTED,
                              protocol=PROTOCOL, server_response=words, status=503) from None


def _refused(server: MailServer, words: str | None, challenge: str | None) -> MailServerError:
    """The error for a refused login: ``AuthenticationFailed``, or temporary (:func:`login_refusal_code`)."""
    where = f"{server.host}:{server.port}"
    code = login_refusal_code(words)
    if code != "AuthenticationFailed":
        # The watcher must retry these, never mark the account authenticationError.
        message = ("is limiting connections to this account" if code == "LoginThrottled"
                   else "cannot check credentials right now")
        return MailServerError(f"{where} {message}, retry later", code=code, protocol=PROTOCOL,
                               server_response=words, status=503)
    error = MailServerError(f"{where} rejected the credentials", code="AuthenticationFailed",
                           protocol=PROTOCOL, server_response=words)
    if challenge is not None:
        # The server's reason as Gmail and Dovecot send it: {"status":"401","schemes":"bearer","scope":"mail"}.
        error.details["authChallenge"] = challenge
    return error


def _discard(client: IMAPClient) -> None:
    # Best effort on a connection that is already failing: the original error matters, not this one.
    with contextlib.suppress(Exception):
        client.shutdown()


@contextmanager
def open_session(server: MailServer, secret: str) -> Iterator[ImapSession]:
    """A short-lived logged-in session, logged out on exit."""
    session = connect(server, secret)
    try:
        yield session
    finally:
        session.close()


def verify_login(server: MailServer, secret: str) -> frozenset[str]:
    """Check that we can log in; return the post-login capabilities."""
    with open_session(server, secret) as session:
        return session.capabilities.names
