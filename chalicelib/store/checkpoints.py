"""Watcher checkpoints in DynamoDB: one item per (account, mailbox), plus an account marker.

Item shape (``checkpoints`` table, key ``account`` + ``path``)::

    account  path     uidvalidity uidnext highestmodseq revision sets (binary, zlib)
    alice    INBOX    1700000001  4821    99120         57       <uids + per-flag UID ranges>
    alice    \\x00account                                         initialized=true

Invariants:
- writes are conditional: an item is written only if its stored revision is the one the
  writer started from (never backwards, no lost update) and no writer with a higher lease
  epoch has written it (only by the lease holder: a new owner's first write fences the
  old one out, see :mod:`leases`); no write ever touches a shared item, so the accounts
  of one shard never contend with each other;
- the caller publishes the events of a commit *before* calling :func:`commit`;
- the account marker records that the first baseline of every mailbox is complete;
  without it, a restart continues the baseline silently instead of announcing old
  mail as new.

Failure modes: :class:`CheckpointConflictError` when a condition fails (lease lost, or a
concurrent writer moved a checkpoint): the caller stops watching the account and lets
the lease owner carry on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pynamodb.attributes import BinaryAttribute, BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError
from pynamodb.models import Model

from chalicelib.settings import get_settings
from chalicelib.sync.checkpoint import MailboxCheckpoint

_settings = get_settings()
ACCOUNT_MARKER = "\x00account"


class CheckpointItem(Model):
    class Meta:
        table_name = _settings.table_name("checkpoints")
        region = _settings.aws_region

    account = UnicodeAttribute(hash_key=True)
    path = UnicodeAttribute(range_key=True)
    uidvalidity = NumberAttribute(null=True)
    uidnext = NumberAttribute(null=True)
    highestmodseq = NumberAttribute(null=True)
    revision = NumberAttribute(default=0)
    epoch = NumberAttribute(null=True)  # lease epoch of the last writer
    sets = BinaryAttribute(null=True, legacy_encoding=False)
    initialized = BooleanAttribute(null=True)


class CheckpointConflictError(Exception):
    """A conditional checkpoint write failed: the lease moved or another writer got there first."""


@dataclass
class AccountCheckpoints:
    initialized: bool = False
    mailboxes: dict[str, MailboxCheckpoint] = field(default_factory=dict)


@dataclass(frozen=True)
class MailboxDeletion:
    path: str
    revision: int


def _to_checkpoint(item: CheckpointItem) -> MailboxCheckpoint:
    uids, flags, labels = MailboxCheckpoint.decode_sets(item.sets)
    return MailboxCheckpoint(path=item.path, uidvalidity=int(item.uidvalidity), uidnext=int(item.uidnext),
                             highestmodseq=int(item.highestmodseq) if item.highestmodseq is not None else None,
                             uids=uids, flags=flags, labels=labels, revision=int(item.revision))


def load_checkpoints(account: str) -> AccountCheckpoints:
    result = AccountCheckpoints()
    for item in CheckpointItem.query(account, consistent_read=True):
        if item.path == ACCOUNT_MARKER:
            result.initialized = bool(item.initialized)
        else:
            result.mailboxes[item.path] = _to_checkpoint(item)
    return result


def _condition(revision: int | None, epoch: int) -> object:
    fenced = CheckpointItem.epoch.does_not_exist() | (CheckpointItem.epoch <= epoch)
    if revision is None:  # the account marker: only fenced
        return fenced
    # Revision 0 means "no item yet": a first write must not overwrite someone else's.
    if revision == 0:
        return CheckpointItem.path.does_not_exist()
    return (CheckpointItem.revision == revision) & fenced


def commit(account: str, epoch: int, writes: Sequence[tuple[MailboxCheckpoint, int]],
           deletions: Sequence[MailboxDeletion] = (), *, mark_initialized: bool = False) -> None:
    """Store new checkpoints (each with the revision it was computed from), in order.

    Each item is its own conditional write: a commit needs no atomicity across mailboxes
    (each checkpoint stands alone, and the events were published first), and single
    writes cost half of a transaction's. The marker goes last, so it lands only after
    every mailbox's baseline did; a crash in between continues the baseline silently.
    """
    operations: list[tuple[str, CheckpointItem, object]] = []
    for checkpoint, expected in writes:
        item = CheckpointItem(account, checkpoint.path, uidvalidity=checkpoint.uidvalidity,
                              uidnext=checkpoint.uidnext, highestmodseq=checkpoint.highestmodseq,
                              revision=checkpoint.revision, sets=checkpoint.encode_sets(), epoch=epoch)
        operations.append(("save", item, _condition(expected, epoch)))
    for deletion in deletions:
        operations.append(("delete", CheckpointItem(account, deletion.path), _condition(deletion.revision, epoch)))
    if mark_initialized:
        marker = CheckpointItem(account, ACCOUNT_MARKER, initialized=True, epoch=epoch)
        operations.append(("save", marker, _condition(None, epoch)))
    for kind, item, condition in operations:
        _write_one(kind, item, condition)


def _write_one(kind: str, item: CheckpointItem, condition: object) -> None:
    try:
        if kind == "save":
            item.save(condition=condition)
        else:
            item.delete(condition=condition)
    except (PutError, DeleteError) as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise CheckpointConflictError(f"checkpoint {item.path!r} moved or fenced by a newer lease") from None
        raise


def delete_account_checkpoints(account: str) -> int:
    """Remove every checkpoint of an account (account deletion); returns how many."""
    items = list(CheckpointItem.query(account, attributes_to_get=["account", "path"]))
    with CheckpointItem.batch_write() as batch:
        for item in items:
            batch.delete(item)
    return len(items)
