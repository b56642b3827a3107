"""Watcher checkpoints in DynamoDB: one item per (account, mailbox), plus an account marker.

Item shape (``checkpoints`` table, key ``account`` + ``path``)::

    account  path     uidvalidity uidnext highestmodseq revision sets (binary, zlib)
    alice    INBOX    1700000001  4821    99120         57       <uids + per-flag UID ranges>
    alice    \\x00account                                         initialized=true

A blob over :data:`~chalicelib.store.checkpoint_parts.PART_BYTES` (DynamoDB refuses items
over 400 KB) is cut into parts: the mailbox's item holds the first part and ``parts`` (how
many), sibling items ``<path>\\x00part<n>`` hold the rest with the same ``revision``::

    alice    INBOX               ... revision=58 parts=2 sets=<first 350,000 bytes>
    alice    INBOX\\x00part1                revision=58 part=1 sets=<the rest>

Invariants:
- writes are conditional: an item is written only if its stored revision is the one the
  writer started from (never backwards, no lost update) and no writer with a higher lease
  epoch has written it (only by the lease holder: a new owner's first write fences the
  old one out, see :mod:`leases`); no write ever touches a shared item, so the accounts
  of one shard never contend with each other;
- all parts of a checkpoint are written (and, with its mailbox, deleted) in the same
  transaction as its head, under the head's condition; a reader that finds a missing part
  or one of another revision raises :class:`CheckpointConflictError` (never returns a
  shorter checkpoint);
- the caller publishes the events of a commit *before* calling :func:`commit`;
- the account marker records that the first baseline of every mailbox is complete;
  without it, a restart continues the baseline silently instead of announcing old
  mail as new.

Failure modes: :class:`CheckpointConflictError` when a condition fails (lease lost, or a
concurrent writer moved a checkpoint): the caller stops watching the account and lets
the lease owner carry on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pynamodb.attributes import BinaryAttribute, BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.chunking import bounded_chunks
from chalicelib.settings import get_settings
from chalicelib.store.checkpoint_parts import PART_BYTES, TornCheckpointError, join_parts, split_blob
from chalicelib.sync.checkpoint import MailboxCheckpoint

_settings = get_settings()
ACCOUNT_MARKER = "\x00account"
PART_SUFFIX = "\x00part"  # NUL: no IMAP mailbox name contains it, so no real path collides
# DynamoDB's limits per TransactWriteItems: 100 items, 4 MB in all (keys, names and values).
TRANSACTION_ITEMS = 100
TRANSACTION_BYTES = 3_500_000
ITEM_OVERHEAD_BYTES = 300  # keys, attribute names and numbers beside the sets blob
# Why a transaction was cancelled that means "someone else moved it": stop and reload.
CONFLICT_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


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
    parts = NumberAttribute(null=True)  # on a head item: how many parts its blob has (absent: one)
    part = NumberAttribute(null=True)  # on a part item: its number (1 and up)


Operation = tuple[Literal["save", "delete"], "CheckpointItem", Condition]
# The operations that must land in the same transaction: a checkpoint's head and its parts.
Group = list[Operation]


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


def _to_checkpoint(item: CheckpointItem, parts: dict[int, tuple[int, bytes]]) -> MailboxCheckpoint:
    count = int(item.parts) if item.parts is not None else 1
    try:
        blob = join_parts(item.sets or b"", int(item.revision), count, parts)
    except TornCheckpointError as exc:
        raise CheckpointConflictError(f"checkpoint {item.path!r} is torn: {exc}") from None
    sets = MailboxCheckpoint.decode_sets(blob)
    return MailboxCheckpoint(path=item.path, uidvalidity=int(item.uidvalidity), uidnext=int(item.uidnext),
                             highestmodseq=int(item.highestmodseq) if item.highestmodseq is not None else None,
                             uids=sets.uids, flags=sets.flags, labels=sets.labels, revision=int(item.revision),
                             known=sets.known, synced_at=sets.synced_at, resets=sets.resets)


def load_checkpoints(account: str) -> AccountCheckpoints:
    """Every stored checkpoint of ``account``; :class:`CheckpointConflictError` if one is torn."""
    result = AccountCheckpoints()
    heads: list[CheckpointItem] = []
    parts: dict[str, dict[int, tuple[int, bytes]]] = {}
    for item in CheckpointItem.query(account, consistent_read=True):
        if item.path == ACCOUNT_MARKER:
            result.initialized = bool(item.initialized)
        elif item.part is not None:
            head_path = item.path.rpartition(PART_SUFFIX)[0]
            parts.setdefault(head_path, {})[int(item.part)] = (int(item.revision), item.sets or b"")
        else:
            heads.append(item)
    # Parts without a head (a mailbox deleted before its parts were deleted with it): nothing to load.
    for head in heads:
        result.mailboxes[head.path] = _to_checkpoint(head, parts.get(head.path, {}))
    return result


def _condition(revision: int | None, epoch: int) -> Condition:
    fenced = CheckpointItem.epoch.does_not_exist() | (CheckpointItem.epoch <= epoch)
    if revision is None:  # the account marker: only fenced
        return fenced
    # Revision 0 means "no item yet": a first write must not overwrite someone else's.
    if revision == 0:
        return CheckpointItem.path.does_not_exist()
    return (CheckpointItem.revision == revision) & fenced


def commit(account: str, epoch: int, writes: Sequence[tuple[MailboxCheckpoint, int]],
           deletions: Sequence[MailboxDeletion] = (), *, mark_initialized: bool = False) -> None:
    """Store new checkpoints (each with the revision it was computed from) and deletions.

    One item: one conditional write. Several (an account's first baseline: every folder
    plus the marker; a catch-up after a reconnect): one ``TransactWriteItems`` per 100
    items / ~4 MB, every item keeping its own condition, the marker in the last one. A
    baseline of six folders is then one call instead of seven (at twice the write units
    per item, which for a few hundred bytes is the cheaper side of the trade), and it
    lands whole or not at all. Several transactions go in order, so the marker still
    lands only after every mailbox's baseline did; a crash in between continues the
    baseline silently. Within one commit a later write of a path supersedes an earlier
    one (both were computed from the same stored revision).
    """
    latest: dict[str, tuple[MailboxCheckpoint, int]] = {checkpoint.path: (checkpoint, expected)
                                                        for checkpoint, expected in writes}
    groups: list[Group] = [_checkpoint_writes(account, epoch, checkpoint, expected)
                           for checkpoint, expected in latest.values()]
    groups += [_deletion(account, epoch, deletion) for deletion in deletions]
    if mark_initialized:
        marker = CheckpointItem(account, ACCOUNT_MARKER, initialized=True, epoch=epoch)
        groups.append([("save", marker, _condition(None, epoch))])
    if len(groups) == 1 and len(groups[0]) == 1:
        _write_one(*groups[0][0])
        return
    for chunk in _transaction_chunks(groups):
        _write_transaction([operation for group in chunk for operation in group])


def _checkpoint_writes(account: str, epoch: int, checkpoint: MailboxCheckpoint, expected: int) -> Group:
    """The head item (under the revision condition) and, for a large blob, its part items.

    Parts carry only the epoch fence: the head's condition guards the whole transaction, and
    a part is never written without its head. A smaller later revision leaves higher-numbered
    parts behind; readers ignore them (the head says how many parts count).
    """
    pieces = split_blob(checkpoint.encode_sets(), PART_BYTES)
    head = CheckpointItem(account, checkpoint.path, uidvalidity=checkpoint.uidvalidity,
                          uidnext=checkpoint.uidnext, highestmodseq=checkpoint.highestmodseq,
                          revision=checkpoint.revision, sets=pieces[0], epoch=epoch,
                          parts=len(pieces) if len(pieces) > 1 else None)
    group: Group = [("save", head, _condition(expected, epoch))]
    for number, piece in enumerate(pieces[1:], start=1):
        part = CheckpointItem(account, f"{checkpoint.path}{PART_SUFFIX}{number}", revision=checkpoint.revision,
                              part=number, sets=piece, epoch=epoch)
        group.append(("save", part, _condition(None, epoch)))
    return group


def _deletion(account: str, epoch: int, deletion: MailboxDeletion) -> Group:
    """The head item (under the revision condition) and every part item stored for its path.

    The parts are read first (one query; a mailbox deletion is rare): leftovers of an earlier,
    larger revision are numbered past the head's ``parts``, so its count alone would miss them.
    """
    group: Group = [("delete", CheckpointItem(account, deletion.path), _condition(deletion.revision, epoch))]
    parts = CheckpointItem.query(account, CheckpointItem.path.startswith(f"{deletion.path}{PART_SUFFIX}"),
                                 consistent_read=True, attributes_to_get=["account", "path"])
    group += [("delete", part, _condition(None, epoch)) for part in parts]
    return group


def _transaction_chunks(groups: list[Group]) -> Iterator[list[Group]]:
    """Transactions of whole groups: a checkpoint's parts never land apart from its head.

    A group alone over the limits still gets a transaction of its own (DynamoDB then
    refuses it; that would take a blob of tens of MB).
    """
    return bounded_chunks(groups, max_count=TRANSACTION_ITEMS, max_bytes=TRANSACTION_BYTES, count_of=len,
                          size_of=lambda group: sum(len(item.sets or b"") + ITEM_OVERHEAD_BYTES
                                                    for _, item, _ in group))


def _write_transaction(operations: list[Operation]) -> None:
    try:
        with TransactWrite(connection=CheckpointItem._get_connection().connection) as transaction:
            for kind, item, condition in operations:
                if kind == "save":
                    transaction.save(item, condition=condition)
                else:
                    transaction.delete(item, condition=condition)
    except TransactWriteError as exc:
        reasons = {reason.code for reason in exc.cancellation_reasons if reason is not None}
        if reasons & CONFLICT_REASONS:
            paths = ", ".join(repr(item.path) for _, item, _ in operations)
            raise CheckpointConflictError(f"checkpoints {paths} moved or fenced by a newer lease") from None
        raise


def _write_one(kind: Literal["save", "delete"], item: CheckpointItem, condition: Condition) -> None:
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
