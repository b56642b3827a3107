"""Opening TCP/TLS connections to mail servers, and naming why they fail.

Shared by the IMAP and SMTP adapters so both answer the same failure with the same
stable code:

    resolve (netguard) --> connect to a checked address --> TLS --> greeting --> login
      HostNotFound         ConnectionRefused                TLSError
      HostNotAllowed       ConnectionTimeout                ...

TLS policy: certificates are verified against the system store (OpenSSL honours
``SSL_CERT_FILE``) with host name checking, unless the account opts out with
``tls.rejectUnauthorized: false``. TLS 1.2 is the floor.
"""

from __future__ import annotations

import functools
import socket
import ssl
from dataclasses import dataclass
from typing import Literal

from chalicelib.errors import MailServerError
from chalicelib.security.netguard import HostNotAllowedError, HostNotFoundError, ResolvedAddress, resolve_allowed


@dataclass(frozen=True)
class TlsOptions:
    reject_unauthorized: bool = True
    min_version: str = "TLSv1.2"
    # Send the password over an unencrypted connection when the server offers no
    # STARTTLS. Off unless the account explicitly asks for it.
    allow_plaintext_auth: bool = False


# How the secret handed to an adapter logs in: a password (IMAP LOGIN, SMTP AUTH PLAIN/LOGIN),
# or an OAuth2 access token (SASL XOAUTH2 / OAUTHBEARER, :mod:`chalicelib.security.bearer`).
LoginMethod = Literal["password", "oauth2"]


@dataclass(frozen=True)
class MailServer:
    """Where and how to reach one IMAP or SMTP server (the secret, a password or an access
    token as ``login`` says, travels separately)."""

    host: str
    port: int
    secure: bool
    user: str
    tls: TlsOptions = TlsOptions()
    login: LoginMethod = "password"


@functools.lru_cache(maxsize=16)
def build_tls_context(options: TlsOptions) -> ssl.SSLContext:
    # Shared per options: a context holds the parsed CA store (~1 MB, ~5 ms to build), and
    # the watcher opens thousands of connections. Callers only wrap sockets with it.
    context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion[options.min_version.replace(".", "_")]
    if not options.reject_unauthorized:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def resolve_mail_host(host: str, port: int, protocol: str) -> list[ResolvedAddress]:
    """Resolve a mail server's host through the address policy, as API errors."""
    try:
        return resolve_allowed(host, port)
    except HostNotFoundError as exc:
        raise MailServerError(str(exc), code="HostNotFound", protocol=protocol) from None
    except HostNotAllowedError as exc:
        raise MailServerError(str(exc), code="HostNotAllowed", protocol=protocol) from None


def connect_checked(addresses: list[ResolvedAddress], port: int, timeout: float | None) -> socket.socket:
    """Connect to the first reachable address, like ``socket.create_connection`` but only to checked ones."""
    last_error: OSError | None = None
    for resolved in addresses:
        sock = socket.socket(resolved.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect((resolved.address, port))
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        # Idle IMAP connections sit behind NAT gateways that forget flows after 350 s.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        # Request/response protocols over TLS: without TCP_NODELAY, Nagle holds a command's
        # last TLS record until the server's delayed ACK, ~40 ms per command on a reused session.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    assert last_error is not None
    raise last_error


def classify_connection_error(exc: BaseException, *, protocol: str, host: str, port: int) -> MailServerError:
    """Turn a socket/TLS exception into the API error with a stable code."""
    where = f"{host}:{port}"
    if isinstance(exc, MailServerError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MailServerError(f"TLS certificate of {where} does not verify: {exc.verify_message}",
                               code="TLSError", protocol=protocol)
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        hint = " (does the port expect plain text? try secure: false)" if "WRONG_VERSION" in reason.upper() else ""
        return MailServerError(f"TLS handshake with {where} failed: {reason}{hint}", code="TLSError",
                               protocol=protocol)
    if isinstance(exc, ConnectionRefusedError):
        return MailServerError(f"connection to {where} was refused", code="ConnectionRefused", protocol=protocol)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return MailServerError(
            f"{where} did not answer in time (if the port expects implicit TLS, set secure: true)",
            code="ConnectionTimeout", protocol=protocol)
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError):
        return MailServerError(f"{where} closed the connection", code="ConnectionClosed", protocol=protocol)
    if isinstance(exc, OSError):
        return MailServerError(f"could not connect to {where}: {exc.strerror or exc}", code="ConnectError",
                               protocol=protocol)
    return MailServerError(f"unexpected failure talking to {where}: {type(exc).__name__}",
                           code="ConnectError", protocol=protocol)
