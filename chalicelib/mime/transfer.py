"""Content-Transfer-Encoding: encoded body bytes -> the bytes they stand for. Never raises.

The API fetches ``BODY.PEEK[<section>]`` from IMAP (still transfer-encoded) and calls
:func:`decode_transfer_encoding`; :mod:`.decode` uses the same function on parts of a full
message, so both paths give the same bytes.

Tolerated breakage, and who produces it:
- base64 with missing or extra padding, padding in the middle (scripts that encode line by
  line), junk lines such as a stray boundary or a signature appended by a list server, and
  a trailing lone character: characters outside the alphabet are skipped, every padded
  run is decoded on its own, and an incomplete last quantum is dropped;
- quoted-printable with bad escapes (``=ZZ`` stays literal, as RFC 2045 section 6.7 advises),
  lowercase hex, and trailing white space after a soft line break (``= \\r\\n``, left by MTAs
  that pad lines);
- labels spelled ``Base64 ``, ``"base64"``, ``base-64``, ``quoted/printable``, ``8-bit``;
- ``x-uuencode`` (old Eudora and Outlook Express "uuencode" attachments);
- unknown encodings (``x-gzip64``, ``binhex``) are returned as they are.
"""

from __future__ import annotations

import binascii
import re

KNOWN_ENCODINGS = ("7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode")

_ENCODING_ALIASES = {
    "base-64": "base64", "b64": "base64", "x-base64": "base64",
    "quoted/printable": "quoted-printable", "quotedprintable": "quoted-printable", "qp": "quoted-printable",
    "quoted_printable": "quoted-printable", "x-quoted-printable": "quoted-printable",
    "8-bit": "8bit", "8 bit": "8bit", "7-bit": "7bit", "7 bit": "7bit", "x-binary": "binary",
    "uuencode": "x-uuencode", "x-uue": "x-uuencode", "uue": "x-uuencode", "x-uu": "x-uuencode",
}
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")
_PADDING_RUN = re.compile(rb"=+")
_QP_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r?\n|$)")
_UU_BEGIN = re.compile(rb"^begin(?:-base64)? +[0-7]{3,4} +.*$", re.MULTILINE)


def normalize_transfer_encoding(label: str | bytes | None) -> str | None:
    """``' "Base64" '`` -> ``"base64"``; None for a missing label. Unknown labels come back cleaned."""
    if label is None:
        return None
    if isinstance(label, bytes):
        label = label.decode("latin-1")
    cleaned = label.strip(" \t\r\n\"';").lower()
    if not cleaned:
        return None
    return _ENCODING_ALIASES.get(cleaned, cleaned)


def decode_base64_lenient(data: bytes) -> bytes:
    """Base64 that survives what mailers do to it (see the module docstring)."""
    out = bytearray()
    for run in _PADDING_RUN.split(_NOT_BASE64.sub(b"", data)):
        usable = len(run) - len(run) % 4 if len(run) % 4 == 1 else len(run)
        if usable:
            chunk = run[:usable]
            out += binascii.a2b_base64(chunk + b"=" * (-len(chunk) % 4))
    return bytes(out)


def decode_quoted_printable(data: bytes) -> bytes:
    # RFC 2045 section 6.7 rule 3: trailing white space is transport padding and must go,
    # which also turns "= \r\n" back into a soft line break.
    return binascii.a2b_qp(_QP_TRAILING_SPACE.sub(b"", data))


def decode_uuencode(data: bytes) -> bytes:
    """The body of the first ``begin … end`` block (the whole input when there is no header)."""
    begin = _UU_BEGIN.search(data)
    out = bytearray()
    for line in (data[begin.end():] if begin else data).splitlines():
        stripped = line.strip()
        if stripped == b"end":
            break
        if stripped and stripped != b"`":
            out += _decode_uu_line(line)
    return bytes(out)


def _decode_uu_line(line: bytes) -> bytes:
    try:
        return binascii.a2b_uu(line)
    except binascii.Error:
        pass
    # Some encoders and MTAs strip trailing spaces; the length character says how much is real.
    length = (line[0] - 32) & 0x3F
    try:
        return binascii.a2b_uu(line.ljust(1 + (length + 2) // 3 * 4, b" "))[:length]
    except binascii.Error:
        return b""


def decode_transfer_encoding(payload: bytes, encoding: str | bytes | None) -> bytes:
    """Undo the transfer encoding; identity for 7bit/8bit/binary/missing/unknown."""
    name = normalize_transfer_encoding(encoding)
    if name == "base64":
        return decode_base64_lenient(payload)
    if name == "quoted-printable":
        return decode_quoted_printable(payload)
    if name == "x-uuencode":
        return decode_uuencode(payload)
    return payload
