"""The SMTP adapter: opening authenticated submission sessions with ``smtplib``.

Same contract as the IMAP adapter: connections go only to addresses the outbound policy
checked, TLS verifies the user's host name, ``secure: false`` upgrades with STARTTLS
whenever the server offers it and refuses to authenticate in cleartext otherwise (unless
``tls.allowPlaintextAuth``), and every failure is a MailServerError with a stable code.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from chalicelib.errors import MailServerError
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


class _PinnedSocketMixin:
    _pinned_addresses: list[ResolvedAddress]

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # smtplib only records the host name when it is passed to __init__ (which would
        # connect at once); STARTTLS and SMTP_SSL verify the certificate against _host.
        self._host = host
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


def _reply_text(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {text}".strip()


def connect(server: MailServer, password: str) -> smtplib.SMTP:
    """Connect, secure and authenticate; raise MailServerError with a stable code on failure."""
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
        if code != 220:
            # smtplib reports a greeting that is not "220 ..." (an IMAP or HTTP server) as code -1.
            raise MailServerError(f"{where} did not greet as an SMTP server", code="NoSMTPGreeting",
                                  protocol=PROTOCOL, server_response=_reply_text(code, banner))
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
        try:
            client.login(server.user, password)
        except smtplib.SMTPAuthenticationError as exc:
            raise MailServerError(f"{where} rejected the credentials", code="AuthenticationFailed",
                                  protocol=PROTOCOL,
                                  server_response=_reply_text(exc.smtp_code, exc.smtp_error)) from None
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


def _discard(client: smtplib.SMTP) -> None:
    # Best effort on a connection that is already failing: the original error matters, not this one.
    with contextlib.suppress(Exception):
        client.close()


@contextmanager
def open_session(server: MailServer, password: str) -> Iterator[smtplib.SMTP]:
    client = connect(server, password)
    try:
        yield client
    finally:
        try:
            client.quit()
        except Exception:  # noqa: BLE001 - the server may already have closed
            _discard(client)


def verify_login(server: MailServer, password: str) -> None:
    """Check that we can authenticate for submission."""
    with open_session(server, password):
        pass
