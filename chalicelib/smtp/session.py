"""The SMTP adapter: opening authenticated submission sessions with ``smtplib``.

Same contract as the IMAP adapter: connections go only to addresses the outbound policy
checked, TLS verifies the user's host name, ``secure: false`` upgrades with STARTTLS
whenever the server offers it and refuses to authenticate in cleartext otherwise (unless
``tls.allowPlaintextAuth``; the same for an access token, sent with AUTH XOAUTH2 or
OAUTHBEARER when ``server.login`` is ``oauth2``), and every failure is a MailServerError with a stable code.
A 4xx greeting (``421 too many connections``) is ``ServiceNotAvailable``: a server that
will take mail later, which the outbox retries. What the server said is quoted in errors
only when it was an SMTP reply (never the banner of another service on that port).

Sessions are opened here and reused by :mod:`chalicelib.smtp.pool`; a message
transaction on a session is :mod:`chalicelib.smtp.delivery`.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from chalicelib.errors import MailServerError
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

PROTOCOL = "smtp"
SMTP_REPLY_CODES = range(200, 600)
# The longest base64 login string sent on the AUTH line itself (see _log_in).
SMTP_INITIAL_RESPONSE_MAX_CHARS = 1000
# Gmail: "454 4.7.0 Too many login attempts, please try again later." (temporary, like any 4xx,
# but its own code: the cure is fewer logins, not waiting for a fault to pass).
_THROTTLED = re.compile(r"too many login attempts", re.IGNORECASE)
# Microsoft 365: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for
# the Tenant" (or the Mailbox, or "user is locked by your organization's security defaults policy").
# An admin setting, not the token: a new token fails the same way until the tenant allows SMTP AUTH.
_SMTP_AUTH_DISABLED = re.compile(r"\b5\.7\.139\b")
# A login string past the server's bound even after the 334 prompt: Postfix answers "500 5.5.6
# SASL response limit exceeded" (measured: a 9,000-character token passes, 12,000 does not),
# Dovecot submission "500 Line too long". The token's size, not its validity: no retry helps.
_TOO_LONG = re.compile(r"SASL response limit exceeded|line too long", re.IGNORECASE)


class _PinnedSocketMixin:
    _pinned_addresses: list[ResolvedAddress]

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # smtplib only records the host name when it is passed to __init__ (which would
        # connect at once); STARTTLS and SMTP_SSL verify the certificate against _host.
        self._host = host
        # connect_checked turns Nagle off: see there why reused sessions need it.
        return connect_checked(self._pinned_addresses, port, timeout)


class _PinnedSMTP(_PinnedSocketMixin, smtplib.SMTP):
    def __init__(self, addresses: list[ResolvedAddress], timeout: float) -> None:
        self._pinned_addresses = addresses
        super().__init__(timeout=timeout)


class _PinnedSMTPSSL(_PinnedSocketMixin, smtplib.SMTP_SSL):
    def __init__(self, addresses: list[ResolvedAddress], timeout: float, context: ssl.SSLContext) -> None:
        self._pinned_addresses = addresses
        super().__init__(timeout=timeout, context=context)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)
        try:
            return self.context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise


def _reply_text(code: int, message: bytes | str) -> str | None:
    """The server's reply as the caller may see it, or None when it was not an SMTP reply.

    smtplib reads any line whose first three characters are not a number as code -1 (an
    IMAP greeting, ``SSH-2.0-OpenSSH_9.2``, ``HTTP/1.1 400 Bad Request``). Host and port
    are the caller's choice, so another service's banner is never quoted back: only
    replies with an SMTP code (2yz-5yz, RFC 5321 section 4.2) are.
    """
    if not SMTP_REPLY_CODES.start <= code < SMTP_REPLY_CODES.stop:
        return None
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {text}".strip()


def connect(server: MailServer, secret: str) -> smtplib.SMTP:
    """Connect, secure and authenticate with ``secret`` (the password, or the access token when
    ``server.login`` is ``oauth2``); raise MailServerError with a stable code on failure."""
    settings = get_settings()
    addresses = resolve_mail_host(server.host, server.port, PROTOCOL)
    context = build_tls_context(server.tls)
    where = f"{server.host}:{server.port}"
    client: smtplib.SMTP
    if server.secure:
        client = _PinnedSMTPSSL(addresses, settings.connect_timeout_seconds, context)
    else:
        client = _PinnedSMTP(addresses, settings.connect_timeout_seconds)
    try:
        try:
            code, banner = client.connect(server.host, server.port)
        except smtplib.SMTPServerDisconnected:
            raise MailServerError(f"{where} closed the connection before greeting", code="NoSMTPGreeting",
                                  protocol=PROTOCOL) from None
        if 400 <= code < 500:
            # "421 Too many connections" and friends: an SMTP server, busy for now.
            raise MailServerError(f"{where} is temporarily not accepting connections", code="ServiceNotAvailable",
                                  protocol=PROTOCOL, server_response=_reply_text(code, banner))
        if code != 220:
            # smtplib reports a greeting that is not "220 ..." (an IMAP or HTTP server) as code -1.
            raise MailServerError(f"{where} did not greet as an SMTP server", code="NoSMTPGreeting",
                                  protocol=PROTOCOL, server_response=_reply_text(code, banner))
        assert client.sock is not None, "connect() returned, so the socket is open"
        client.sock.settimeout(settings.command_timeout_seconds)
        client.ehlo()
        if not server.secure:
            if client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            elif not server.tls.allow_plaintext_auth:
                raise MailServerError(
                    f"{where} offers no STARTTLS; refusing to send the password in cleartext "
                    "(use secure: true, or set tls.allowPlaintextAuth to accept the risk)",
                    code="TLSUnavailable", protocol=PROTOCOL)
        if not client.has_extn("auth"):
            raise MailServerError(f"{where} offers no SMTP authentication", code="NoAuthCapability",
                                  protocol=PROTOCOL)
        _log_in(client, server, secret)
        return client
    except MailServerError:
        _discard(client)
        raise
    except smtplib.SMTPResponseException as exc:
        _discard(client)
        raise MailServerError(f"{where} answered unexpectedly", code="ProtocolError", protocol=PROTOCOL,
                              server_response=_reply_text(exc.smtp_code, exc.smtp_error)) from None
    except Exception as exc:  # noqa: BLE001 - every socket/TLS failure is classified
        _discard(client)
        raise classify_connection_error(exc, protocol=PROTOCOL, host=server.host, port=server.port) from None


def _log_in(client: smtplib.SMTP, server: MailServer, secret: str) -> None:
    """AUTH PLAIN/LOGIN with a password, AUTH XOAUTH2/OAUTHBEARER with an access token.

    A 4xx answer (``454 4.7.0 Temporary authentication failure``: Postfix when Dovecot's
    auth, or its token introspection, is down) is temporary, never wrong credentials;
    Gmail's ``454 4.7.0 Too many login attempts`` is the temporary ``LoginThrottled``.
    Microsoft's ``535 5.7.139`` (SMTP AUTH turned off for the tenant or mailbox) is the
    permanent ``SMTPAuthDisabled``: no token will do until an administrator allows it.
    """
    where = f"{server.host}:{server.port}"
    exchange: BearerExchange | None = None
    try:
        if server.login == "oauth2":
            exchange = BearerExchange(choose_mechanism(client.esmtp_features.get("auth", "").split()),
                                      server.user, secret)
            # Postfix ("535 Invalid base64 data") and Dovecot submission ("500 Line too long")
            # refuse an initial response of ~2,000 characters; Microsoft tokens are often longer.
            # Past the limit, the login string goes after the 334 prompt instead.
            short = encoded_length(exchange.mechanism, server.user, secret) <= SMTP_INITIAL_RESPONSE_MAX_CHARS
            client.auth(exchange.mechanism, exchange, initial_response_ok=short)
        else:
            client.login(server.user, secret)
    except smtplib.SMTPAuthenticationError as exc:
        reply = _reply_text(exc.smtp_code, exc.smtp_error)
        if _THROTTLED.search(reply or ""):
            raise MailServerError(f"{where} is limiting logins to this account, retry later", code="LoginThrottled",
                                  protocol=PROTOCOL, server_response=reply, status=503) from None
        if 400 <= exc.smtp_code < 500:
            raise MailServerError(f"{where} cannot check credentials right now, retry later",
                                  code="AuthenticationUnavailable", protocol=PROTOCOL, server_response=reply,
                                  status=503) from None
        if exchange is not None and _TOO_LONG.search(reply or ""):
            raise MailServerError(f"{where} refused a login string of "
                                  f"{encoded_length(exchange.mechanism, server.user, secret)} characters: the access "
                                  "token is longer than this server accepts", code="AccessTokenTooLarge",
                                  protocol=PROTOCOL, server_response=reply) from None
        if _SMTP_AUTH_DISABLED.search(reply or ""):
            raise MailServerError(f"{where} does not allow SMTP AUTH for this mailbox or organization; an "
                                  "administrator must turn it on", code="SMTPAuthDisabled", protocol=PROTOCOL,
                                  server_response=reply) from None
        error = MailServerError(f"{where} rejected the credentials", code="AuthenticationFailed",
                                protocol=PROTOCOL, server_response=reply)
        if exchange is not None and exchange.challenge is not None:
            # Gmail's and Dovecot's reason: {"status":"401","schemes":"bearer","scope":"mail"}.
            error.details["authChallenge"] = exchange.challenge
        raise error from None


def _discard(client: smtplib.SMTP) -> None:
    # Best effort on a connection that is already failing: the original error matters, not this one.
    with contextlib.suppress(Exception):
        client.close()


def close_session(client: smtplib.SMTP, *, graceful: bool = True) -> None:
    """End a session with QUIT (``graceful``) or by dropping the connection; never raises."""
    if graceful:
        with contextlib.suppress(Exception):  # the server may already have closed
            client.quit()
            return
    _discard(client)


@contextmanager
def open_session(server: MailServer, secret: str) -> Iterator[smtplib.SMTP]:
    client = connect(server, secret)
    try:
        yield client
    finally:
        close_session(client)


def verify_login(server: MailServer, secret: str) -> None:
    """Check that we can authenticate for submission."""
    with open_session(server, secret):
        pass
