"""Folder-level change detection: which mailboxes appeared or disappeared. Pure.

The adapter lists the account's selectable mailboxes; this module compares them with
the mailboxes that have checkpoints and names the events.

- On the account's first sync every listed mailbox is baseline: no ``mailboxNew``.
- Later, a listed mailbox without a checkpoint is new (``mailboxNew``) and all of its
  mail counts as new too (its checkpoint starts empty); a checkpointed mailbox that is
  no longer listed (or is listed ``\\NonExistent``/``\\Noselect``) is ``mailboxDeleted``.
- A rename is a delete plus a create, as on the wire (NOTIFY reports it that way too).

Ids: ``mailboxNew`` is keyed by the new mailbox's UIDVALIDITY and ``mailboxDeleted`` by
the checkpoint's, so a folder deleted and re-created under the same name yields distinct
events (servers give a re-created folder a new UIDVALIDITY).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.events.model import Event, event_id
from chalicelib.incarnations import LEGACY, scoped


@dataclass(frozen=True)
class ListedMailbox:
    """One folder as LIST shows it (the adapter's :mod:`chalicelib.imap.folders` builds it):
    name decoded from modified UTF-7, attributes in canonical case, and the role the
    special-use resolver gave it (``\\Sent``), if any."""

    path: str
    delimiter: str | None
    special_use: str | None = None
    flags: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.rsplit(self.delimiter, 1)[-1] if self.delimiter else self.path


@dataclass(frozen=True)
class MailboxChanges:
    created: list[ListedMailbox]
    deleted: list[str]


def diff_mailboxes(known_paths: set[str], listed: Mapping[str, ListedMailbox]) -> MailboxChanges:
    created = [listed[path] for path in sorted(set(listed) - known_paths)]
    return MailboxChanges(created=created, deleted=sorted(known_paths - set(listed)))


def mailbox_new_event(account: str, mailbox: ListedMailbox, uidvalidity: int, *,
                      incarnation: str = LEGACY) -> Event:
    data = {"path": mailbox.path, "name": mailbox.name}
    if mailbox.special_use:
        data["specialUse"] = mailbox.special_use
    return Event(id=event_id(scoped(account, incarnation), mailbox.path, "mailboxNew", uidvalidity), account=account,
                 event="mailboxNew", path=mailbox.path, specialUse=mailbox.special_use, data=data)


def mailbox_deleted_event(account: str, path: str, delimiter: str | None, uidvalidity: int, *,
                          incarnation: str = LEGACY) -> Event:
    name = path.rsplit(delimiter, 1)[-1] if delimiter else path
    return Event(id=event_id(scoped(account, incarnation), path, "mailboxDeleted", uidvalidity), account=account,
                 event="mailboxDeleted", path=path, data={"path": path, "name": name})
