"""The folder model: what LIST and STATUS say about mailboxes, parsed one way for the mail
API and the watcher alike. Pure: response payloads in, values out.

    * LIST (\\HasNoChildren \\Sent) "/" "Sent"      -> ListEntry(ListedMailbox("Sent", "/", flags=...))
    * XLIST (\\HasNoChildren \\Spam) "/" "[Gmail]/Spam"   (same shape, Gmail's older roles)
    * STATUS "Work" (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 4)  -> ("Work", MailboxStatus(...))

A payload is a response without its ``* LIST `` prefix, as imaplib files it or as
:func:`chalicelib.imap.wire.read_lines` reads it: ``bytes`` lines and ``(line, literal)``
pairs. Names are decoded from modified UTF-7; a name sent as a number-like atom ("2024")
stays a name. Attributes are put in canonical case once, here (:mod:`.flags`).

Roles: :func:`with_special_uses` gives every listing its role through the one resolver
(:mod:`.special_use`: LIST flags, then XLIST flags, then localized names), so ``GET
/mailboxes`` and every watcher event agree on what ``specialUse`` a folder has.

Quirks: ``* LIST (\\NonExistent) "/" "x"`` under NOTIFY means "x" was deleted (RFC 5465);
a renamed folder carries ``("OLDNAME" ("old"))`` (RFC 5465 5.4); a ``* STATUS`` under
NOTIFY carries only the items that changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.imap.flags import mailbox_attributes, text
from chalicelib.imap.special_use import SpecialUse, assign_special_uses
from chalicelib.imap.wire import Part, decode_mailbox_name, parse_response
from chalicelib.sync.mailboxes import ListedMailbox

UNSELECTABLE = frozenset({"\\Noselect", "\\NonExistent"})


@dataclass(frozen=True)
class MailboxStatus:
    """STATUS items (or a SELECT's answer); None: not asked for, or not reported."""

    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    messages: int | None = None
    unseen: int | None = None  # the watcher asks for it only where there is no HIGHESTMODSEQ


@dataclass(frozen=True)
class SelectedMailbox:
    """What SELECT/EXAMINE answered."""

    path: str
    uid_validity: int
    exists: int
    uid_next: int | None
    highest_modseq: int | None
    read_only: bool
    permanent_flags: tuple[str, ...]


@dataclass(frozen=True)
class ListEntry:
    mailbox: ListedMailbox
    selectable: bool
    old_name: str | None = None


def status_from_pairs(items: Sequence[Any]) -> MailboxStatus:
    """``(MESSAGES 3 UIDNEXT 9 ...)`` parsed -> MailboxStatus (item names case-insensitive)."""
    pairs = {text(items[i]).upper(): items[i + 1] for i in range(0, len(items) - 1, 2)}

    def number(name: str) -> int | None:
        value = pairs.get(name)
        return int(value) if value is not None else None

    return MailboxStatus(uidvalidity=number("UIDVALIDITY"), uidnext=number("UIDNEXT"),
                         highestmodseq=number("HIGHESTMODSEQ"), messages=number("MESSAGES"),
                         unseen=number("UNSEEN"))


def parse_status(parts: Sequence[Part]) -> tuple[str, MailboxStatus]:
    """``"Work" (MESSAGES 2 UIDNEXT 5 ...)`` -> ("Work", MailboxStatus)."""
    parsed = parse_response(parts)
    return decode_mailbox_name(parsed[0]), status_from_pairs(parsed[-1])


def parse_list(parts: Sequence[Part]) -> ListEntry:
    """``(\\HasNoChildren) "/" "Work"`` [extended data] -> ListEntry (no role yet)."""
    parsed = parse_response(parts)
    attributes, delimiter, name = parsed[0], parsed[1], parsed[2]
    flags = mailbox_attributes(attributes)
    old_name = None
    for extended in parsed[3:]:
        if isinstance(extended, tuple) and len(extended) >= 2 and text(extended[0]).upper() == "OLDNAME":
            old_name = decode_mailbox_name(extended[1][0])
    mailbox = ListedMailbox(decode_mailbox_name(name), text(delimiter) if delimiter is not None else None,
                            flags=flags)
    return ListEntry(mailbox, selectable=not (set(flags) & UNSELECTABLE), old_name=old_name)


def parse_lists(responses: Iterable[Sequence[Part]]) -> list[ListEntry]:
    return [parse_list(parts) for parts in responses if parts and parts != [b""]]


def parse_statuses(responses: Iterable[Sequence[Part]]) -> dict[str, MailboxStatus]:
    return dict(parse_status(parts) for parts in responses if parts and parts != [b""])


def with_special_uses(entries: Sequence[ListEntry], xlisted: Sequence[ListEntry] | None = None
                      ) -> tuple[list[ListEntry], dict[str, SpecialUse]]:
    """Every entry with its role (and the role's source), by the one resolver.

    ``xlisted``: the XLIST answer of a server without SPECIAL-USE that offers XLIST (old
    Gmail-likes flag roles only there); its attributes replace LIST's for the same path.
    """
    if xlisted is not None:
        xlist_flags: Mapping[str, tuple[str, ...]] = {e.mailbox.path: e.mailbox.flags for e in xlisted}
        entries = [dataclasses.replace(e, mailbox=dataclasses.replace(
            e.mailbox, flags=xlist_flags.get(e.mailbox.path, e.mailbox.flags))) for e in entries]
    roles = assign_special_uses([e.mailbox for e in entries], xlist=xlisted is not None)
    resolved = [dataclasses.replace(e, mailbox=dataclasses.replace(
        e.mailbox, special_use=roles[e.mailbox.path].role if e.mailbox.path in roles else None))
        for e in entries]
    return resolved, roles
