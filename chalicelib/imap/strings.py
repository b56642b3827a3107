"""User text as IMAP string arguments: always a quoted string or a literal, never an atom.

An argument sent bare is parsed by the server as whatever it looks like: ``{5}`` announces
a five-octet literal that never comes (the command hangs until our deadline and holds a
connection slot), a space splits it into two arguments, ``(`` opens a list. So every value
a caller chose goes out in one of the two forms that cannot be misread (RFC 3501 4.3, 9):

    printable ASCII, tab    quoted: "..." with \\ and " escaped
    CR or LF                literal: {n}\\r\\n<octets> (a quoted string cannot hold them)
    8-bit (UTF-8)           literal, and the caller must send CHARSET UTF-8 (SEARCH)
    NUL                     refused (400 ValidationError): no IMAP4rev1 string can carry it

Both forms are imapclient's (through :mod:`.wire`): ``quote`` escapes, and a ``literal``
argument goes out as ``{n}`` after waiting for the server's continuation (``{n+}``
without waiting under LITERAL+). Mailbox names do not come through here: imapclient always quotes them and
encodes them in modified UTF-7, where every non-printable character is base64.
"""

from __future__ import annotations

from chalicelib.errors import ValidationError
from chalicelib.imap.wire import literal, quote

_NEEDS_LITERAL = (b"\r", b"\n")


def string_argument(value: str, field: str) -> tuple[bytes, bool]:
    """(the argument, whether it is 8-bit and needs ``CHARSET UTF-8``) for ``value``.

    ``field`` names the request field in the 400 answer for a value that cannot be sent.
    """
    if "\x00" in value:
        raise ValidationError("IMAP cannot carry a NUL character", details={field: "must not contain NUL (\\u0000)"})
    encoded = value.encode("utf-8")
    if not encoded.isascii():
        return literal(encoded), True
    if any(byte in encoded for byte in _NEEDS_LITERAL):
        return literal(encoded), False
    return quote(encoded), False
