"""Mailboxes (IMAP folders): list with roles and counters, status, create, rename, delete.

Names cross this module's boundary as Unicode strings. The session encodes them to
modified UTF-7 (RFC 3501 5.1.3) on every command and :mod:`.folders` decodes them in
answers, so "Entwürfe", "日本語" or "R&D" reach the server as ``Entw&APw-rfe``, ``&ZeVnLIqe-``
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

from chalicelib.errors import ApiError, MailboxExistsError, MailboxNotFoundError
from chalicelib.imap.connection import ImapConnection
from chalicelib.imap.folders import ListEntry, MailboxStatus, with_special_uses
from chalicelib.imap.special_use import SpecialUse

__all__ = ["Mailbox", "MailboxStatus", "create_mailbox", "delete_mailbox", "find_mailbox_by_role",
           "hierarchy_delimiter", "is_inbox", "list_mailboxes", "mailbox_exists", "mailbox_status", "rename_mailbox"]

STATUS_ITEMS = ("MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY")


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
        return not any(flag in ("\\Noselect", "\\NonExistent") for flag in self.flags)


def is_inbox(path: str) -> bool:
    return path.upper() == "INBOX"


def list_mailboxes(conn: ImapConnection, *, with_status: bool = False) -> list[Mailbox]:
    """Every mailbox of the account with its role, subscription and (optionally) counters."""
    caps = conn.capabilities
    session = conn.session
    status_items = STATUS_ITEMS + (("HIGHESTMODSEQ",) if caps.condstore else ())
    statuses: dict[str, MailboxStatus] = {}
    subscribed: set[str] | None = None
    if with_status:
        # A pooled session may still have a mailbox selected, and Dovecot answers STATUS (and
        # LIST-STATUS) of the selected mailbox from that session's view: mail that arrived since
        # is not counted until the session hears of it. RFC 3501 6.3.10 warns against STATUS on
        # the selected mailbox for this reason.
        _leave_selected_state(conn)
    if caps.list_extended:
        options = [b"SUBSCRIBED"]
        if caps.special_use:
            options.append(b"SPECIAL-USE")
        if with_status and caps.list_status:
            options.append(b"STATUS (" + " ".join(status_items).encode() + b")")
        listed, statuses = conn.run("LIST", lambda: session.list_mailboxes(returns=options))
    else:
        listed, _ = conn.run("LIST", session.list_mailboxes)
        lsubbed, _ = conn.run("LSUB", lambda: session.list_mailboxes(command=b"LSUB"))
        subscribed = {entry.mailbox.path for entry in lsubbed}
    xlisted: list[ListEntry] | None = None
    if not caps.special_use and caps.xlist:
        # Old Gmail-style servers flag roles only in XLIST answers.
        xlisted, _ = conn.run("XLIST", lambda: session.list_mailboxes(command=b"XLIST"))
    listed, roles = with_special_uses(listed, xlisted)
    mailboxes = []
    for entry in listed:
        name, delimiter, flags = entry.mailbox.path, entry.mailbox.delimiter, entry.mailbox.flags
        is_subscribed = "\\Subscribed" in flags if subscribed is None else name in subscribed
        mailbox = Mailbox(name, delimiter, flags, roles.get(name), is_subscribed)
        if with_status and mailbox.selectable:
            status = statuses.get(name) or mailbox_status(conn, name, status_items)
            mailbox = Mailbox(name, delimiter, flags, roles.get(name), is_subscribed, status)
        mailboxes.append(mailbox)
    return mailboxes


def mailbox_status(conn: ImapConnection, path: str, items: tuple[str, ...] = STATUS_ITEMS) -> MailboxStatus:
    return conn.run("STATUS", lambda: conn.session.status(path, items), mailbox=path)


def hierarchy_delimiter(conn: ImapConnection) -> str | None:
    """The server's hierarchy delimiter (``LIST "" ""``), None for flat servers."""
    listed, _ = conn.run("LIST", lambda: conn.session.list_mailboxes(pattern=""))
    for entry in listed:
        return entry.mailbox.delimiter
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
    session = conn.session
    if not session.selected:
        return
    if conn.capabilities.unselect:
        conn.run("UNSELECT", session.unselect)
    else:
        # CLOSE would expunge \\Deleted messages of a read-write selection; EXAMINE it first.
        conn.run("EXAMINE", lambda: session.select("INBOX", readonly=True))
        conn.run("CLOSE", session.close_mailbox)


def mailbox_exists(conn: ImapConnection, path: str) -> bool:
    """Whether LIST knows ``path`` (for servers whose refusals do not say why)."""
    listed, _ = conn.run("LIST", lambda: conn.session.list_mailboxes(pattern=path), mailbox=path)
    return any(entry.mailbox.path == path for entry in listed)


def create_mailbox(conn: ImapConnection, path: str) -> None:
    """Create (intermediate levels included on servers that do so) and subscribe."""
    try:
        conn.run("CREATE", lambda: conn.session.create(path), mailbox=path)
    except ApiError as error:
        # No [ALREADYEXISTS] from Cyrus ("Mailbox already exists") or Courier ("Cannot create
        # this folder."): a refused CREATE of a name LIST knows is the 409 Dovecot gets.
        if error.code == "ServerRejected" and mailbox_exists(conn, path):
            raise MailboxExistsError(f"mailbox {path!r} already exists", details=error.details) from None
        raise
    conn.run("SUBSCRIBE", lambda: conn.session.subscribe(path), mailbox=path)


def rename_mailbox(conn: ImapConnection, path: str, new_path: str) -> None:
    _refuse_inbox(path, "renamed")
    _refuse_inbox(new_path, "the target of a rename")
    _leave_selected_state(conn)
    conn.run("RENAME", lambda: conn.session.rename(path, new_path), mailbox=path)
    # Courier answers "OK Folder renamed." for a folder that does not exist, and renames nothing.
    if not mailbox_exists(conn, new_path):
        raise MailboxNotFoundError(f"mailbox {path!r} does not exist", details={"path": path, "command": "RENAME"})
    # Subscriptions follow names, not folders: move it along (best effort, like mail clients).
    try:
        conn.run("UNSUBSCRIBE", lambda: conn.session.unsubscribe(path), mailbox=path)
    except ApiError:
        pass
    conn.run("SUBSCRIBE", lambda: conn.session.subscribe(new_path), mailbox=new_path)


def delete_mailbox(conn: ImapConnection, path: str) -> None:
    _refuse_inbox(path, "deleted")
    _leave_selected_state(conn)
    conn.run("DELETE", lambda: conn.session.delete(path), mailbox=path)
    try:
        conn.run("UNSUBSCRIBE", lambda: conn.session.unsubscribe(path), mailbox=path)
    except ApiError:
        pass  # nothing was subscribed
