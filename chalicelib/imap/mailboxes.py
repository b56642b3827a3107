"""Mailboxes (IMAP folders): list with roles and counters, status, create, rename, delete.

Names cross this module's boundary as Unicode strings. imapclient encodes them to
modified UTF-7 (RFC 3501 5.1.3) on every command and decodes them in answers; the raw
commands here (LIST with RETURN options) do the same with :mod:`imapclient.imap_utf7`,
so "Entwürfe", "日本語" or "R&D" reach the server as ``Entw&APw-rfe``, ``&ZeVnLIqe-``
and ``R&-D``.

One round trip when the server allows it (Dovecot, Gmail, Fastmail)::

    LIST "" "*" RETURN (SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN UIDNEXT UIDVALIDITY))

otherwise LIST + LSUB (+ XLIST on old Gmail-likes) + one STATUS per mailbox.

Failure modes: a missing mailbox is 404 ``MailboxNotFound`` (mapped in :mod:`.errors`;
Courier's RENAME of a missing folder answers OK, so a rename checks that the new name exists),
an existing one 409 ``MailboxExists`` (Cyrus and Courier say so only in words: LIST decides);
INBOX cannot be renamed or deleted (400 ``InboxImmutable``, checked before the server
is asked, because servers differ: Dovecot refuses deletion, but RENAME INBOX moves its
messages into a new folder, as RFC 3501 demands).
"""

from __future__ import annotations

from dataclasses import dataclass

from imapclient import imap_utf7
from imapclient.response_parser import parse_response
from imapclient.util import chunk

from chalicelib.errors import ApiError, MailboxExistsError, MailboxNotFoundError
from chalicelib.imap.connection import ImapConnection
from chalicelib.imap.special_use import ListedMailbox, SpecialUse, assign_special_uses

STATUS_ITEMS = ("MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY")


@dataclass(frozen=True)
class MailboxStatus:
    messages: int
    unseen: int | None
    uid_next: int | None
    uid_validity: int | None
    highest_modseq: int | None = None


@dataclass(frozen=True)
class Mailbox:
    path: str
    delimiter: str | None
    flags: tuple[str, ...]
    special_use: SpecialUse | None
    subscribed: bool
    status: MailboxStatus | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit(self.delimiter, 1)[-1] if self.delimiter else self.path

    @property
    def parent_path(self) -> str | None:
        if not self.delimiter or self.delimiter not in self.path:
            return None
        return self.path.rsplit(self.delimiter, 1)[0]

    @property
    def selectable(self) -> bool:
        return not any(flag.lower() in ("\\noselect", "\\nonexistent") for flag in self.flags)


def is_inbox(path: str) -> bool:
    return path.upper() == "INBOX"


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _quote_mailbox(path: str) -> bytes:
    encoded = imap_utf7.encode(path)
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _decode_name(raw: object) -> str:
    # Servers send a numeric-looking name ("2024") as an atom the parser turns into an int.
    return imap_utf7.decode(raw) if isinstance(raw, bytes) else str(raw)


def _status_from_pairs(items: tuple) -> MailboxStatus:
    values = {_text(key).upper(): value for key, value in chunk(items, 2)}
    return MailboxStatus(messages=int(values.get("MESSAGES", 0)), unseen=values.get("UNSEEN"),
                         uid_next=values.get("UIDNEXT"), uid_validity=values.get("UIDVALIDITY"),
                         highest_modseq=values.get("HIGHESTMODSEQ"))


def _parse_list_lines(lines: list) -> list[tuple[tuple[str, ...], str | None, str]]:
    lines = [line for line in lines if line not in (b"", None)]
    parsed = parse_response(lines) if lines else ()
    result = []
    for flags, delimiter, name in chunk(parsed, 3):
        result.append((tuple(_text(flag) for flag in flags), _text(delimiter) if delimiter else None,
                       _decode_name(name)))
    return result


def _parse_status_lines(lines: list) -> dict[str, MailboxStatus]:
    lines = [line for line in lines if line not in (b"", None)]
    parsed = parse_response(lines) if lines else ()
    return {_decode_name(name): _status_from_pairs(items) for name, items in chunk(parsed, 2)}


def _untagged(conn: ImapConnection, name: str) -> list:
    return conn.client._imap.untagged_responses.pop(name, [])


def _raw_list(conn: ImapConnection, command: bytes, args: list[bytes]) -> list:
    client = conn.client
    return client._raw_command_untagged(command, args, uid=False)


def list_mailboxes(conn: ImapConnection, *, with_status: bool = False) -> list[Mailbox]:
    """Every mailbox of the account with its role, subscription and (optionally) counters."""
    status_items = STATUS_ITEMS + (("HIGHESTMODSEQ",) if conn.has("CONDSTORE") else ())
    statuses: dict[str, MailboxStatus] = {}
    subscribed: set[str] | None = None
    if conn.has("LIST-EXTENDED"):
        options = [b"SUBSCRIBED"]
        if conn.has("SPECIAL-USE"):
            options.append(b"SPECIAL-USE")
        if with_status and conn.has("LIST-STATUS"):
            options.append(b"STATUS (" + " ".join(status_items).encode() + b")")

        def list_extended() -> list:
            _untagged(conn, "STATUS")
            lines = _raw_list(conn, b"LIST", [b'""', b'"*"', b"RETURN", b"(" + b" ".join(options) + b")"])
            return [lines, _untagged(conn, "STATUS")]

        lines, status_lines = conn.run("LIST", list_extended)
        listed = _parse_list_lines(lines)
        statuses = _parse_status_lines(status_lines)
    else:
        listed = _parse_list_lines(conn.run("LIST", lambda: _raw_list(conn, b"LIST", [b'""', b'"*"'])))
        subscribed = {name for _, _, name in _parse_list_lines(
            conn.run("LSUB", lambda: _raw_list(conn, b"LSUB", [b'""', b'"*"'])))}
    xlist = False
    if not conn.has("SPECIAL-USE") and conn.has("XLIST"):
        # Old Gmail-style servers flag roles only in XLIST answers.
        xlist_flags = {name: flags for flags, _, name in _parse_list_lines(
            conn.run("XLIST", lambda: _raw_list(conn, b"XLIST", [b'""', b'"*"'])))}
        listed = [(xlist_flags.get(name, flags), delimiter, name) for flags, delimiter, name in listed]
        xlist = True
    roles = assign_special_uses([ListedMailbox(name, delimiter, flags) for flags, delimiter, name in listed],
                                xlist=xlist)
    mailboxes = []
    for flags, delimiter, name in listed:
        is_subscribed = (any(flag.lower() == "\\subscribed" for flag in flags) if subscribed is None
                         else name in subscribed)
        mailbox = Mailbox(name, delimiter, flags, roles.get(name), is_subscribed)
        if with_status and mailbox.selectable:
            status = statuses.get(name) or mailbox_status(conn, name, status_items)
            mailbox = Mailbox(name, delimiter, flags, roles.get(name), is_subscribed, status)
        mailboxes.append(mailbox)
    return mailboxes


def mailbox_status(conn: ImapConnection, path: str, items: tuple[str, ...] = STATUS_ITEMS) -> MailboxStatus:
    def status() -> dict:
        return conn.client.folder_status(path, items)

    values = conn.run("STATUS", status, mailbox=path)
    return _status_from_pairs(tuple(x for key, value in values.items() for x in (key, value)))


def hierarchy_delimiter(conn: ImapConnection) -> str | None:
    """The server's hierarchy delimiter (``LIST "" ""``), None for flat servers."""
    lines = conn.run("LIST", lambda: _raw_list(conn, b"LIST", [b'""', b'""']))
    for _, delimiter, _ in _parse_list_lines(lines):
        return delimiter
    return None


def find_mailbox_by_role(conn: ImapConnection, role: str) -> str | None:
    """Path of the mailbox with a special use (``\\Trash``), by flag or by name; None if none."""
    for mailbox in list_mailboxes(conn):
        if mailbox.special_use is not None and mailbox.special_use.role == role and mailbox.selectable:
            return mailbox.path
    return None


def _refuse_inbox(path: str, action: str) -> None:
    if is_inbox(path):
        raise ApiError(f"INBOX cannot be {action}", code="InboxImmutable", status=409, details={"path": path})


def _leave_selected_state(conn: ImapConnection) -> None:
    """Unselect before changing folders: a pooled session may have the victim selected."""
    client = conn.client
    if client._imap.state != "SELECTED":
        return
    if conn.has("UNSELECT"):
        conn.run("UNSELECT", client.unselect_folder)
    else:
        # CLOSE would expunge \\Deleted messages of a read-write selection; EXAMINE it first.
        conn.run("EXAMINE", lambda: client.select_folder("INBOX", readonly=True))
        conn.run("CLOSE", client.close_folder)


def mailbox_exists(conn: ImapConnection, path: str) -> bool:
    """Whether LIST knows ``path`` (for servers whose refusals do not say why)."""
    listed = conn.run("LIST", lambda: conn.client.list_folders("", path), mailbox=path)
    return any(name == path for _, _, name in listed)


def create_mailbox(conn: ImapConnection, path: str) -> None:
    """Create (intermediate levels included on servers that do so) and subscribe."""
    try:
        conn.run("CREATE", lambda: conn.client.create_folder(path), mailbox=path)
    except ApiError as error:
        # No [ALREADYEXISTS] from Cyrus ("Mailbox already exists") or Courier ("Cannot create
        # this folder."): a refused CREATE of a name LIST knows is the 409 Dovecot gets.
        if error.code == "ServerRejected" and mailbox_exists(conn, path):
            raise MailboxExistsError(f"mailbox {path!r} already exists", details=error.details) from None
        raise
    conn.run("SUBSCRIBE", lambda: conn.client.subscribe_folder(path), mailbox=path)


def rename_mailbox(conn: ImapConnection, path: str, new_path: str) -> None:
    _refuse_inbox(path, "renamed")
    _refuse_inbox(new_path, "the target of a rename")
    _leave_selected_state(conn)
    conn.run("RENAME", lambda: conn.client.rename_folder(path, new_path), mailbox=path)
    # Courier answers "OK Folder renamed." for a folder that does not exist, and renames nothing.
    if not mailbox_exists(conn, new_path):
        raise MailboxNotFoundError(f"mailbox {path!r} does not exist", details={"path": path, "command": "RENAME"})
    # Subscriptions follow names, not folders: move it along (best effort, like mail clients).
    try:
        conn.run("UNSUBSCRIBE", lambda: conn.client.unsubscribe_folder(path), mailbox=path)
    except ApiError:
        pass
    conn.run("SUBSCRIBE", lambda: conn.client.subscribe_folder(new_path), mailbox=new_path)


def delete_mailbox(conn: ImapConnection, path: str) -> None:
    _refuse_inbox(path, "deleted")
    _leave_selected_state(conn)
    conn.run("DELETE", lambda: conn.client.delete_folder(path), mailbox=path)
    try:
        conn.run("UNSUBSCRIBE", lambda: conn.client.unsubscribe_folder(path), mailbox=path)
    except ApiError:
        pass  # nothing was subscribed
