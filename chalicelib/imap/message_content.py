"""What ``messageNew`` events carry beyond the listing: which body sections and headers to fetch.

A :class:`ContentRequest` (built from the ``notifyText``/``notifyTextSize``/``notifyHeaders``
settings) says what to fetch; the watcher's listing FETCH (:mod:`chalicelib.imap.watch`)
asks for it and hands the bytes over as :class:`FetchedContent` on each summary. Decoding
is not done here (see :mod:`chalicelib.services.notify_content`).

How the text gets fetched without a round trip of its own, most of the time::

    UID FETCH <new uids> (UID FLAGS ... BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (... names)]
                          BODY.PEEK[1]<0.16384>)        <- section 1 exists in every message;
                                                           whether it is text we learn now
    text parts == ["1"], fetched whole (a single-part      -> done
    message, or mixed with a short text first)
    else: one more UID FETCH per distinct list of what     -> BODY.PEEK[2]<0.n>, or the rest
    is missing (multipart/alternative's html, ...)            of 1: BODY.PEEK[1]<16384.m>

Every text part ends up fetched as ``<0.n>`` with ``n`` from
:func:`~chalicelib.imap.messages.partial_fetch_limit` (or whole when smaller), exactly as
the mail API fetches it, so what the event decodes never depends on the guess; a wrong
guess (section 1 is a multipart or an attachment) costs at most 16 KiB we drop.
The follow-up FETCHes are split so that none can bring more than about 8 MiB
(:meth:`ContentRequest.fetch_bound`): a folder that fills with big messages at once does not
pull hundreds of megabytes in one answer.

Invariants: only ``BODY.PEEK`` (never sets ``\\Seen``); header names that are not IMAP
atoms go out as quoted strings, so no stored setting can break the command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.imap.messages import (
    PARTIAL_FETCH_SLACK,
    SUMMARY_HEADERS,
    MessageSummary,
    partial_fetch_limit,
    partial_fetch_octets,
)
from chalicelib.mime.headers import HEADER_NAME_PATTERN
from chalicelib.mime.structure import parse_bodystructure

ALL_HEADERS = "*"
SPECULATIVE_SECTION = "1"
SPECULATIVE_BYTES = 16 * 1024
# RFC 3501 atom-specials (plus ']', which ends the section): such names must be quoted.
_ATOM = re.compile(r"^[!#$&'+-Z^-z|~]+$")
_FIELD_NAME = re.compile(HEADER_NAME_PATTERN)

# (section, first octet, octet count or None for all of it)
Sections = tuple[tuple[str, int, int | None], ...]


@dataclass(frozen=True)
class ContentRequest:
    """``text_bytes``: decoded bytes wanted per text kind (None: no text). ``headers``:
    lowercased names, or ``("*",)`` for every header."""

    text_bytes: int | None = None
    headers: tuple[str, ...] = ()

    @classmethod
    def build(cls, text_bytes: int | None, headers: Iterable[str]) -> ContentRequest:
        names: list[str] = []
        for name in headers:
            lowered = name.strip().lower()
            if lowered == ALL_HEADERS:
                return cls(text_bytes, (ALL_HEADERS,))
            if _FIELD_NAME.match(lowered) and lowered not in names:
                names.append(lowered)
        return cls(text_bytes, tuple(names))

    @property
    def empty(self) -> bool:
        return self.text_bytes is None and not self.headers

    @property
    def all_headers(self) -> bool:
        return self.headers == (ALL_HEADERS,)

    def header_item(self) -> str:
        """The listing's header item, widened to the requested headers."""
        if self.all_headers:
            return "BODY.PEEK[HEADER]"
        wanted = [*SUMMARY_HEADERS, *(name.upper() for name in self.headers if name.upper() not in SUMMARY_HEADERS)]
        return f"BODY.PEEK[HEADER.FIELDS ({' '.join(_astring(name) for name in wanted)})]"

    def speculative_items(self) -> list[str]:
        """Fetched with the listing: the start of section 1 (see the module docstring)."""
        return [] if self.text_bytes is None else [_section_item((SPECULATIVE_SECTION, 0, SPECULATIVE_BYTES))]

    def plan_text(self, summary: MessageSummary, fetched: dict[str, bytes]) -> tuple[dict[str, bytes], Sections]:
        """What to keep of ``fetched`` (the text parts; a guess that missed is dropped) and
        what is still to fetch of ``summary``'s text parts."""
        if self.text_bytes is None:
            return {}, ()
        text = parse_bodystructure(summary.bodystructure).text
        kept: dict[str, bytes] = {}
        missing: list[tuple[str, int, int | None]] = []
        for ref in (*text.plain, *text.html):
            limit = partial_fetch_limit(ref.encoded_size, self.text_bytes)
            if ref.part not in fetched:
                missing.append((ref.part, 0, limit))
                continue
            kept[ref.part] = have = fetched[ref.part]
            if len(have) == SPECULATIVE_BYTES and (ref.encoded_size if limit is None else limit) > len(have):
                # The rest of a part the guess fetched the start of; a count beyond its end
                # returns what there is (servers' BODYSTRUCTURE sizes are not always exact).
                missing.append((ref.part, len(have), (limit or ref.encoded_size + PARTIAL_FETCH_SLACK) - len(have)))
        return kept, tuple(missing)

    def fetch_bound(self, sections: Sections) -> int:
        """The most octets a FETCH of ``sections`` can return for one message."""
        whole = partial_fetch_octets(self.text_bytes or 0)  # a part fetched whole is no bigger
        return sum(count if count is not None else whole for _, _, count in sections) or 1


@dataclass(frozen=True)
class FetchedContent:
    """The raw bytes fetched for a :class:`ContentRequest`: text sections by number (the
    headers are in the summary's own header block)."""

    request: ContentRequest
    sections: dict[str, bytes]


def section_items(sections: Sections) -> list[str]:
    return [_section_item(section) for section in sections]


def _section_item(section: tuple[str, int, int | None]) -> str:
    number, start, count = section
    return f"BODY.PEEK[{number}]" + (f"<{start}.{count}>" if count is not None else "")


def _astring(name: str) -> str:
    if _ATOM.match(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
