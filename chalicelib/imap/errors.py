"""What an IMAP failure means over HTTP: one table from server answers to API errors.

Two kinds of failure reach the mail API from the adapter:

- The server answered ``NO`` or ``BAD``: the connection is fine, the command was refused.
  :func:`error_from_response` reads the RFC 5530 response code (``[NONEXISTENT]``,
  ``[OVERQUOTA]``, ...) and, because many servers send none, a few well-known phrasings,
  and returns the :class:`~chalicelib.errors.ApiError` to raise. The server's own text goes
  to ``details.serverResponse`` (it never echoes credentials).
- The connection failed (timeout, reset, EOF, garbage, more than a cap of :mod:`.limits`
  allows): :func:`error_from_transport`. The connection must be thrown away; the caller
  learns 504 ``UpstreamTimeout``, 502 ``ConnectionLost`` or 502 ``ServerResponseTooLarge``.

While connecting, the caller chose host and port, so only an answer that is IMAP is ever
quoted back (:func:`server_words`, :func:`refused_greeting`): a port scanned through the
API must not reveal its SSH or HTTP banner.

    NO [NONEXISTENT] / [TRYCREATE] / "doesn't exist"  -> 404 MailboxNotFound
    NO [ALREADYEXISTS]                                  -> 409 MailboxExists
    NO [OVERQUOTA] / "quota"                            -> 507 OverQuota
    NO [READ-ONLY] / [NOPERM]                           -> 403 MailboxReadOnly / NoPermission
    NO [INUSE] / [UNAVAILABLE]                          -> 503 MailboxInUse / ServerUnavailable
    NO [LIMIT]                                          -> 400 ServerLimit
    NO [SERVERBUG]                                      -> 502 ServerError
    any other NO                                        -> 400 ServerRejected
    BAD "User is authenticated but not connected."      -> 503 MailboxNotConnected (Exchange Online, see below)
    BAD                                                 -> 502 ProtocolError (our command or the server is wrong)

A refused login (:func:`login_refusal_code`) is one of three things, and only the first is
the credentials' fault (the watcher's ``authenticationError``; the others are retried)::

    NO [AUTHENTICATIONFAILED] / [ALERT] Invalid credentials / NO AUTHENTICATE failed. / ...
                                                        -> AuthenticationFailed
    NO [UNAVAILABLE] / [SERVERBUG] / Gmail's "System Error (Failure)"
                                                        -> AuthenticationUnavailable (temporary)
    Gmail's "[ALERT] Too many simultaneous connections." / "Account exceeded command or
    bandwidth limits." / NO [LIMIT]                     -> LoginThrottled (temporary)
"""

from __future__ import annotations

import re
import socket

from chalicelib.errors import (
    ApiError,
    MailboxExistsError,
    MailboxNotFoundError,
    MailPermissionError,
    OverQuotaError,
    UpstreamTimeoutError,
)
from chalicelib.imap.limits import exceeded

# imapclient: "select failed: <text>"; imaplib: "FETCH command error: BAD [b'<text>']".
_FAILED = re.compile(r"^\s*[\w .-]+? failed: (?P<text>.*)$", re.DOTALL)
_COMMAND_ERROR = re.compile(r"command error: (?P<kind>BAD|NO) \[b?['\"](?P<text>.*)['\"]\]$", re.DOTALL)
_RESPONSE_CODE = re.compile(r"^\[(?P<code>[A-Z][A-Z0-9-]*)(?: [^\]]*)?\]\s*")
# Dovecot appends how long the command took: "(0.001 + 0.000 secs)." - noise for API users.
_DOVECOT_TIMING = re.compile(r"\s*\(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\.?$")
# Servers that send no response code still say it in words (Dovecot 2.3 on SELECT/STATUS:
# "Mailbox doesn't exist: X"; Exchange: "The specified folder could not be found").
_MISSING_MAILBOX_TEXT = re.compile(
    r"doesn'?t exist|does not exist|not exist|could not be found|not found|unknown (mailbox|folder)|no such",
    re.IGNORECASE)
# Courier answers a name outside its only namespace ("Nope" where every folder is "INBOX.x")
# with a bare "NO Invalid mailbox name." to APPEND/SELECT/STATUS/DELETE/COPY: a name that cannot be
# valid names no mailbox. Only for commands that need an existing mailbox: to CREATE the same
# words are a refusal of the new name (422).
_INVALID_NAME_TEXT = re.compile(r"invalid mailbox name", re.IGNORECASE)
_NEEDS_EXISTING_MAILBOX = frozenset({"APPEND", "SELECT", "EXAMINE", "STATUS", "DELETE", "RENAME", "COPY", "MOVE"})
_QUOTA_TEXT = re.compile(r"quota|mailbox (is )?full|size limit exceeded", re.IGNORECASE)


def server_text(exc: BaseException) -> tuple[str, str, str | None]:
    """(kind, text, response code) of an imapclient/imaplib error: kind is ``NO`` or ``BAD``."""
    raw = str(exc)
    kind = "NO"
    match = _COMMAND_ERROR.search(raw)
    if match:
        kind, raw = match.group("kind"), match.group("text")
    else:
        failed = _FAILED.match(raw)
        if failed:
            raw = failed.group("text")
    if raw.startswith(("b'", 'b"')):
        raw = raw[2:-1]
    text = _DOVECOT_TIMING.sub("", raw.strip()).strip()
    code_match = _RESPONSE_CODE.match(text)
    code = code_match.group("code") if code_match else None
    return kind, text, code


# imaplib hands the server's bytes through as the exception argument (a greeting it refused,
# the text of a tagged NO to LOGIN): str() shows them as a bytes literal.
_SERVER_BYTES = re.compile(r"^b(?P<quote>['\"])(?P<text>.*)(?P=quote)$", re.DOTALL)
# An untagged status line, the only shape a greeting may have (RFC 9051 section 7.1).
_IMAP_STATUS_LINE = re.compile(r"^\* (?:OK|NO|BAD|BYE|PREAUTH)(?: |$)", re.IGNORECASE)


def server_words(exc: BaseException) -> str | None:
    """What the server itself said in an imaplib/imapclient error, or None if the text is the library's.

    The server's words are the bytes imaplib passes through, and the text of a tagged NO/BAD
    that imapclient reports as ``"<command> failed: <text>"`` or imaplib as ``"<COMMAND>
    command error: BAD [b'<text>']"`` (tagged answers, so IMAP by construction). imaplib's own
    messages are not: ``"unexpected response: b'SSH-2.0-OpenSSH_9.2'"`` quotes a line that is
    not IMAP at all, and ``"socket error: EOF"`` is no answer.
    """
    text = str(exc)
    quoted = _SERVER_BYTES.match(text)
    if quoted:
        return quoted.group("text").strip() or None
    if _FAILED.match(text) or _COMMAND_ERROR.search(text):
        return server_text(exc)[1] or None
    return None


def is_imap_status_line(line: str) -> bool:
    """``* OK``, ``* NO``, ``* BAD``, ``* BYE`` or ``* PREAUTH``: a line an IMAP server greets with."""
    return bool(_IMAP_STATUS_LINE.match(line))


def refused_greeting(exc: BaseException) -> str | None:
    """The greeting imaplib refused (``* BYE Too many connections``) if it was IMAP, else None.

    Whatever else answered on the port (``SSH-2.0-OpenSSH_9.2``, ``HTTP/1.1 400 Bad
    Request``, ``220 mx ESMTP``) is not quoted: the caller chose host and port.
    """
    words = server_words(exc)
    return words if words is not None and is_imap_status_line(words) else None


def _verb(command: str) -> str:
    """``"UID COPY"`` -> ``"COPY"``, ``"APPEND"`` -> ``"APPEND"``."""
    words = command.upper().split()
    return words[1] if words[:1] == ["UID"] and len(words) > 1 else (words[0] if words else "")


def error_from_response(exc: BaseException, *, command: str, mailbox: str | None = None) -> ApiError:
    """The API error for a ``NO``/``BAD`` answer to ``command`` (about ``mailbox``, if any)."""
    kind, text, code = server_text(exc)
    details: dict[str, str] = {"serverResponse": text, "command": command}
    if mailbox is not None:
        details["path"] = mailbox
    if kind == "BAD" and is_not_connected(text):
        return ApiError(f"the mail server let the login in but cannot open the mailbox, retry later: {text}",
                        code=MAILBOX_NOT_CONNECTED, status=503, details=details)
    if kind == "BAD":
        return ApiError(f"the mail server rejected the {command} command as malformed", code="ProtocolError",
                        status=502, details=details)
    names_no_mailbox = _MISSING_MAILBOX_TEXT.search(text) or (
        _verb(command) in _NEEDS_EXISTING_MAILBOX and _INVALID_NAME_TEXT.search(text))
    if code in ("NONEXISTENT", "TRYCREATE") or (mailbox is not None and code is None and names_no_mailbox):
        return MailboxNotFoundError(f"mailbox {mailbox!r} does not exist" if mailbox else "mailbox does not exist",
                                    details=details)
    if code == "ALREADYEXISTS":
        return MailboxExistsError(f"mailbox {mailbox!r} already exists" if mailbox else "mailbox already exists",
                                  details=details)
    if code == "OVERQUOTA" or (code is None and _QUOTA_TEXT.search(text)):
        return OverQuotaError(f"the mailbox is over its quota: {text}", details=details)
    if code == "READ-ONLY":
        return MailPermissionError("the mailbox is read-only", details=details)
    if code == "NOPERM":
        return MailPermissionError("the mail server denies this operation", code="NoPermission", details=details)
    if code in ("INUSE", "UNAVAILABLE"):
        name = "MailboxInUse" if code == "INUSE" else "ServerUnavailable"
        return ApiError(f"the mail server is busy, retry later: {text}", code=name, status=503, details=details)
    if code == "LIMIT":
        return ApiError(f"the mail server refuses: {text}", code="ServerLimit", status=422, details=details)
    if code == "SERVERBUG":
        return ApiError(f"the mail server failed: {text}", code="ServerError", status=502, details=details)
    return ApiError(f"the mail server refused {command}: {text}", code="ServerRejected", status=422,
                    details=details)


# Refusals of a login that say nothing about the credentials. Gmail puts its throttling under
# [ALERT] (the code it also uses for "Invalid credentials"), so the words decide.
_LOGIN_THROTTLED = re.compile(
    r"^\[(LIMIT|THROTTLED)\]|too many simultaneous connections|exceeded command or bandwidth limits"
    r"|too many login attempts", re.IGNORECASE)
_LOGIN_UNAVAILABLE = re.compile(r"^\[(UNAVAILABLE|SERVERBUG)\]|^system error\b|temporary system (error|problem)",
                                re.IGNORECASE)
# Exchange Online accepts the login, then answers every mailbox command with this BAD: IMAP is
# turned off for the mailbox, the token's user cannot open it, or a backend fault that passes.
# Not the token's fault, and not our command's: temporary.
_NOT_CONNECTED = re.compile(r"authenticated but not connected", re.IGNORECASE)
MAILBOX_NOT_CONNECTED = "MailboxNotConnected"


def login_refusal_code(words: str | None) -> str:
    """``AuthenticationFailed``, or the temporary ``AuthenticationUnavailable`` / ``LoginThrottled``,
    for the server's words refusing a LOGIN or AUTHENTICATE (see the table above)."""
    if words is not None and _LOGIN_THROTTLED.search(words):
        return "LoginThrottled"
    if words is not None and _LOGIN_UNAVAILABLE.search(words):
        return "AuthenticationUnavailable"
    return "AuthenticationFailed"


def is_not_connected(words: str | None) -> bool:
    """Exchange Online's ``BAD User is authenticated but not connected.``"""
    return words is not None and bool(_NOT_CONNECTED.search(words))


def is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return True
    return "timed out" in str(exc).lower()


def error_from_transport(exc: BaseException, *, command: str, budget_seconds: float,
                         budget_spent: bool = False) -> ApiError:
    """The API error for a connection that failed under ``command`` (the connection is unusable).

    ``budget_spent``: the request deadline has passed, so whatever broke the stream (a
    socket timeout, or the watchdog shutting the socket) is reported as a timeout. A server
    that sent more than a cap allows (:mod:`.limits`) is 502 ``ServerResponseTooLarge``.
    """
    too_large = exceeded(exc)
    if too_large is not None:
        return too_large.mail_server_error(command, status=502)
    if budget_spent or is_timeout(exc):
        return UpstreamTimeoutError(
            f"the mail server did not answer {command} within the request budget of {budget_seconds:g} s",
            details={"command": command})
    return ApiError(f"the connection to the mail server was lost during {command}", code="ConnectionLost",
                    status=502, details={"command": command, "reason": type(exc).__name__})
