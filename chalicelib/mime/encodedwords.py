"""RFC 2047 header text: unfolding, encoded-words and raw 8-bit header bytes -> ``str``.

Every function accepts ``str`` (as the ``email`` package gives it, 8-bit bytes carried as
surrogate escapes), ``bytes`` (as imapclient gives ENVELOPE/BODYSTRUCTURE strings) or None.
Nothing raises on malformed input.

Decoding a header value, in order:
1. unfold (CRLF + white space -> one space; Outlook folds with a tab, which would otherwise
   stay in the subject), and turn any other stray CR/LF/NUL into spaces;
2. split into RFC 2047 encoded-words and raw text. White space between two encoded-words
   is dropped (RFC 2047 section 6.2); adjacent words in the same charset are joined as
   *bytes* before decoding, because PHP's ``mb_encode_mimeheader`` and old Outlook split
   multibyte characters across words;
3. Q and B payloads are decoded leniently (bad ``=XY`` escapes stay literal, base64 with
   missing padding or junk still decodes); charsets go through :mod:`.charsets`, so
   ``x-unknown``, ``utf8``, ``unicode-1-1-utf-7`` or an empty charset all work;
4. raw 8-bit text (no encoded-words, as Gmail's SMTPUTF8 path, Exchange and many Asian
   mailers send it) is decoded by the same chain: UTF-8 first, then the caller's hint
   (the message's body charset), then detection. Raw ISO-2022-JP escapes (old Japanese
   mailers) are recognised too.
"""

from __future__ import annotations

import binascii
import re

from chalicelib.mime.charsets import decode_bytes
from chalicelib.mime.transfer import decode_base64_lenient

HeaderInput = str | bytes | None

_FOLD = re.compile(rb"\r?\n[ \t]")
_STRAY_CONTROL = re.compile(rb"[\r\n\x00]")
_ENCODED_WORD = re.compile(rb"=\?([^?\s]*)\?([QqBb])\?([^?]*?)\?=")
_WHITESPACE = re.compile(rb"[ \t]*")
ENCODED_WORD_TEXT = re.compile(r"=\?[^?\s]*\?[QqBb]\?[^?]*?\?=")


def raw_header_bytes(value: HeaderInput) -> bytes:
    """The header's bytes as on the wire (surrogate escapes from the ``email`` parser undone)."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogateescape")


def unfold_header_bytes(value: HeaderInput) -> bytes:
    """Header bytes on one line: folds become one space, stray CR/LF/NUL become spaces."""
    return _STRAY_CONTROL.sub(b" ", _FOLD.sub(b" ", raw_header_bytes(value)))


def _decode_encoded_word_payload(encoding: bytes, payload: bytes) -> bytes:
    if encoding in b"Bb":
        return decode_base64_lenient(payload)
    return binascii.a2b_qp(payload, header=True)


def decode_header_value(value: HeaderInput, *, fallback_charset: str | None = None) -> str:
    """Unfold and decode a header value to text (see the module docstring for the rules)."""
    raw = unfold_header_bytes(value)
    pieces: list[str] = []
    pending_charset: bytes | None = None
    pending = bytearray()

    def flush_pending() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            pieces.append(decode_bytes(bytes(pending), pending_charset).text)
            pending.clear()
            pending_charset = None

    position = 0
    for match in _ENCODED_WORD.finditer(raw):
        between = raw[position:match.start()]
        # Only white space separates this word from the previous one: RFC 2047 drops it.
        if not (pending_charset is not None and _WHITESPACE.fullmatch(between)):
            flush_pending()
            if between:
                pieces.append(decode_raw_header_text(between, fallback_charset))
        charset, encoding, payload = match.groups()
        if pending_charset is not None and charset.lower() != pending_charset.lower():
            flush_pending()
        pending_charset = charset
        pending.extend(_decode_encoded_word_payload(encoding, payload))
        position = match.end()
    flush_pending()
    if position < len(raw):
        pieces.append(decode_raw_header_text(raw[position:], fallback_charset))
    return "".join(pieces).strip()


def decode_raw_header_text(data: bytes, fallback_charset: str | None = None) -> str:
    """Raw header bytes (no encoded-word processing) -> text: 8-bit text is detected."""
    if data.isascii() and b"\x1b" not in data:
        return data.decode("ascii")
    return decode_bytes(data, None, hint=fallback_charset).text
