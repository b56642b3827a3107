"""Raw IMAP responses the watcher reads, and what they mean. Pure: bytes in, values out.

The watcher runs its commands itself (``SELECT`` with QRESYNC, ``UID FETCH ...
(CHANGEDSINCE m VANISHED)``, ``NOTIFY``, ``IDLE``) because imapclient has no API for
them and would file ``VANISHED`` away where nobody reads it. This module is the only
place those lines are interpreted, so it is tested with raw server lines.

The functions below pick facts out of a command's untagged responses
(:class:`~chalicelib.imap.responses.Untagged`). LIST and STATUS payloads go to the folder
model's one parser (:mod:`.folders`); flags to :mod:`.flags`.

Quirks handled here:
- ``MODSEQ`` is a parenthesised list: ``MODSEQ (12)`` (imapclient gives ``(12,)``).
- Servers may omit ``UID`` in unsolicited FETCH (during IDLE); such lines are hints only.
- Folder names are modified UTF-7 and may be quoted strings, atoms or literals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.imap.flags import message_flags, text
from chalicelib.imap.folders import ListEntry, MailboxStatus, parse_list, parse_status, with_special_uses
from chalicelib.imap.responses import Untagged, parse_untagged, response_code
from chalicelib.imap.wire import Part, encode_mailbox_name, parse_fetch_response, read_lines
from chalicelib.sync.checkpoint import MessageState
from chalicelib.sync.mailboxes import ListedMailbox
from chalicelib.sync.uidset import UidSet

__all__ = ["FetchedState", "Hints", "ListEntry", "MailboxStatus", "Part", "Untagged", "encode_mailbox_name",
           "fetched_states", "hints_from", "list_entry", "listed_mailboxes", "parse_untagged", "read_response",
           "response_code", "searched_uids", "select_status", "status_response", "vanished_uids"]

read_response = read_lines  # one response from a line source (imaplib's IMAP4, or a test's)


# -- SELECT / STATUS ----------------------------------------------------------------------------


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
    return parse_status(response.parts)


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
    return frozenset(text(v) for v in values)


def fetched_states(responses: Iterable[Untagged]) -> dict[int, FetchedState]:
    """UID -> flags (+ Gmail labels) and MODSEQ from FETCH responses that carry a UID."""
    result: dict[int, FetchedState] = {}
    for response in responses:
        if response.kind != "FETCH":
            continue
        for item in parse_fetch_response(response.parts).values():
            uid = item.get(b"UID")
            if uid is None or b"FLAGS" not in item:
                continue
            labels = _names(item[b"X-GM-LABELS"]) if b"X-GM-LABELS" in item else None
            result[int(uid)] = FetchedState(MessageState(frozenset(message_flags(item[b"FLAGS"])), labels),
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


def list_entry(response: Untagged) -> ListEntry:
    return parse_list(response.parts)


def listed_mailboxes(responses: Iterable[Untagged], xlisted: Iterable[Untagged] | None = None
                     ) -> dict[str, ListedMailbox]:
    """Selectable mailboxes by path, each with its role (the one resolver, XLIST included)."""
    entries, _ = with_special_uses([list_entry(r) for r in responses if r.kind == "LIST"],
                                   None if xlisted is None else [list_entry(r) for r in xlisted if r.kind == "XLIST"])
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
