"""Raw IMAP server lines as the parsers read them, for tests that feed captured answers.

Owns :class:`RawLines` (the two methods of imaplib's IMAP4 that
:func:`chalicelib.imap.wire.read_lines` uses) and :func:`untagged`, the watcher's view of
a capture: one parsed response at a time. A capture must end in CRLF; a line without it
raises ``EOFError``, as a connection closed mid-line would.
"""

from __future__ import annotations

import io

from chalicelib.imap import watch_responses as r
from chalicelib.imap import wire


class RawLines:
    """What imaplib offers a reader: CRLF lines and exact-size literal reads."""

    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)

    def _get_line(self) -> bytes:
        line = self.stream.readline()
        if not line.endswith(b"\r\n"):
            raise EOFError("unterminated line")
        return line[:-2]

    def read(self, size: int) -> bytes:
        return self.stream.read(size)


def untagged(raw: bytes) -> list[r.Untagged]:
    """The watcher's view of ``raw``: one parsed response at a time."""
    source = RawLines(raw)
    found = []
    while source.stream.tell() < len(raw):
        found.append(r.parse_untagged(wire.read_lines(source)))
    return found
