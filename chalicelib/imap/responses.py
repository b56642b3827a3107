"""Untagged IMAP responses as we read them ourselves: ``* <n> KIND ...`` and ``* KIND ...``. Pure.

A response arrives as imaplib hands it over: a list whose items are ``bytes`` lines and
``(line, literal)`` pairs for every ``{n}`` literal (:func:`chalicelib.imap.wire.read_lines`
builds it from a connection). :func:`parse_untagged` names its kind and keeps the payload
(without ``* KIND ``) for the parsers: :mod:`.folders` for LIST/STATUS, :mod:`.watch_responses`
for SELECT, FETCH, VANISHED, SEARCH and the IDLE/NOTIFY hints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.imap.wire import Part

_NUMBERED = re.compile(rb"^\* (\d+) ([A-Z-]+)(?: (.*))?$", re.DOTALL)
_KEYWORD = re.compile(rb"^\* ([A-Z-]+)(?: (.*))?$", re.DOTALL)
_RESP_CODE = re.compile(rb"^\[([A-Z-]+)(?: ([^\]]*))?\]")


@dataclass(frozen=True)
class Untagged:
    """``* <number> KIND rest`` or ``* KIND rest``; ``parts`` keeps the payload for parsers."""

    kind: str
    number: int | None
    parts: list[Part]
    text: bytes  # the payload of a one-line response after the kind (for OK/NO/BYE codes)


def _strip(parts: list[Part], prefix_length: int) -> list[Part]:
    first = parts[0]
    if isinstance(first, tuple):
        return [(first[0][prefix_length:], first[1]), *parts[1:]]
    return [first[prefix_length:], *parts[1:]]


def parse_untagged(parts: list[Part]) -> Untagged:
    head = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
    if (match := _NUMBERED.match(head)) is not None:
        kind = match.group(2).decode()
        # Keep "<n> (...)": the shape imapclient's FETCH parser expects.
        payload = _strip(parts, 2)
        if isinstance(payload[0], tuple):
            payload[0] = (payload[0][0].replace(b" " + match.group(2), b"", 1), payload[0][1])
        else:
            payload[0] = payload[0].replace(b" " + match.group(2), b"", 1)
        return Untagged(kind, int(match.group(1)), payload, match.group(3) or b"")
    if (match := _KEYWORD.match(head)) is not None:
        kind = match.group(1).decode()
        return Untagged(kind, None, _strip(parts, 3 + len(kind)), match.group(2) or b"")
    raise ValueError(f"not an untagged response: {head[:60]!r}")


def response_code(response: Untagged) -> tuple[str, bytes] | None:
    """``* OK [UIDNEXT 5] ...`` -> ("UIDNEXT", b"5")."""
    match = _RESP_CODE.match(response.text)
    return (match.group(1).decode(), match.group(2) or b"") if match else None


