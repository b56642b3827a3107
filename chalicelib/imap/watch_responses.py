"""Raw IMAP responses the watcher reads, and what they mean. Pure: bytes in, values out.

The watcher runs its commands itself (``SELECT`` with QRESYNC, ``UID FETCH ...
(CHANGEDSINCE m VANISHED)``, ``NOTIFY``, ``IDLE``) because imapclient has no API for
them and would file ``VANISHED`` away where nobody reads it. This module is the only
place those lines are interpreted, so it is tested with raw server lines.

A response arrives as imaplib hands it over: a list whose items are ``bytes`` lines and
``(line, literal)`` pairs for every ``{n}`` literal (:func:`read_response` builds it from a
connection). :func:`parse_untagged` turns one into an :class:`Untagged`; the functions
below pick facts out of a command's untagged responses.

Quirks handled here:
- ``MODSEQ`` is a parenthesised list: ``MODSEQ (12)`` (imapclient gives ``(12,)``).
- Servers may omit ``UID`` in unsolicited FETCH (during IDLE); such lines are hints only.
- Folder names are modified UTF-7 and may be quoted strings, atoms or literals.
- ``* LIST (\\NonExistent) "/" "x"`` under NOTIFY means "x" was deleted (RFC 5465).
- ``* STATUS`` for a mailbox under NOTIFY carries only the items that changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from imapclient import imap_utf7
from imapclient.response_parser import parse_fetch_response, parse_response

from chalicelib.sync.checkpoint import MessageState
from chalicelib.sync.mailboxes import ListedMailbox
from chalicelib.sync.uidset import UidSet

Part = bytes | tuple[bytes, bytes]
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_NUMBERED = re.compile(rb"^\* (\d+) ([A-Z-]+)(?: (.*))?$", re.DOTALL)
_KEYWORD = re.compile(rb"^\* ([A-Z-]+)(?: (.*))?$", re.DOTALL)
_RESP_CODE = re.compile(rb"^\[([A-Z-]+)(?: ([^\]]*))?\]")
SPECIAL_USE_FLAGS = frozenset({"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash",
                               "\\Important"})
UNSELECTABLE = frozenset({"\\NOSELECT", "\\NONEXISTENT"})


class LineSource(Protocol):
    def _get_line(self) -> bytes: ...
    def read(self, size: int) -> bytes: ...


def read_response(source: LineSource) -> list[Part]:
    """Read one complete response (a line plus any literals it announces)."""
    parts: list[Part] = []
    line = source._get_line()
    while (match := _LITERAL.search(line)) is not None:
        parts.append((line, source.read(int(match.group(1)))))
        line = source._get_line()
    parts.append(line)
    return parts


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


def _parsed(response: Untagged) -> tuple[Any, ...]:
    return parse_response(response.parts) if response.parts and response.parts != [b""] else ()


def decode_mailbox_name(raw: Any) -> str:
    if isinstance(raw, int):
        raw = str(raw).encode()
    return imap_utf7.decode(raw)


def encode_mailbox_name(path: str) -> bytes:
    """A mailbox name as a quoted string argument (modified UTF-7, quotes escaped)."""
    encoded = imap_utf7.encode(path)
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


# -- SELECT / STATUS ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MailboxStatus:
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    messages: int | None = None
    unseen: int | None = None  # asked for only where there is no HIGHESTMODSEQ


def select_status(responses: Iterable[Untagged]) -> MailboxStatus:
    """UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and EXISTS from a SELECT's untagged responses."""
    values: dict[str, int | None] = {}
    for response in responses:
        if response.kind == "EXISTS":
            values["messages"] = response.number
        elif response.kind == "OK" and (code := response_code(response)) is not None:
            name, argument = code
            if name in ("UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ"):
                values[name.lower()] = int(argument)
            elif name == "NOMODSEQ":
                values["highestmodseq"] = None
    return MailboxStatus(**values)


def status_response(response: Untagged) -> tuple[str, MailboxStatus]:
    """``* STATUS "Work" (MESSAGES 2 UIDNEXT 5 ...)`` -> ("Work", MailboxStatus)."""
    parsed = _parsed(response)
    name, items = parsed[0], parsed[-1]
    pairs = {items[i].decode().upper(): items[i + 1] for i in range(0, len(items) - 1, 2)}
    return decode_mailbox_name(name), MailboxStatus(
        uidvalidity=pairs.get("UIDVALIDITY"), uidnext=pairs.get("UIDNEXT"),
        highestmodseq=pairs.get("HIGHESTMODSEQ"), messages=pairs.get("MESSAGES"), unseen=pairs.get("UNSEEN"))


# -- FETCH / VANISHED / SEARCH -------------------------------------------------------------------


@dataclass(frozen=True)
class FetchedState:
    state: MessageState
    modseq: int | None


def _modseq(value: Any) -> int | None:
    if isinstance(value, tuple):
        value = value[0] if value else None
    return int(value) if value is not None else None


def _names(values: Sequence[Any]) -> frozenset[str]:
    return frozenset(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values)


def fetched_states(responses: Iterable[Untagged]) -> dict[int, FetchedState]:
    """UID -> flags (+ Gmail labels) and MODSEQ from FETCH responses that carry a UID."""
    result: dict[int, FetchedState] = {}
    for response in responses:
        if response.kind != "FETCH":
            continue
        for _, item in parse_fetch_response(response.parts, uid_is_key=False).items():
            uid = item.get(b"UID")
            if uid is None or b"FLAGS" not in item:
                continue
            labels = _names(item[b"X-GM-LABELS"]) if b"X-GM-LABELS" in item else None
            result[int(uid)] = FetchedState(MessageState(_names(item[b"FLAGS"]), labels),
                                            _modseq(item.get(b"MODSEQ")))
    return result


def vanished_uids(responses: Iterable[Untagged]) -> UidSet:
    """Union of every ``* VANISHED [(EARLIER)] <uid-set>``."""
    result = UidSet()
    for response in responses:
        if response.kind == "VANISHED":
            text = response.text.decode("ascii").strip()
            if text.upper().startswith("(EARLIER)"):
                text = text[len("(EARLIER)"):].strip()
            result = result | UidSet.parse_imap(text)
    return result


def searched_uids(responses: Iterable[Untagged]) -> UidSet:
    """UIDs from ``* SEARCH 1 2 3`` or ``* ESEARCH (TAG "x") UID ALL 1:3``."""
    result = UidSet()
    for response in responses:
        if response.kind == "SEARCH":
            result = result | UidSet(int(n) for n in response.text.split())
        elif response.kind == "ESEARCH":
            words = response.text.split()
            for index, word in enumerate(words[:-1]):
                if word.upper() == b"ALL":
                    result = result | UidSet.parse_imap(words[index + 1])
    return result


# -- LIST ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListEntry:
    mailbox: ListedMailbox
    selectable: bool
    old_name: str | None = None


def list_entry(response: Untagged) -> ListEntry:
    parsed = _parsed(response)
    attributes, delimiter, name = parsed[0], parsed[1], parsed[2]
    flags = {a.decode() if isinstance(a, bytes) else str(a) for a in attributes}
    special = next((f for f in sorted(flags) if f.title() in SPECIAL_USE_FLAGS or f in SPECIAL_USE_FLAGS), None)
    old_name = None
    for extended in parsed[3:]:
        if isinstance(extended, tuple) and len(extended) >= 2 and extended[0].upper() == b"OLDNAME":
            old_name = decode_mailbox_name(extended[1][0])
    path = decode_mailbox_name(name)
    delimiter_text = delimiter.decode() if isinstance(delimiter, bytes) else None
    return ListEntry(ListedMailbox(path, delimiter_text, special),
                     selectable=not ({f.upper() for f in flags} & UNSELECTABLE), old_name=old_name)


def listed_mailboxes(responses: Iterable[Untagged]) -> dict[str, ListedMailbox]:
    """Selectable mailboxes by path."""
    entries = (list_entry(r) for r in responses if r.kind == "LIST")
    return {e.mailbox.path: e.mailbox for e in entries if e.selectable}


# -- IDLE / NOTIFY hints -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hints:
    """What unsolicited responses say needs a look (they are hints: we always reconcile by UID).

    ``statuses`` and ``list_entries`` keep what NOTIFY reported, so the caller can tell a
    real change from noise (Dovecot re-announces folders it auto-creates, for instance).
    """

    selected_changed: bool = False
    mailboxes: frozenset[str] = frozenset()
    mailbox_list_changed: bool = False
    bye: bool = False
    statuses: tuple[tuple[str, MailboxStatus], ...] = ()
    list_entries: tuple[ListEntry, ...] = ()

    def __or__(self, other: Hints) -> Hints:
        return Hints(self.selected_changed or other.selected_changed, self.mailboxes | other.mailboxes,
                     self.mailbox_list_changed or other.mailbox_list_changed, self.bye or other.bye,
                     self.statuses + other.statuses, self.list_entries + other.list_entries)

    def __bool__(self) -> bool:
        return self.selected_changed or bool(self.mailboxes) or self.mailbox_list_changed or self.bye


SELECTED_CHANGE_KINDS = frozenset({"EXISTS", "EXPUNGE", "FETCH", "VANISHED"})


def hints_from(responses: Iterable[Untagged]) -> Hints:
    hints = Hints()
    for response in responses:
        if response.kind in SELECTED_CHANGE_KINDS:
            hints = hints | Hints(selected_changed=True)
        elif response.kind == "STATUS":
            path, status = status_response(response)
            hints = hints | Hints(mailboxes=frozenset({path}), statuses=((path, status),))
        elif response.kind == "LIST":
            hints = hints | Hints(mailbox_list_changed=True, list_entries=(list_entry(response),))
        elif response.kind == "BYE":
            hints = hints | Hints(bye=True)
    return hints
