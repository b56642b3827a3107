"""One SMTP transaction (MAIL, RCPT per recipient, DATA) and what its outcome means.

Built from smtplib's primitives rather than ``sendmail`` because the caller needs what
``sendmail`` hides: the server's reply to DATA (``250 2.0.0 Ok: queued as 4Xz``, the
``response`` of the API) and each recipient's own reply.

Outcome classes, following RFC 5321's reply code classes::

    connect / greeting / AUTH   4xx, refused, timeout, reset   -> temporary (retry later)
                                TLS, auth rejected (5xx), policy -> permanent
    MAIL FROM                   4xx -> temporary, 5xx -> permanent
    RCPT TO (each)              2xx -> accepted, 4xx -> deferred, 5xx -> rejected
                                none accepted: temporary if any was deferred, else permanent
    DATA                        4xx -> temporary, 5xx -> permanent
    connection lost/timeout     temporary (after DATA was sent the server may have taken the
                                message: a retry can deliver it twice, as with any MTA)

Before MAIL: SMTPUTF8 needed but not offered, or a message over the server's SIZE, are
permanent (the server will not change its mind). A reused pooled session that fails
before DATA is retried once on a fresh session at once: the failure says the old
connection was stale, not that the server refuses mail.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field

from chalicelib.errors import MailServerError
from chalicelib.security.transport import classify_connection_error
from chalicelib.smtp.compose import Envelope
from chalicelib.smtp.pool import PooledSession, SmtpLogin, SmtpPool, get_pool

# Connection-level failures that say "not now" rather than "never".
# AuthenticationUnavailable: the server, or our OAuth2 token endpoint, could not check the login now.
TEMPORARY_CONNECT_CODES = frozenset({"ConnectionRefused", "ConnectionTimeout", "ConnectionClosed", "ConnectError",
                                     "ServiceNotAvailable", "HostNotFound", "AuthenticationUnavailable"})


class DeliveryFailure(Exception):  # noqa: N818 - an outcome the caller branches on, raised as one
    """The server did not take the message for any recipient."""

    def __init__(self, message: str, *, code: str, temporary: bool, stage: str,
                 server_response: str | None = None, smtp_code: int | None = None,
                 recipients: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.temporary = temporary
        self.stage = stage
        self.server_response = server_response
        self.smtp_code = smtp_code
        self.recipients = recipients or {}

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.message, "code": self.code, "temporary": self.temporary,
                                   "stage": self.stage}
        if self.server_response:
            body["serverResponse"] = self.server_response
        if self.smtp_code is not None:
            body["smtpCode"] = self.smtp_code
        if self.recipients:
            body["recipients"] = dict(self.recipients)
        return body


@dataclass(frozen=True)
class DeliveryResult:
    """The server took the message for ``accepted``; the others were deferred or rejected."""

    response: str
    accepted: tuple[str, ...]
    deferred: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return " ".join(f"{code} {text}".split())


def _from_reply(stage: str, code: int, message: bytes | str) -> DeliveryFailure:
    temporary = 400 <= code < 500
    what = "temporarily refused" if temporary else "rejected"
    return DeliveryFailure(f"the server {what} the message at {stage}", code="MessageDeferred" if temporary
                           else "MessageRejected", temporary=temporary, stage=stage,
                           server_response=_reply(code, message), smtp_code=code)


def failure_from_connect_error(exc: MailServerError) -> DeliveryFailure:
    temporary = exc.code in TEMPORARY_CONNECT_CODES or (exc.server_response or "").startswith("4")
    return DeliveryFailure(exc.message, code=exc.code, temporary=temporary, stage="connect",
                           server_response=exc.server_response)


def _mail_options(client: smtplib.SMTP, envelope: Envelope, raw: bytes) -> list[str]:
    options = []
    if client.has_extn("size"):
        options.append(f"SIZE={len(raw)}")
    if envelope.smtputf8:
        options.append("SMTPUTF8")
    if (envelope.smtputf8 or not raw.isascii()) and client.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    return options


def _check_server_limits(client: smtplib.SMTP, envelope: Envelope, raw: bytes) -> None:
    if envelope.smtputf8 and not client.has_extn("smtputf8"):
        raise DeliveryFailure(
            "an address has a non-ASCII local part, which needs SMTPUTF8, and this server does not offer it",
            code="SMTPUTF8Unsupported", temporary=False, stage="MAIL")
    limit = (client.esmtp_features.get("size") or "").strip()
    if limit.isdigit() and int(limit) and len(raw) > int(limit):
        raise DeliveryFailure(f"the message is {len(raw)} bytes; the server takes at most {limit}",
                              code="MessageTooLarge", temporary=False, stage="MAIL")


@dataclass
class _Progress:
    """How far a transaction got: decides whether a lost connection may be retried at once."""

    stage: str = "MAIL FROM"


def _transaction(lease: PooledSession, envelope: Envelope, raw: bytes, progress: _Progress) -> DeliveryResult:
    client = lease.client
    _check_server_limits(client, envelope, raw)
    code, message = client.mail(envelope.mail_from, _mail_options(client, envelope, raw))
    if code != 250:
        lease.broken = True
        raise _from_reply("MAIL FROM", code, message)
    progress.stage = "RCPT TO"
    accepted: list[str] = []
    deferred: dict[str, str] = {}
    rejected: dict[str, str] = {}
    for recipient in envelope.recipients:
        code, message = client.rcpt(recipient)
        if 200 <= code < 300:
            accepted.append(recipient)
        elif 400 <= code < 500:
            deferred[recipient] = _reply(code, message)
        else:
            rejected[recipient] = _reply(code, message)
    if not accepted:
        lease.broken = True
        temporary = bool(deferred)
        raise DeliveryFailure("the server accepted none of the recipients",
                              code="RecipientsDeferred" if temporary else "RecipientsRejected",
                              temporary=temporary, stage="RCPT TO", recipients={**rejected, **deferred},
                              server_response=next(iter({**deferred, **rejected}.values())))
    if deferred or rejected:
        # The session is still consistent, but a server that refuses some recipients may be
        # shedding load; a fresh session next time costs little.
        lease.broken = True
    progress.stage = "DATA"
    try:
        code, message = client.data(raw)
    except smtplib.SMTPDataError as exc:  # DATA itself (the 354 step) was refused
        lease.broken = True
        raise _from_reply("DATA", exc.smtp_code, exc.smtp_error) from None
    if code != 250:
        lease.broken = True
        raise _from_reply("DATA", code, message)
    return DeliveryResult(response=_reply(code, message), accepted=tuple(accepted), deferred=deferred,
                          rejected=rejected)


def deliver(login: SmtpLogin, envelope: Envelope, raw: bytes, *, pool: SmtpPool | None = None) -> DeliveryResult:
    """Submit ``raw`` to the ``envelope`` recipients; DeliveryFailure when nobody got it."""
    pool = pool or get_pool()
    where = f"{login.host}:{login.port}"
    for attempt in (1, 2):
        progress = _Progress()
        reused = False
        try:
            with pool.session(login, fresh=attempt == 2) as lease:
                reused = lease.reused
                return _transaction(lease, envelope, raw, progress)
        except MailServerError as exc:
            raise failure_from_connect_error(exc) from None
        except DeliveryFailure:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            # A reused session that dies before DATA was merely stale: retry once on a fresh one.
            if reused and progress.stage != "DATA" and attempt == 1:
                continue
            if isinstance(exc, smtplib.SMTPResponseException):
                raise _from_reply(progress.stage, exc.smtp_code, exc.smtp_error) from None
            if isinstance(exc, OSError):
                error = classify_connection_error(exc, protocol="smtp", host=login.host, port=login.port)
                code, message = error.code, error.message
            else:
                code, message = "ConnectionClosed", f"{where} closed the connection"
            raise DeliveryFailure(f"{message} (during {progress.stage})", code=code, temporary=True,
                                  stage=progress.stage) from None
    raise AssertionError("unreachable")  # pragma: no cover
