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

:class:`StreamDecoder` does the same work window by window (large attachments are fetched
in partial ``BODY.PEEK[section]<offset.length>`` windows and never held whole): it holds
back only what a window may have cut in half (under four base64 characters, a
quoted-printable line, a uuencode line) and gives the same bytes as
:func:`decode_transfer_encoding` on the whole payload, with one difference for uuencode:
lines before a ``begin`` header are dropped only within the first
:data:`UU_HEADER_SEARCH_LINES` lines.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterator

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


UU_HEADER_SEARCH_LINES = 64
DECODE_SLICE_BYTES = 1024 * 1024


class StreamDecoder:
    """Incremental :func:`decode_transfer_encoding`: ``feed`` windows in order, then ``finish``."""

    def __init__(self, encoding: str | bytes | None) -> None:
        self.encoding = normalize_transfer_encoding(encoding)
        self._pending = b""
        # x-uuencode: lines seen before a "begin" header, until the header or the search limit.
        self._uu_searching = True
        self._uu_ended = False
        self._uu_held: list[bytes] = []

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of the next window, in pieces: a window is decoded
        :data:`DECODE_SLICE_BYTES` at a time, so decoding copies slices, not windows."""
        if self.encoding not in ("base64", "quoted-printable", "x-uuencode"):
            if data:
                yield data
            return
        view = memoryview(data)
        for start in range(0, len(view), DECODE_SLICE_BYTES):
            piece = self._feed_slice(bytes(view[start:start + DECODE_SLICE_BYTES]))
            if piece:
                yield piece

    def _feed_slice(self, data: bytes) -> bytes:
        if self.encoding == "base64":
            return self._base64(data, final=False)
        if self.encoding == "quoted-printable":
            return self._complete_lines(data, decode_quoted_printable)
        return self._complete_lines(data, self._uu_lines)

    def finish(self) -> bytes:
        if self.encoding == "base64":
            return self._base64(b"", final=True)
        pending, self._pending = self._pending, b""
        if self.encoding == "quoted-printable":
            return decode_quoted_printable(pending)
        if self.encoding == "x-uuencode":
            out = self._uu_lines(pending)
            if self._uu_searching:  # no header at all: every line is body, as in decode_uuencode
                out += self._uu_release_held()
            return out
        return pending

    def _base64(self, data: bytes, *, final: bool) -> bytes:
        # Runs closed by padding decode whole; the open last run keeps its last < 4 characters.
        runs = _PADDING_RUN.split(self._pending + _NOT_BASE64.sub(b"", data))
        self._pending = b""
        if not final:
            last = runs[-1]
            cut = len(last) - len(last) % 4
            runs[-1], self._pending = last[:cut], last[cut:]
        return b"".join(decode_base64_lenient(run) for run in runs if run)

    def _complete_lines(self, data: bytes, decode: Callable[[bytes], bytes]) -> bytes:
        buffered = self._pending + data
        end = buffered.rfind(b"\n") + 1
        self._pending = buffered[end:]
        return decode(buffered[:end]) if end else b""

    def _uu_lines(self, data: bytes) -> bytes:
        out = bytearray()
        for line in data.splitlines():
            if self._uu_ended:
                break
            if not self._uu_searching:
                out += self._uu_body_line(line)
            elif _UU_BEGIN.match(line):
                self._uu_searching, self._uu_held = False, []
            else:
                self._uu_held.append(line)
                if len(self._uu_held) >= UU_HEADER_SEARCH_LINES:
                    out += self._uu_release_held()
        return bytes(out)

    def _uu_release_held(self) -> bytes:
        held, self._uu_held, self._uu_searching = self._uu_held, [], False
        out = bytearray()
        for line in held:
            if self._uu_ended:
                break
            out += self._uu_body_line(line)
        return bytes(out)

    def _uu_body_line(self, line: bytes) -> bytes:
        stripped = line.strip()
        if stripped == b"end":
            self._uu_ended = True
            return b""
        return _decode_uu_line(line) if stripped and stripped != b"`" else b""
