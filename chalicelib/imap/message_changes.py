"""Changing messages: flags and labels, move, expunge, append. UID commands only.

Deleting must never remove a message the caller did not name. A plain EXPUNGE removes
*every* ``\\Deleted`` message of the mailbox (another client may have flagged some), so:

    UIDPLUS             UID EXPUNGE <our uids>              exact (RFC 4315)
    no UIDPLUS          EXPUNGE only if SEARCH DELETED finds nothing but ours;
                        otherwise leave ours flagged \\Deleted and report expunged=False

Moving: MOVE (RFC 6851) when offered, else COPY + STORE \\Deleted + the expunge above.
New UIDs come from the ``COPYUID`` response code (UIDPLUS); imaplib files bracketed codes
of tagged and untagged answers alike under ``untagged_responses``, so they are drained
before each command (a pooled connection may carry old ones) and read after it.

APPEND returns the new UID from ``APPENDUID``; without UIDPLUS the message is found again
by its Message-ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from chalicelib.errors import ApiError, MailboxNotFoundError
from chalicelib.imap.connection import ImapConnection
from chalicelib.imap.mailboxes import mailbox_exists
from chalicelib.imap.messages import clean_flags, search_uids, select_mailbox
from chalicelib.imap.strings import string_argument
from chalicelib.sync.uidset import UidSet


@dataclass(frozen=True)
class MoveResult:
    destination: str
    uid_validity: int | None
    new_uids: dict[int, int]  # source UID -> destination UID (empty when the server does not say)
    expunged: bool


def _drain(conn: ImapConnection, name: str) -> list:
    return conn.client._imap.untagged_responses.pop(name, [])


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


def _flag_steps(conn: ImapConnection, add: tuple[str, ...], remove: tuple[str, ...],
                replace: tuple[str, ...] | None, *, labels: bool = False) -> list[tuple[str, Any, list[str]]]:
    """(STORE item, imapclient method, values) in the order applied: replace, remove, add."""
    client = conn.client
    methods = ((client.set_gmail_labels, client.remove_gmail_labels, client.add_gmail_labels) if labels
               else (client.set_flags, client.remove_flags, client.add_flags))
    steps = []
    if replace is not None:
        steps.append(("FLAGS", methods[0], list(replace)))
    if remove:
        steps.append(("-FLAGS", methods[1], list(remove)))
    if add:
        steps.append(("+FLAGS", methods[2], list(add)))
    return steps


def store_flags(conn: ImapConnection, uids: list[int], *, add: tuple[str, ...] = (), remove: tuple[str, ...] = (),
                replace: tuple[str, ...] | None = None) -> dict[int, tuple[str, ...]]:
    """Apply ``replace`` (FLAGS), then ``remove`` (-FLAGS), then ``add`` (+FLAGS); return the final flags."""
    final: dict[int, tuple[str, ...]] = {}
    for name, method, flags in _flag_steps(conn, add, remove, replace):
        answer = conn.run(f"UID STORE {name}", partial(method, uids, flags))
        final.update({uid: clean_flags(value) for uid, value in (answer or {}).items()})
    return final


def store_flags_silently(conn: ImapConnection, uids: list[int], *, add: tuple[str, ...] = (),
                         remove: tuple[str, ...] = (), replace: tuple[str, ...] | None = None) -> None:
    """:func:`store_flags` for many messages: ``.SILENT``, compact UID sets, no answer parsed."""
    steps = _flag_steps(conn, add, remove, replace)
    for uid_set in compact_uid_set(uids):
        for name, method, flags in steps:
            conn.run(f"UID STORE {name}.SILENT", partial(method, [uid_set], flags, silent=True))


def store_labels(conn: ImapConnection, uids: list[int], *, add: tuple[str, ...] = (), remove: tuple[str, ...] = (),
                 replace: tuple[str, ...] | None = None) -> dict[int, tuple[str, ...]]:
    """Gmail labels (X-GM-LABELS), same order of operations as :func:`store_flags`."""
    final: dict[int, tuple[str, ...]] = {}
    for _, method, labels in _flag_steps(conn, add, remove, replace, labels=True):
        answer = conn.run("UID STORE X-GM-LABELS", partial(method, uids, labels))
        final.update({uid: tuple(_text(label) for label in value) for uid, value in (answer or {}).items()})
    return final


def expunge(conn: ImapConnection, uids: list[int]) -> bool:
    """Flag ``uids`` \\Deleted and expunge exactly them; False if that was not safe (see module doc)."""
    if not uids:
        return True
    client = conn.client
    store_flags_silently(conn, uids, add=("\\Deleted",))
    if conn.has("UIDPLUS"):
        for uid_set in compact_uid_set(uids):
            conn.run("UID EXPUNGE", partial(client.uid_expunge, [uid_set]))
        return True
    flagged = search_uids(conn, [b"DELETED"])
    if set(flagged) - set(uids):
        return False
    conn.run("EXPUNGE", client.expunge)
    return True


def move(conn: ImapConnection, uids: list[int], destination: str) -> MoveResult:
    """Move ``uids`` from the selected mailbox to ``destination``."""
    client = conn.client
    _drain(conn, "COPYUID")
    command, method = ("UID MOVE", client.move) if conn.has("MOVE") else ("UID COPY", client.copy)
    try:
        for uid_set in compact_uid_set(uids):
            conn.run(command, partial(method, [uid_set], destination), mailbox=destination)
    except ApiError as error:
        # Courier answers a COPY to a name outside its "INBOX." namespace with a bare "NO Error
        # in IMAP command received by server." (no [TRYCREATE]): ask LIST whether it exists.
        if error.code == "ServerRejected" and not mailbox_exists(conn, destination):
            raise MailboxNotFoundError(f"mailbox {destination!r} does not exist", details=error.details) from None
        raise
    uid_validity, mapping = parse_copyuid(_drain(conn, "COPYUID"))
    if command == "UID MOVE":
        return MoveResult(destination, uid_validity, mapping, expunged=True)
    expunged = expunge(conn, uids)
    return MoveResult(destination, uid_validity, mapping, expunged=expunged)


def append(conn: ImapConnection, path: str, raw: bytes, *, flags: tuple[str, ...] = (),
           internal_date: datetime | None = None, message_id: str | None = None) -> tuple[int | None, int | None]:
    """APPEND ``raw`` to ``path``; (UIDVALIDITY, UID) of the new message when they can be known."""
    client = conn.client
    _drain(conn, "APPENDUID")
    conn.run("APPEND", lambda: client.append(path, raw, flags=list(flags), msg_time=internal_date), mailbox=path)
    for value in reversed(_drain(conn, "APPENDUID")):
        parts = _text(value).split()
        if len(parts) == 2 and all(part.isdigit() for part in parts):
            return int(parts[0]), int(parts[1])
    if message_id is None:
        return None, None
    # No UIDPLUS: look the message up again by its Message-ID (the newest match is ours).
    selected = select_mailbox(conn, path, readonly=True)
    token, utf8 = string_argument(message_id, "messageId")
    found = search_uids(conn, [b"HEADER", b"Message-ID", token], charset="UTF-8" if utf8 else None)
    return selected.uid_validity, (found[-1] if found else None)
