"""What imapclient cannot express, and the codecs around it: the one module that reaches
into imapclient's and imaplib's internals.

:mod:`chalicelib.imap.session` builds the connection with imapclient's public API; this
module adds what the project needs beyond it, as functions over the ``IMAPClient`` a
session holds. No other module may import imapclient or imaplib (session.py excepted) or
touch a private attribute of either: ``tests/unit/test_imap_boundary.py`` enforces it.

Raw tagged commands, whose untagged answers we read ourselves: ``EXAMINE ... (QRESYNC
...)`` (imapclient would file ``VANISHED`` where nobody reads it), ``UID FETCH ...
(CHANGEDSINCE m VANISHED)``, ``NOTIFY SET``, ``IDLE`` driven by a selector (imapclient's
``idle_check`` blocks a thread per connection), ``SEARCH RETURN (...)`` (ESEARCH).

Private attributes used, and why each:

- ``IMAPClient._imap``: the ``imaplib.IMAP4`` underneath, for everything below.
- ``IMAP4._new_tag()``: a tag for a command we send ourselves. It also records the tag in
  ``IMAP4.tagged_commands``, which imaplib empties only for answers it reads itself: we
  remove it at once, or every raw command would leave an entry for the connection's life.
- ``IMAP4._get_line()``: one response line, with imaplib's EOF (``abort``) handling.
- ``IMAP4.file``: peek at the buffered reader without blocking (the selector sees only the
  kernel socket: bytes already buffered would sit unread until the next packet).
- ``IMAP4.untagged_responses``: imaplib files bracketed response codes of tagged and
  untagged answers alike there (``COPYUID``, ``APPENDUID``), and the ``STATUS`` lines of a
  ``LIST ... RETURN (STATUS ...)``; they are drained before a command and read after it.
- ``IMAP4.state``: whether a mailbox is selected (imapclient has no accessor).
- ``IMAP4.capabilities`` and ``IMAPClient._cached_capabilities``: both keep a copy of the
  capability list per connection; they are pointed at one shared copy (memory, watcher).
- ``IMAPClient._raw_command_untagged()``: imapclient's sender for arbitrary commands (it
  sends 8-bit arguments as literals, with LITERAL+ when offered) for LIST with RETURN
  options, LSUB, XLIST and SEARCH with CHARSET or RETURN, which have no public verb, and
  STATUS, so that its answer reaches the folder model's one parser (:mod:`.folders`).
- ``IMAP4.authenticate()`` (public in imaplib, reached through ``_imap``): a SASL exchange whose
  failure keeps its type. imapclient's ``sasl_login`` turns a ``NO`` and a dropped connection
  alike into one ``LoginError`` string; session.py must tell the server's refusal (quoted in
  the error) from imaplib's own words about a broken stream (never quoted).
- ``IMAPClient._timeout``: the connect timeout, read by session.py's ``_create_IMAP4`` hook
  (imapclient's documented way to supply its own transport) to build the pinned transport.
- ``imapclient.imapclient._quote`` / ``_literal``: its own argument forms, so that an
  argument we build is sent exactly as imapclient sends its own (see :mod:`.strings`).
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Callable, Sequence
from typing import Any, AnyStr, Protocol

from imapclient import imap_utf7
from imapclient.datetime_util import format_criteria_date as _format_criteria_date
from imapclient.exceptions import IMAPClientError, ProtocolError
from imapclient.imapclient import IMAPClient, _literal, _quote
from imapclient.response_parser import parse_fetch_response as _parse_fetch_response
from imapclient.response_parser import parse_response as _parse_response

__all__ = [
    "AbortError",
    "CommandError",
    "GreetingError",
    "Part",
    "ProtocolError",
    "buffered_input",
    "connect_timeout",
    "decode_mailbox_name",
    "encode_mailbox_name",
    "format_criteria_date",
    "group_responses",
    "is_selected",
    "literal",
    "parse_fetch_response",
    "parse_response",
    "pop_untagged",
    "quote",
    "raw_untagged",
    "read_lines",
    "read_response",
    "send",
    "send_tagged",
    "share_capabilities",
    "silence_debug",
]

# Response payloads as imaplib hands them over: ``bytes`` lines and ``(line, literal)`` pairs
# for every ``{n}`` literal; a response ends with its last ``bytes`` item.
Part = bytes | tuple[bytes, bytes]
# NO/BAD to a command imapclient ran (imapclient's and imaplib's error classes).
CommandError = IMAPClientError
# The connection is unusable: EOF, BYE, a line imaplib could not read.
AbortError = imaplib.IMAP4.abort
# Anything imaplib refused, including a greeting that is not IMAP.
GreetingError = imaplib.IMAP4.error
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")


# -- codecs ---------------------------------------------------------------------------------------


def quote(value: AnyStr) -> AnyStr:
    """A quoted string (``\\`` and ``"`` escaped) exactly as imapclient sends its own."""
    result: AnyStr = _quote(value)
    return result


def literal(value: bytes) -> bytes:
    """An argument ``raw_untagged`` sends as ``{n}`` + octets (``{n+}`` under LITERAL+)."""
    result: bytes = _literal(value)
    return result


def encode_mailbox_name(path: str) -> bytes:
    """A mailbox name as a quoted string argument (modified UTF-7, RFC 3501 5.1.3)."""
    encoded: bytes = imap_utf7.encode(path)
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def decode_mailbox_name(raw: object) -> str:
    """A mailbox name from a parsed response; a numeric-looking atom ("2024") arrives as an int."""
    if isinstance(raw, bytes):
        decoded: str = imap_utf7.decode(raw)
        return decoded
    return str(raw)


def parse_response(parts: Sequence[Part]) -> tuple[Any, ...]:
    """Tokens of response payloads (lists, strings, numbers, NIL as None)."""
    return tuple(_parse_response(list(parts)))


def parse_fetch_response(parts: Sequence[Part]) -> dict[int, dict[bytes, Any]]:
    """``<n> (UID 5 FLAGS (...) ...)`` payloads -> items by sequence number."""
    return dict(_parse_fetch_response(list(parts), uid_is_key=False))


def format_criteria_date(value: Any) -> bytes:
    result: bytes = _format_criteria_date(value)
    return result


def group_responses(lines: Sequence[Part]) -> list[list[Part]]:
    """imaplib's flat list of untagged payloads -> one list per response.

    A response with literals is filed as ``(line, literal)`` pairs followed by the rest of
    its line; every plain ``bytes`` item ends a response.
    """
    grouped: list[list[Part]] = []
    current: list[Part] = []
    for line in lines:
        if line is None:
            continue
        current.append(line)
        if isinstance(line, bytes):
            grouped.append(current)
            current = []
    if current:
        grouped.append(current)
    return [parts for parts in grouped if parts != [b""]]


# -- commands imapclient has a sender for, but no verb ----------------------------------------------


def raw_untagged(client: IMAPClient, command: bytes, args: list[bytes], *, response_name: bytes | None = None,
                 uid: bool = False) -> list[Part]:
    """Send ``command args`` (8-bit arguments as literals); the untagged payloads named
    ``response_name`` (default: the command). NO/BAD raise :data:`CommandError`."""
    lines: list[Part] = client._raw_command_untagged(command, args, response_name=response_name, uid=uid)
    return lines


def pop_untagged(client: IMAPClient, name: str) -> list[Any]:
    """Take what imaplib filed under ``name`` (response codes and untagged answers)."""
    found: list[Any] = client._imap.untagged_responses.pop(name, [])
    return found


def is_selected(client: IMAPClient) -> bool:
    return bool(client._imap.state == "SELECTED")


# -- commands we send and read ourselves ------------------------------------------------------------


def send_tagged(client: IMAPClient, line: bytes) -> bytes:
    """Send ``<tag> line CRLF``; return the tag whose answer the caller will read."""
    imap = client._imap
    tag: bytes = imap._new_tag()
    imap.tagged_commands.pop(tag, None)  # imaplib would only forget it on reading the answer itself
    imap.send(tag + b" " + line + b"\r\n")
    return tag


def send(client: IMAPClient, data: bytes) -> None:
    """Send bytes as they are (``DONE`` ending IDLE)."""
    client._imap.send(data)


class LineSource(Protocol):
    """What imaplib's ``IMAP4`` offers a reader: CRLF lines and exact-size literal reads."""

    def _get_line(self) -> bytes: ...
    def read(self, size: int) -> bytes: ...


def read_lines(source: LineSource) -> list[Part]:
    """One complete response from ``source``: a line plus any literals it announces."""
    parts: list[Part] = []
    line = source._get_line()
    while (match := _LITERAL.search(line)) is not None:
        parts.append((line, source.read(int(match.group(1)))))
        line = source._get_line()
    parts.append(line)
    return parts


def read_response(client: IMAPClient) -> list[Part]:
    """One complete response on ``client``'s connection."""
    return read_lines(client._imap)


def buffered_input(client: IMAPClient) -> bytes:
    """Up to a few octets already read from the socket but not yet consumed (never blocks
    on a non-blocking socket; raises what the reader raises on a closed one)."""
    peeked: bytes = client._imap.file.peek(1)
    return peeked


# -- connection setup -------------------------------------------------------------------------------


def silence_debug(client: IMAPClient) -> None:
    """imapclient turns imaplib's debug output to 5 and routes it to a DEBUG logger, so
    imaplib formats the repr() of every response, literals included, whether or not
    anything logs it: a FETCH of an 8 MiB body allocated ~19 MB more just for that."""
    client._imap.debug = 0


def authenticate(client: IMAPClient, mechanism: str, respond: Callable[[bytes], str]) -> None:
    """``AUTHENTICATE mechanism``, ``respond`` answering each continuation (imaplib base64s both ways).

    Raises ``imaplib.IMAP4.error`` carrying the server's text on ``NO``/``BAD``, and
    ``imaplib.IMAP4.abort`` (a subclass) when the connection broke.
    """
    client._imap.authenticate(mechanism, respond)


def connect_timeout(client: IMAPClient) -> float:
    """The connect timeout imapclient was given, for a transport built in its ``_create_IMAP4`` hook."""
    timeout: float = client._timeout.connect
    return timeout


def share_capabilities(client: IMAPClient, shared: Callable[[object], object]) -> None:
    """Point imapclient's and imaplib's copies of the capability list at ``shared(copy)``.
    imapclient caches only after login (before, it answers imaplib's list)."""
    if client._cached_capabilities is not None:
        client._cached_capabilities = shared(client._cached_capabilities)
    client._imap.capabilities = shared(client._imap.capabilities)
