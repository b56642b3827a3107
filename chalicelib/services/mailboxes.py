"""Mailbox use cases: list (with roles and counters), create, rename, delete."""

from __future__ import annotations

from chalicelib.errors import ValidationError
from chalicelib.imap import mailboxes as imap_mailboxes
from chalicelib.imap.connection import ImapConnection
from chalicelib.imap.mailboxes import Mailbox
from chalicelib.schemas.mailboxes import (
    MailboxCreated,
    MailboxDeleted,
    MailboxList,
    MailboxOut,
    MailboxRenamed,
)
from chalicelib.services.mail_sessions import mail_connection


def mailbox_out(mailbox: Mailbox) -> MailboxOut:
    status = mailbox.status
    return MailboxOut(
        path=mailbox.path, name=mailbox.name, delimiter=mailbox.delimiter, parentPath=mailbox.parent_path,
        specialUse=mailbox.special_use.role if mailbox.special_use else None,
        specialUseSource=mailbox.special_use.source if mailbox.special_use else None,
        subscribed=mailbox.subscribed, listed=True, noSelect=not mailbox.selectable,
        messages=status.messages if status else None, unseen=status.unseen if status else None,
        uidNext=status.uidnext if status else None, uidValidity=status.uidvalidity if status else None)


def list_mailboxes(account_id: str, *, counters: bool) -> MailboxList:
    with mail_connection(account_id) as conn:
        mailboxes = imap_mailboxes.list_mailboxes(conn, with_status=counters)
    return MailboxList(mailboxes=[mailbox_out(m) for m in mailboxes])


def resolve_path(conn: ImapConnection, path: str | list[str], field: str) -> str:
    """A path given as a string, or as segments joined with the server's delimiter."""
    if isinstance(path, str):
        return path
    delimiter = imap_mailboxes.hierarchy_delimiter(conn)
    if delimiter is None and len(path) > 1:
        raise ValidationError("this server has no folder hierarchy", details={field: "use a single segment"})
    for index, segment in enumerate(path):
        if delimiter and delimiter in segment:
            raise ValidationError(f"a path segment contains the hierarchy delimiter {delimiter!r}",
                                  details={f"{field}.{index}": f"must not contain {delimiter!r}"})
    return (delimiter or "").join(path)


def create_mailbox(account_id: str, path: str | list[str]) -> MailboxCreated:
    with mail_connection(account_id) as conn:
        full_path = resolve_path(conn, path, "path")
        imap_mailboxes.create_mailbox(conn, full_path)
    return MailboxCreated(path=full_path, created=True)


def rename_mailbox(account_id: str, path: str, new_path: str | list[str]) -> MailboxRenamed:
    with mail_connection(account_id) as conn:
        full_new_path = resolve_path(conn, new_path, "newPath")
        imap_mailboxes.rename_mailbox(conn, path, full_new_path)
    return MailboxRenamed(path=path, newPath=full_new_path, renamed=True)


def delete_mailbox(account_id: str, path: str) -> MailboxDeleted:
    with mail_connection(account_id) as conn:
        imap_mailboxes.delete_mailbox(conn, path)
    return MailboxDeleted(path=path, deleted=True)
