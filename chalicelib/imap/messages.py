"""Reading messages: select a mailbox, page through it, fetch summaries, parts and sources.

Every function takes an :class:`~chalicelib.imap.connection.ImapConnection` and returns
typed values; the session's verbs (:mod:`.session`) have already turned answers into values,
except FETCH items, which :func:`summary_from_fetch` turns into a :class:`MessageSummary` here.

Reads use EXAMINE (read-only: nothing a read does can change the mailbox, and servers
do not clear ``\\Recent``) and ``BODY.PEEK`` (no implicit ``\\Seen``). Messages are
addressed by UID, with one exception that is safe: a listing page is fetched by
*sequence numbers* computed from the EXISTS count the EXAMINE just returned, in the
next command on the same connection. RFC 3501 7.4.1 forbids EXPUNGE responses during
FETCH, STORE and SEARCH, so the numbers cannot shift between the two commands; a page
costs one FETCH instead of a UID SEARCH over the whole mailbox. Sequence numbers are never
stored or returned.

Server differences handled here: OBJECTID (RFC 8474) ``EMAILID``/``THREADID`` and Gmail's
``X-GM-MSGID``/``X-GM-THRID``/``X-GM-LABELS`` are fetched only when announced (Dovecot 2.3
has neither; its BAD for an unknown item would fail the whole FETCH); PREVIEW (RFC 8970)
likewise. ESEARCH ``RETURN (COUNT)`` finds a cursor's position in one short answer;
without it a UID SEARCH does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.imap.connection import ImapConnection
from chalicelib.imap.flags import message_flags
from chalicelib.imap.folders import SelectedMailbox

if TYPE_CHECKING:
    from chalicelib.imap.capabilities import Capabilities
    from chalicelib.imap.message_content import FetchedContent

__all__ = ["MessageSummary", "SelectedMailbox", "clean_flags", "fetch_flags", "fetch_sections", "fetch_source",
           "fetch_summaries", "fetch_summaries_by_sequence", "search_uids", "select_mailbox", "summary_from_fetch",
           "summary_items"]

SUMMARY_HEADERS = ("FROM", "SENDER", "REPLY-TO", "TO", "CC", "BCC", "SUBJECT", "DATE", "MESSAGE-ID",
                   "IN-REPLY-TO")
SUMMARY_HEADER_ITEM = f"BODY.PEEK[HEADER.FIELDS ({' '.join(SUMMARY_HEADERS)})]"
BASE_ITEMS = ("UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "BODYSTRUCTURE")
# Encoded octets fetched per decoded byte wanted: quoted-printable can take 3 per byte.
PARTIAL_FETCH_FACTOR = 3
PARTIAL_FETCH_SLACK = 4096


class CapabilityCheck(Protocol):
    """What choosing FETCH items needs of a connection: the mail API's or a watched one."""

    @property
    def capabilities(self) -> Capabilities: ...


@dataclass(frozen=True)
class MessageSummary:
    """What one FETCH tells about a message (headers still raw bytes)."""

    uid: int
    flags: tuple[str, ...]
    size: int
    internal_date: datetime | None
    headers: bytes
    bodystructure: Any
    email_id: str | None = None
    thread_id: str | None = None
    labels: tuple[str, ...] | None = None
    preview: str | None = None
    # Body sections fetched along (``BODY.PEEK[section]<0.n>``) by section number, and what
    # asked for them: see :mod:`chalicelib.imap.message_content`.
    content: FetchedContent | None = None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


clean_flags = message_flags  # FLAGS as API users see them (canonical case, no \\Recent)


def select_mailbox(conn: ImapConnection, path: str, *, readonly: bool = True) -> SelectedMailbox:
    """EXAMINE (``readonly``) or SELECT ``path``; 404 MailboxNotFound when it does not exist."""
    command = "EXAMINE" if readonly else "SELECT"
    return conn.run(command, lambda: conn.session.select(path, readonly=readonly), mailbox=path)


def summary_items(conn: CapabilityCheck, *, header_item: str = SUMMARY_HEADER_ITEM) -> list[str]:
    items = [*BASE_ITEMS, header_item]
    if conn.capabilities.objectid:
        items += ["EMAILID", "THREADID"]
    if conn.capabilities.gmail:
        items += ["X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS"]
    if conn.capabilities.preview:
        items.append("PREVIEW")
    return items


def _body_item(item: dict[bytes, Any], prefix: bytes) -> bytes | None:
    """The value of a ``BODY[...]`` item; servers echo the section with their own spelling."""
    for key, value in item.items():
        if isinstance(key, bytes) and key.upper().startswith(prefix):
            return value if isinstance(value, bytes) else (b"" if value is None else _text(value).encode())
    return None


def body_sections(item: dict[bytes, Any]) -> dict[str, bytes]:
    """The numbered ``BODY[section]`` items of a FETCH (``BODY[1.2]<0>`` -> ``"1.2"``).

    A server answers ``NIL`` for a section the message does not have (Dovecot: ``""``).
    """
    found: dict[str, bytes] = {}
    for key, value in item.items():
        if not isinstance(key, bytes) or not key.upper().startswith(b"BODY["):
            continue
        section = key[5:].split(b"]", 1)[0]
        if section and section.replace(b".", b"").isdigit():
            found[section.decode("ascii")] = value if isinstance(value, bytes) else b""
    return found


def partial_fetch_octets(max_bytes: int) -> int:
    """Encoded octets of a text part that surely hold ``max_bytes`` of decoded text."""
    return max_bytes * PARTIAL_FETCH_FACTOR + PARTIAL_FETCH_SLACK


def partial_fetch_limit(encoded_size: int, max_bytes: int) -> int | None:
    """The ``<0.n>`` to fetch of a text part for ``max_bytes`` of decoded text; None: all of it."""
    limit = partial_fetch_octets(max_bytes)
    return limit if encoded_size > limit else None


def _object_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, tuple):  # OBJECTID answers EMAILID (M6d99ac3275bb4e)
        value = value[0] if value else None
    return _text(value) if value is not None else None


def summary_from_fetch(uid: int, item: dict[bytes, Any]) -> MessageSummary:
    """A :class:`MessageSummary` from one parsed FETCH item of :func:`summary_items`."""
    internal = item.get(b"INTERNALDATE")
    if isinstance(internal, datetime) and internal.tzinfo is None:
        internal = internal.replace(tzinfo=UTC)
    labels = item.get(b"X-GM-LABELS")
    preview = item.get(b"PREVIEW")
    return MessageSummary(
        uid=uid, flags=clean_flags(item.get(b"FLAGS")), size=int(item.get(b"RFC822.SIZE") or 0),
        internal_date=internal if isinstance(internal, datetime) else None,
        headers=_body_item(item, b"BODY[HEADER") or b"", bodystructure=item.get(b"BODYSTRUCTURE"),
        email_id=_object_id(item.get(b"EMAILID") or item.get(b"X-GM-MSGID")),
        thread_id=_object_id(item.get(b"THREADID") or item.get(b"X-GM-THRID")),
        labels=tuple(_text(label) for label in labels) if labels is not None else None,
        preview=_text(preview) if preview else None)


def fetch_summaries_by_sequence(conn: ImapConnection, first: int, last: int) -> list[MessageSummary]:
    """Summaries of sequence numbers ``first..last`` (see the module docstring), newest first."""
    if last < first or last < 1:
        return []
    items = summary_items(conn)
    answer = conn.run("FETCH", lambda: conn.session.fetch(list(range(first, last + 1)), items, by_sequence=True))
    summaries = [summary_from_fetch(int(item[b"UID"]), item) for item in answer.values() if b"UID" in item]
    return sorted(summaries, key=lambda summary: summary.uid, reverse=True)


def fetch_summaries(conn: ImapConnection, uids: list[int], *, full_headers: bool = False) -> list[MessageSummary]:
    """Summaries of ``uids`` that still exist, newest first. ``full_headers``: BODY.PEEK[HEADER]."""
    if not uids:
        return []
    items = summary_items(conn, header_item="BODY.PEEK[HEADER]" if full_headers else SUMMARY_HEADER_ITEM)
    answer = conn.run("UID FETCH", lambda: conn.session.fetch(uids, items))
    return sorted((summary_from_fetch(uid, item) for uid, item in answer.items()), key=lambda s: s.uid, reverse=True)


def count_below_uid(conn: ImapConnection, uid: int) -> int:
    """How many messages have a UID below ``uid``: the sequence number of the newest of them."""
    if uid <= 1:
        return 0
    bound = f"1:{uid - 1}".encode()
    if conn.capabilities.esearch:
        return conn.run("UID SEARCH", lambda: conn.session.search_count([b"UID", bound]))
    return len(search_uids(conn, [b"UID", bound]))


def search_uids(conn: ImapConnection, criteria: list[bytes], *, charset: str | None = None) -> list[int]:
    """``UID SEARCH`` with ready-made criteria tokens (8-bit ones go out as literals)."""
    return conn.run("UID SEARCH", lambda: conn.session.search(criteria, charset=charset))


def fetch_sections(conn: ImapConnection, uid: int, sections: list[tuple[str, int | None]],
                   *, extra_items: tuple[str, ...] = ()) -> tuple[dict[str, bytes], dict[bytes, Any]] | None:
    """``BODY.PEEK[section]`` (or ``<0.max>`` partial) of several parts in one FETCH.

    Returns (bytes by section, the other items), or None when the message is gone.
    """
    items = [f"BODY.PEEK[{section}]" + (f"<0.{limit}>" if limit is not None else "") for section, limit in sections]
    answer = conn.run("UID FETCH", lambda: conn.session.fetch([uid], [*items, *extra_items]))
    item = answer.get(uid)
    if item is None:
        return None
    found = {section: _body_item(item, f"BODY[{section}]".encode()) or b"" for section, _ in sections}
    return found, item


def fetch_source(conn: ImapConnection, uid: int) -> bytes | None:
    """The raw message (``BODY.PEEK[]``), or None when it is gone."""
    fetched = fetch_sections(conn, uid, [("", None)])
    return None if fetched is None else fetched[0][""]


class MessageGoneError(Exception):
    """The message was expunged while its windows were being fetched."""


def fetch_window(conn: ImapConnection, uid: int, section: str, offset: int, length: int,
                 *, extra_items: tuple[str, ...] = ()) -> tuple[bytes, dict[bytes, Any]] | None:
    """``BODY.PEEK[section]<offset.length>``: at most ``length`` octets, fewer at the end.

    Returns (the octets, the other items), or None when the message is gone. Past the end
    servers answer an empty string (RFC 3501 6.4.5; Dovecot) or NIL: both are ``b""``.
    """
    item_name = f"BODY.PEEK[{section}]<{offset}.{length}>"
    answer = conn.run("UID FETCH", lambda: conn.session.fetch([uid], [item_name, *extra_items]))
    item = answer.get(uid)
    if item is None:
        return None
    return _body_item(item, f"BODY[{section}]".encode()) or b"", item


def iter_windows(conn: ImapConnection, uid: int, section: str, *, start: int, length: int) -> Iterator[bytes]:
    """The rest of a section from octet ``start``, one ``length``-octet partial FETCH at a time.

    Ends after the first short window, so a server whose announced size is off (RFC822.SIZE
    is an estimate on some servers) still yields every octet. MessageGoneError when the
    message disappears midway.
    """
    offset = start
    while True:
        fetched = fetch_window(conn, uid, section, offset, length)
        if fetched is None:
            raise MessageGoneError(f"uid {uid} disappeared at octet {offset}")
        data = fetched[0]
        received = len(data)
        del fetched  # its item dict holds the octets too
        if data:
            yield data
        del data  # not kept alive while the next window is fetched
        if received < length:
            return
        offset += received


def fetch_flags(conn: ImapConnection, uids: list[int]) -> dict[int, tuple[str, ...]]:
    if not uids:
        return {}
    answer = conn.run("UID FETCH", lambda: conn.session.fetch(uids, ["FLAGS"]))
    return {uid: clean_flags(item.get(b"FLAGS")) for uid, item in answer.items()}
