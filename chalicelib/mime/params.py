"""MIME header parameters (``Content-Type``/``Content-Disposition``) -> ``{name: decoded value}``.

Both sources of parameters end up in :func:`resolve_params`, so a filename is decoded the
same way whether it comes from a raw header (:mod:`.decode`) or from an IMAP BODYSTRUCTURE
(:mod:`.structure`, where Dovecot hands out RFC 2231 pieces either raw or merged):

- RFC 2231 continuations and charsets: ``filename*0*=UTF-8''%E6%97%A5; filename*1*=%E6%9C%AC``,
  ``filename*=UTF-8'ja'...``, mixed encoded/plain segments, out-of-order segments. The charset
  goes through :mod:`.charsets` (an empty or unknown one means detection);
- when both ``filename`` and ``filename*`` are present (Thunderbird sends both) the RFC 2231
  value wins;
- plain values are RFC 2047-decoded (Outlook and Gmail write ``name="=?UTF-8?B?...?="``) and
  raw 8-bit values are detected like any 8-bit header text.

:func:`split_header_params` is the tolerant tokenizer for raw header values: quoted strings
with ``;`` inside, backslash escapes, a missing ``;`` between parameters (``text/plain
charset=utf-8``, seen from old PHP scripts) and unquoted values with spaces
(``name=My File.pdf``, from some scanners and ERP exports). Parameter names are lowercased.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

from chalicelib.mime.charsets import decode_bytes
from chalicelib.mime.encodedwords import HeaderInput, decode_header_value, raw_header_bytes, unfold_header_bytes

_CONTINUATION = re.compile(r"^(?P<base>[^*]+)(?:\*(?P<number>\d+))?(?P<extended>\*)?$")
_PARAM_NAME = re.compile(rb"[\s;]*([^=;\s\"]+)\s*=\s*")
_NEXT_PARAM = re.compile(rb"\s+[^=;\s\"]+\s*=")
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)("?)')

RawPairs = list[tuple[bytes, bytes]]


def split_header_params(value: HeaderInput) -> tuple[str, RawPairs]:
    """``'attachment; filename="a;b.pdf"'`` -> ``("attachment", [(b"filename", b"a;b.pdf")])``."""
    raw = unfold_header_bytes(value).strip()
    main = re.match(rb"[^;\s]*", raw)
    position = main.end() if main else 0
    pairs: RawPairs = []
    while position < len(raw):
        name = _PARAM_NAME.match(raw, position)
        if name is None:
            # Junk without "=": skip to the next ";".
            semicolon = raw.find(b";", position + 1)
            if semicolon < 0:
                break
            position = semicolon
            continue
        position = name.end()
        quoted = _QUOTED.match(raw, position)
        if quoted:
            param_value = re.sub(rb"\\(.)", rb"\1", quoted.group(1))
            position = quoted.end()
        else:
            end = raw.find(b";", position)
            end = len(raw) if end < 0 else end
            following = _NEXT_PARAM.search(raw, position, end)
            end = following.start() if following else end
            param_value = raw[position:end].strip()
            position = end
        pairs.append((name.group(1).lower(), param_value))
    return main.group().decode("latin-1").lower() if main else "", pairs


def resolve_params(pairs: Iterable[tuple[HeaderInput, HeaderInput]]) -> dict[str, str]:
    """Raw ``(name, value)`` pairs -> decoded values keyed by lowercased name (first one wins)."""
    plain: dict[str, bytes] = {}
    segments: dict[str, list[tuple[int, bytes, bool]]] = {}
    for raw_name, raw_value in pairs:
        name = raw_header_bytes(raw_name).decode("latin-1").strip().lower()
        value = raw_header_bytes(raw_value)
        found = _CONTINUATION.match(name)
        if not found:
            continue
        base, number, extended = found.group("base", "number", "extended")
        if number is None and not extended:
            plain.setdefault(base, value)
        else:
            segments.setdefault(base, []).append((int(number or 0), value, bool(extended)))
    resolved = {name: decode_header_value(value) for name, value in plain.items()}
    for name, parts in segments.items():
        resolved[name] = _join_rfc2231(parts)
    return resolved


def _join_rfc2231(parts: list[tuple[int, bytes, bool]]) -> str:
    parts.sort(key=lambda part: part[0])
    charset: str | None = None
    data = bytearray()
    for index, (_, value, extended) in enumerate(parts):
        if extended:
            if index == 0 and value.count(b"'") >= 2:
                label, _, value = value.partition(b"'")
                value = value.partition(b"'")[2]  # the language tag is of no use to us
                charset = label.decode("latin-1")
            data += urllib.parse.unquote_to_bytes(value)
        else:
            data += value
    return decode_bytes(bytes(data), charset).text.strip()


def parse_content_id(value: HeaderInput) -> str | None:
    """``" <image001.png@01D9> "`` -> ``"image001.png@01D9"``; None when empty."""
    text = decode_header_value(value)
    bracketed = re.search(r"<([^<>]*)>", text)
    content_id = (bracketed.group(1) if bracketed else text).strip()
    return content_id or None

