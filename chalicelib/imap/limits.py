"""How much one IMAP server can make us read: caps on lines, literals and a command's answer.

Anyone with an API token chooses the IMAP server of their account, and that server's bytes
land in the API's Lambda and in the watcher (thousands of accounts in one process). imaplib
trusts the server: a literal ``{900000000}`` becomes one 900 MB ``read``, and it keeps
collecting untagged lines for as long as they come. Every read of every connection goes
through the transport of :mod:`chalicelib.imap.session`, which mixes in
:class:`BoundedReads`; it enforces three caps:

    line       IMAPLESS_IMAP_MAX_LINE_BYTES            one response line (imaplib's own cap is 1,000,000)
    literal    IMAPLESS_IMAP_MAX_LITERAL_BYTES         the size a ``{n}`` announces, refused before reading
    response   IMAPLESS_IMAP_MAX_RESPONSE_BYTES        lines + literals read since our last command went out
               IMAPLESS_IMAP_MAX_BODY_RESPONSE_BYTES   ... when that command fetches message content

    send(command) ──▶ budget = body cap if "UID FETCH .. BODY.PEEK[..]" else response cap
    readline()    ──▶ readline(min(line cap, budget) + 1): never buffers past a cap
    read(n)       ──▶ n > literal cap or n > budget: refused before a byte is read

Which cap applies is decided from the command line we send, not by the caller: every FETCH
of ``BODY[...]``/``BINARY[...]``/``RFC822`` (sources, download windows, text parts, the
watcher's listing with headers) gets the larger one, so no call site can forget it. A
command we send with a literal (APPEND) starts a new budget with each piece sent; the
server cannot make us send, so it cannot reset its own budget. Everything a server pushes
during IDLE counts against the IDLE command's budget until our ``DONE`` (the watcher
re-issues IDLE every few minutes).

Failure mode: over a cap, the transport shuts its socket down (the stream is desynchronised
mid-response, and a LOGOUT must not read on into the flood) and raises
:class:`ResponseTooLargeError`, an ``imaplib.IMAP4.abort``, so every caller treats it as the
lost connection it is. imaplib re-raises aborts as plain ones (``command: FETCH => ...``):
:func:`exceeded` finds the original through the exception chain. The mail API answers 502
``ServerResponseTooLarge``; the watcher drops the connection and the account reports
``connectError`` with that code.

Memory: the accounting is one small object per connection (a reference to the shared
:class:`ReadLimits` and a counter); no buffer is added (the watcher keeps ~40 KB per idle
connection). What a cap admits is still held whole by imaplib, so the caps bound what one
connection can cost: the bytes, and for an answer made of many short lines up to ~10 times
as many as Python objects (measured: 16 MiB of ``* LIST`` lines, 53 MB in imaplib, 165 MB
once parsed), which is why the cap of answers other than content FETCHes is the smaller one.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.errors import MailServerError
from chalicelib.imap.wire import AbortError
from chalicelib.settings import Settings, get_settings

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

RESPONSE_TOO_LARGE = "ServerResponseTooLarge"
# A FETCH that returns message content: BODY[...] / BODY.PEEK[...] / BINARY[.PEEK][...], and the
# RFC822, RFC822.HEADER and RFC822.TEXT items (RFC822.SIZE is a number).
_CONTENT_FETCH = re.compile(
    rb"^\S+ (?:UID )?FETCH .*?(?:\b(?:BODY|BINARY)(?:\.PEEK)?\[|\bRFC822(?:\.HEADER|\.TEXT)?\b(?!\.))",
    re.IGNORECASE)


@dataclass(frozen=True)
class ReadLimits:
    """The caps, in bytes (from settings; one shared instance per process)."""

    max_line_bytes: int
    max_literal_bytes: int
    max_response_bytes: int
    max_body_response_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadLimits:
        return cls(settings.imap_max_line_bytes, settings.imap_max_literal_bytes,
                   settings.imap_max_response_bytes, settings.imap_max_body_response_bytes)

    def response_cap(self, command: bytes) -> int:
        """The cap of the answer to ``command`` (the bytes we send)."""
        first_line = command.split(b"\r\n", 1)[0]
        return self.max_body_response_bytes if _CONTENT_FETCH.match(first_line) else self.max_response_bytes


@functools.lru_cache(maxsize=4)
def _limits_of(settings: Settings) -> ReadLimits:
    return ReadLimits.from_settings(settings)


def current_limits() -> ReadLimits:
    """The limits of the current settings, one instance shared by every connection."""
    return _limits_of(get_settings())


class ResponseTooLargeError(AbortError):
    """The server sent more than a cap allows; its connection has been shut down."""

    def __init__(self, what: str, limit: int, setting: str) -> None:
        super().__init__(f"the server sent {what} (the cap is {limit} bytes, {setting})")
        self.what = what
        self.limit = limit
        self.setting = setting

    def mail_server_error(self, command: str | None = None, *, status: int | None = None) -> MailServerError:
        """What API callers and the account's state learn: ``ServerResponseTooLarge`` (502 under
        a mail request, ``status``; 422 while verifying settings, as every login failure)."""
        during = f" to {command}" if command else ""
        error = MailServerError(
            f"the mail server's answer{during} was larger than this service accepts: {self.what}, at most "
            f"{self.limit} bytes; the connection was closed", code=RESPONSE_TOO_LARGE, protocol="imap",
            status=status)
        error.details["limitBytes"] = self.limit
        if command:
            error.details["command"] = command
        return error


def exceeded(exc: BaseException | None) -> ResponseTooLargeError | None:
    """The :class:`ResponseTooLargeError` behind ``exc``, if any (imaplib and imapclient re-raise
    what a read raised as their own errors; the original stays in the chain)."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, ResponseTooLargeError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


class ResponseBudget:
    """What is left of the current command's allowance. One per connection; no buffers."""

    __slots__ = ("cap", "limits", "remaining")

    def __init__(self, limits: ReadLimits) -> None:
        self.limits = limits
        # The greeting, and anything read before our first command.
        self.cap = self.remaining = limits.max_response_bytes

    def start(self, command: bytes) -> None:
        """We are sending ``command``: what comes next is its answer."""
        self.cap = self.remaining = self.limits.response_cap(command)

    def read_line(self, reader: io.BufferedIOBase) -> bytes:
        """One line (CRLF included) from ``reader``, never reading more than a cap allows."""
        line_cap = self.limits.max_line_bytes
        line = reader.readline(min(line_cap, self.remaining) + 1)
        if len(line) > line_cap:
            raise ResponseTooLargeError(f"a line longer than {line_cap} bytes", line_cap,
                                        "IMAPLESS_IMAP_MAX_LINE_BYTES")
        self._take(len(line))
        return line

    def admit_literal(self, size: int) -> None:
        """A literal of ``size`` bytes was announced: refuse it before reading any of it."""
        literal_cap = self.limits.max_literal_bytes
        if size > literal_cap:
            raise ResponseTooLargeError(f"a {size}-byte literal", literal_cap, "IMAPLESS_IMAP_MAX_LITERAL_BYTES")
        self._take(size)

    def _take(self, size: int) -> None:
        if size > self.remaining:
            setting = ("IMAPLESS_IMAP_MAX_BODY_RESPONSE_BYTES" if self.cap == self.limits.max_body_response_bytes
                       and self.cap != self.limits.max_response_bytes else "IMAPLESS_IMAP_MAX_RESPONSE_BYTES")
            raise ResponseTooLargeError(f"more than {self.cap} bytes in one answer", self.cap, setting)
        self.remaining -= size


class BoundedReads:
    """Mixed into an ``imaplib.IMAP4`` transport: every read is checked by a :class:`ResponseBudget`.

    Must come before ``imaplib.IMAP4`` in the bases (it overrides ``send``, ``readline`` and
    ``read``); the transport's ``file`` is its reader and ``sock`` its socket, as in imaplib.
    """

    file: Any
    sock: socket.socket

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before imaplib's __init__, which reads the greeting.
        self._budget = ResponseBudget(current_limits())
        super().__init__(*args, **kwargs)

    def send(self, data: ReadableBuffer) -> None:
        self._budget.start(data if isinstance(data, bytes) else bytes(data))
        super().send(data)  # type: ignore[misc]

    def readline(self) -> bytes:
        try:
            return self._budget.read_line(self.file)
        except ResponseTooLargeError:
            self._cut_off()
            raise

    def read(self, size: int) -> bytes:
        try:
            self._budget.admit_literal(size)
        except ResponseTooLargeError:
            self._cut_off()
            raise
        return self.file.read(size)

    def _cut_off(self) -> None:
        # The rest of the flood is never read: later sends fail, later reads see EOF.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
