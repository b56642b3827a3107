"""Changing messages: flags and labels, move, expunge, append. UID commands only.

Deleting must never remove a message the caller did not name. A plain EXPUNGE removes
*every* ``\\Deleted`` message of the mailbox (another client may have flagged some), so:

    UIDPLUS             UID EXPUNGE <our uids>              exact (RFC 4315)
    no UIDPLUS          EXPUNGE only if SEARCH DELETED finds nothing but ours;
                        otherwise leave ours flagged \\Deleted and report expunged=False

Moving: MOVE (RFC 6851) when offered, else COPY + STORE \\Deleted + the expunge above.
New UIDs come from the ``COPYUID`` response code (UIDPLUS), which the session's
:meth:`~chalicelib.imap.session.ImapSession.transfer` collects for exactly its commands.

APPEND returns the new UID from ``APPENDUID``; without UIDPLUS the message is found again
by its Message-ID (:func:`find_by_message_id`, also how sending checks that a Sent copy
from an interrupted earlier try is already there before it appends another).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from chalicelib.errors import ApiError, MailboxNotFoundError
from chalicelib.imap.connection import ImapConnection
from chalicelib.imap.mailboxes import mailbox_exists
from chalicelib.imap.messages import search_uids, select_mailbox
from chalicelib.imap.session import StoreAction
from chalicelib.imap.strings import string_argument
from chalicelib.sync.uidset import UidSet


@dataclass(frozen=True)
class MoveResult:
    destination: str
    uid_validity: int | None
    new_uids: dict[int, int]  # source UID -> destination UID (empty when the server does not say)
    expunged: bool


def _text(value: object) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def expand_uid_set(text: str) -> list[int]:
    """``"4:6,9"`` -> ``[4, 5, 6, 9]`` (RFC 3501 sequence-set syntax, ascending)."""
    return list(UidSet.parse_imap(text))


def compact_uid_set(uids: list[int], max_length: int = 8000) -> list[str]:
    """UIDs as RFC 3501 sets of consecutive runs ("1:500,502"), split into commands of ``max_length``.

    A range only ever covers UIDs that are all in ``uids`` (runs of consecutive numbers), so
    a range never reaches a message the caller did not pick. Dovecot refuses command lines
    over 64 KB; a 10,000-UID bulk change in one line of single numbers would exceed that.
    """
    chunks: list[str] = []
    current = ""
    for first, last in UidSet(uids).ranges:
        run = str(first) if first == last else f"{first}:{last}"
        if current and len(current) + len(run) + 1 > max_length:
            chunks.append(current)
            current = ""
        current = f"{current},{run}" if current else run
    if current:
        chunks.append(current)
    return chunks


def parse_copyuid(values: list) -> tuple[int | None, dict[int, int]]:
    """``[b"1795 2:3 7:8"]`` -> ``(1795, {2: 7, 3: 8})`` (the last answer wins)."""
    uid_validity: int | None = None
    mapping: dict[int, int] = {}
    for value in values:
        parts = _text(value).split()
        if len(parts) != 3:
            continue
        try:
            uid_validity = int(parts[0])
            mapping.update(zip(expand_uid_set(parts[1]), expand_uid_set(parts[2]), strict=False))
        except ValueError:
            continue
    return uid_validity, mapping


def _flag_steps(add: tuple[str, ...], remove: tuple[str, ...],
                replace: tuple[str, ...] | None) -> list[tuple[str, StoreAction, list[str]]]:
    """(STORE item, action, values) in the order applied: replace, remove, add."""
    steps: list[tuple[str, StoreAction, list[str]]] = []
    if replace is not None:
        steps.append(("FLAGS", "set", list(replace)))
    if remove:
        steps.append(("-FLAGS", "remove", list(remove)))
    if add:
        steps.append(("+FLAGS", "add", list(add)))
    return steps


def store_flags(conn: ImapConnection, uids: list[int], *, add: tuple[str, ...] = (), remove: tuple[str, ...] = (),
                replace: tuple[str, ...] | None = None) -> dict[int, tuple[str, ...]]:
    """Apply ``replace`` (FLAGS), then ``remove`` (-FLAGS), then ``add`` (+FLAGS); return the final flags."""
    final: dict[int, tuple[str, ...]] = {}
    for name, action, flags in _flag_steps(add, remove, replace):
        final.update(conn.run(f"UID STORE {name}", partial(conn.session.store, uids, action, flags)))
    return final


def store_flags_silently(conn: ImapConnection, uids: list[int], *, add: tuple[str, ...] = (),
                         remove: tuple[str, ...] = (), replace: tuple[str, ...] | None = None) -> None:
    """:func:`store_flags` for many messages: ``.SILENT``, compact UID sets, no answer parsed."""
    steps = _flag_steps(add, remove, replace)
    for uid_set in compact_uid_set(uids):
        for name, action, flags in steps:
            conn.run(f"UID STORE {name}.SILENT", partial(conn.session.store, [uid_set], action, flags, silent=True))


def store_labels(conn: ImapConnection, uids: list[int], *, add: tuple[str, ...] = (), remove: tuple[str, ...] = (),
                 replace: tuple[str, ...] | None = None) -> dict[int, tuple[str, ...]]:
    """Gmail labels (X-GM-LABELS), same order of operations as :func:`store_flags`."""
    final: dict[int, tuple[str, ...]] = {}
    for _, action, labels in _flag_steps(add, remove, replace):
        final.update(conn.run("UID STORE X-GM-LABELS", partial(conn.session.store_labels, uids, action, labels)))
    return final


def expunge(conn: ImapConnection, uids: list[int]) -> bool:
    """Flag ``uids`` \\Deleted and expunge exactly them; False if that was not safe (see module doc)."""
    if not uids:
        return True
    store_flags_silently(conn, uids, add=("\\Deleted",))
    if conn.capabilities.uidplus:
        for uid_set in compact_uid_set(uids):
            conn.run("UID EXPUNGE", partial(conn.session.expunge, uid_set))
        return True
    flagged = search_uids(conn, [b"DELETED"])
    if set(flagged) - set(uids):
        return False
    conn.run("EXPUNGE", conn.session.expunge)
    return True


def move(conn: ImapConnection, uids: list[int], destination: str) -> MoveResult:
    """Move ``uids`` from the selected mailbox to ``destination``."""
    moving = conn.capabilities.move
    command = "UID MOVE" if moving else "UID COPY"
    codes: list[str] = []
    try:
        for uid_set in compact_uid_set(uids):
            codes += conn.run(command, partial(conn.session.transfer, [uid_set], destination, move=moving),
                              mailbox=destination)
    except ApiError as error:
        # Courier answers a COPY to a name outside its "INBOX." namespace with a bare "NO Error
        # in IMAP command received by server." (no [TRYCREATE]): ask LIST whether it exists.
        if error.code == "ServerRejected" and not mailbox_exists(conn, destination):
            raise MailboxNotFoundError(f"mailbox {destination!r} does not exist", details=error.details) from None
        raise
    uid_validity, mapping = parse_copyuid(codes)
    if command == "UID MOVE":
        return MoveResult(destination, uid_validity, mapping, expunged=True)
    expunged = expunge(conn, uids)
    return MoveResult(destination, uid_validity, mapping, expunged=expunged)


def append(conn: ImapConnection, path: str, raw: bytes, *, flags: tuple[str, ...] = (),
           internal_date: datetime | None = None, message_id: str | None = None) -> tuple[int | None, int | None]:
    """APPEND ``raw`` to ``path``; (UIDVALIDITY, UID) of the new message when they can be known."""
    codes = conn.run("APPEND", lambda: conn.session.append(path, raw, flags=flags, internal_date=internal_date),
                     mailbox=path)
    for value in reversed(codes):
        parts = _text(value).split()
        if len(parts) == 2 and all(part.isdigit() for part in parts):
            return int(parts[0]), int(parts[1])
    if message_id is None:
        return None, None
    # No UIDPLUS: look the message up again by its Message-ID (the newest match is ours).
    return find_by_message_id(conn, path, message_id)


def find_by_message_id(conn: ImapConnection, path: str, message_id: str) -> tuple[int | None, int | None]:
    """(UIDVALIDITY, UID of the newest message of ``path`` whose Message-ID is ``message_id``
    or None): UID SEARCH HEADER Message-ID, which Dovecot, Cyrus and Exchange all answer."""
    selected = select_mailbox(conn, path, readonly=True)
    token, utf8 = string_argument(message_id, "messageId")
    found = search_uids(conn, [b"HEADER", b"Message-ID", token], charset="UTF-8" if utf8 else None)
    return selected.uid_validity, (found[-1] if found else None)
