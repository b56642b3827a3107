"""One account's folders brought up to date from its checkpoints: catch-up, sync, sweep, commit.

A :class:`MailboxSync` belongs to one :class:`~workers.watch.account.AccountWatch` and is only
used from that account's task (one thread at a time). It holds the account's checkpoints,
what LIST said, and the last STATUS of each folder; the connection to talk on is passed in.

::

    catch_up(conn) ──▶ LIST ─▶ new folders: baseline (silent) or mailboxNew + their mail
                          └──▶ deleted folders: mailboxDeleted, checkpoint removed
                   ──▶ sync(conn, path) for every other known folder, the IDLE folder last
    sync(conn, path) ─▶ snapshot ─▶ reconcile (pure) ─▶ publish events ─▶ commit checkpoint
                           ▲                                                 │ partial pass
                           └─────────────────────────────────────────────────┘

Invariants:
- Every sync is *reconciled by UID* from the checkpoint; IDLE/NOTIFY lines are only hints.
- Events are published before the checkpoint that includes them is committed; commits are
  conditional (revision never backwards, lease epoch not older): a conflict raises
  :class:`~chalicelib.store.checkpoints.CheckpointConflictError` and the caller reconnects.
- Memory is bounded by one pass: a sync lists at most ``watcher_catchup_batch`` new
  messages per snapshot (:mod:`chalicelib.sync.passes`), publishes and commits them, and
  snapshots again until the folder is complete. A crash between passes resumes from the
  last committed pass; a re-published pass carries the same event ids.
- A catch-up of an initialized account commits folder by folder (pass by pass); only an
  account's first baseline (no message events, bounded by checkpoint size) is collected
  into one transaction together with the account's ``initialized`` marker.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from chalicelib.events.model import Event
from chalicelib.imap.watch import WatchConnection
from chalicelib.imap.watch_responses import Hints, MailboxStatus
from chalicelib.imap.watch_snapshot import take_snapshot
from chalicelib.incarnations import LEGACY
from chalicelib.store import checkpoints as checkpoint_store
from chalicelib.store.checkpoints import AccountCheckpoints, MailboxDeletion
from chalicelib.sync.account_state import initialized_event
from chalicelib.sync.checkpoint import MailboxCheckpoint
from chalicelib.sync.mailboxes import ListedMailbox, diff_mailboxes, mailbox_deleted_event, mailbox_new_event
from chalicelib.sync.reconcile import MailboxSnapshot, reconcile_mailbox
from workers.watch import logger
from workers.watch.context import WatchContext


@dataclass
class _Batch:
    """An account's first baseline, published and stored as one transaction at its end.

    Holds checkpoints and mailbox events only: baselines list no messages. A bounded pass
    (a backlog found in a folder that already had a checkpoint) never waits in it.
    """

    events: list[Event] = field(default_factory=list)
    writes: list[tuple[MailboxCheckpoint, int]] = field(default_factory=list)
    deletions: list[MailboxDeletion] = field(default_factory=list)
    mark_initialized: bool = False


class MailboxSync:
    def __init__(self, account: str, context: WatchContext) -> None:
        self.account = account
        self.incarnation = LEGACY  # set by the account's watch from the record it connects with
        self.context = context
        self.settings = context.settings
        self.checkpoints = AccountCheckpoints()
        self.listed: dict[str, ListedMailbox] = {}
        self.statuses: dict[str, MailboxStatus] = {}
        self.watch_path = "INBOX"  # the folder the IDLE connection sits in ([Gmail]/All Mail on Gmail)
        self._batch: _Batch | None = None
        self._flags_rechecked_at = float("-inf")

    def load(self) -> None:
        """Read the stored checkpoints (after every connect: another process may have moved them)."""
        self.checkpoints = checkpoint_store.load_checkpoints(self.account)

    def catch_up(self, connection: WatchConnection) -> None:
        """Everything since the stored checkpoints: LIST, every other folder, the IDLE folder last."""
        initialized = self.checkpoints.initialized
        # A first baseline of every folder is a single transaction (and the account marker
        # lands with it, or nothing does). An initialized account commits as it goes: its
        # catch-up may carry a large backlog, and holding it all would defeat the bounded passes.
        self._batch = None if initialized else _Batch()
        try:
            synced = self._sync_mailbox_list(connection, initialized)
            for path in sorted(set(self.checkpoints.mailboxes) - synced - {self.watch_path}):
                self.sync(connection, path)
            if self.watch_path not in synced:
                self.sync(connection, self.watch_path)
            if not initialized:
                assert self._batch is not None  # opened above; a flush leaves it open
                self._batch.events.append(initialized_event(self.account, incarnation=self.incarnation))
                self._batch.mark_initialized = True
                self._flush_batch()
        finally:
            self._batch = None
        self.checkpoints.initialized = True

    def without_noise(self, hints: Hints) -> Hints:
        """Drop NOTIFY reports that match our checkpoints (Dovecot re-announces folders it
        auto-creates, and STATUS after our own EXAMINE); keep everything else."""
        known = self.checkpoints.mailboxes
        latest = dict(hints.statuses)
        changed = set()
        for path in hints.mailboxes:
            status, checkpoint = latest.get(path), known.get(path)
            if checkpoint is None or status is None or not checkpoint.matches_status(
                    status.uidvalidity, status.uidnext, status.highestmodseq, status.messages):
                changed.add(path)
        list_changed = hints.mailbox_list_changed and (not hints.list_entries or any(
            entry.old_name is not None or entry.selectable != (entry.mailbox.path in known)
            for entry in hints.list_entries))
        return Hints(selected_changed=hints.selected_changed, mailboxes=frozenset(changed),
                     mailbox_list_changed=list_changed, bye=hints.bye)

    def sync_others(self, connection: WatchConnection, hints: Hints, sweep: bool,
                    sweep_watch_path: bool = False) -> bool:
        """The folders other than the IDLE one that ``hints`` name (and all of them on a sweep,
        the IDLE one too with ``sweep_watch_path``). True if the IDLE folder's sync changed it."""
        if hints.mailbox_list_changed:
            self._sync_mailbox_list(connection, self.checkpoints.initialized)
        for path in sorted(hints.mailboxes - {self.watch_path}):
            if path in self.checkpoints.mailboxes:
                self.sync(connection, path)
        return self._sweep(connection, sweep_watch_path) if sweep else False

    def sync(self, connection: WatchConnection, path: str) -> bool:
        """Bring ``path`` up to date: one pass, or as many bounded passes as its backlog needs.
        True if its checkpoint changed (the server had something new to say about it).

        Each partial pass is published and committed before the next snapshot, so at most
        one pass of events is ever held; the next pass starts from the committed checkpoint.
        """
        changed = False
        fetch_attempts: Mapping[int, int] = {}  # new messages a FETCH did not return, retried by the next pass
        while True:
            previous = self.checkpoints.mailboxes.get(path)
            snapshot = self._snapshot(connection, path, previous, fetch_attempts=fetch_attempts)
            fetch_attempts = snapshot.fetch_attempts
            result = reconcile_mailbox(self.account, previous, snapshot, special_use=self._special_use(path),
                                       incarnation=self.incarnation)
            writes = [(result.checkpoint, previous.revision if previous else 0)] if result.changed else []
            changed = changed or result.changed
            if not snapshot.partial:
                if writes:
                    self._commit(result.events, writes)
                return changed
            # The next pass starts from this one's stored checkpoint, and a pass never
            # waits in the catch-up batch (only possible if an account lost its marker).
            self._flush_batch()
            self._store(result.events, writes)
            logger.debug("partial sync pass", extra={"account": self.account, "path": path,
                                                     "events": len(result.events),
                                                     "uidnext": result.checkpoint.uidnext})

    # -- folders ---------------------------------------------------------------------------

    def _special_use(self, path: str) -> str | None:
        if path.upper() == "INBOX":
            return "\\Inbox"
        listed = self.listed.get(path)
        return listed.special_use if listed else None

    def _sync_mailbox_list(self, connection: WatchConnection, announce: bool) -> set[str]:
        """LIST, then announce (or silently baseline) new folders and forget deleted ones.

        Returns the paths synced here (the new ones).
        """
        self.listed = connection.list_mailboxes()
        if connection.capabilities.gmail:
            self.watch_path = next((p for p, m in self.listed.items() if m.special_use == "\\All"), "INBOX")
        changes = diff_mailboxes(set(self.checkpoints.mailboxes), self.listed)
        for path in changes.deleted:
            old = self.checkpoints.mailboxes[path]
            delimiter = next((m.delimiter for m in self.listed.values()), None)
            events = [mailbox_deleted_event(self.account, path, delimiter, old.uidvalidity,
                                            incarnation=self.incarnation)] if announce else []
            self._commit(events, [], [MailboxDeletion(path, old.revision)])
            self.statuses.pop(path, None)
        for mailbox in changes.created:
            if announce:
                snapshot = self._snapshot(connection, mailbox.path, None, all_new=True)
                empty = MailboxCheckpoint.empty(mailbox.path, snapshot.uidvalidity)
                result = reconcile_mailbox(self.account, empty, snapshot, special_use=mailbox.special_use,
                                           incarnation=self.incarnation)
                created = mailbox_new_event(self.account, mailbox, snapshot.uidvalidity, incarnation=self.incarnation)
                # Stored as revision 1 even when the snapshot moved nothing past the empty checkpoint
                # (an empty folder on a server without UIDNEXT or MODSEQ: Courier): a stored revision 0
                # reads as "no item yet", and every later write of the folder would conflict.
                stored = result.checkpoint if result.changed else replace(result.checkpoint, revision=1)
                self._commit([created, *result.events], [(stored, 0)])
                if snapshot.partial:  # a folder created with its mail (a bulk import): the rest in passes
                    self.sync(connection, mailbox.path)
            elif mailbox.path != self.watch_path:  # the caller syncs the IDLE mailbox last
                self.sync(connection, mailbox.path)
        return {mailbox.path for mailbox in changes.created} - {self.watch_path}

    def _snapshot(self, connection: WatchConnection, path: str, previous: MailboxCheckpoint | None,
                  all_new: bool = False, fetch_attempts: Mapping[int, int] | None = None) -> MailboxSnapshot:
        return take_snapshot(connection, path, previous, all_new=all_new,
                             flags_window=self.settings.watcher_flags_window, describe=self.context.describe,
                             content=self.context.notify_request(), limit=self.settings.watcher_catchup_batch,
                             fetch_attempts=fetch_attempts)

    def _sweep(self, connection: WatchConnection, include_watch_path: bool) -> bool:
        """Servers without NOTIFY: LIST, then STATUS each other folder; sync the ones that moved.

        ``include_watch_path``: the IDLE folder too, where IDLE is not known to report promptly
        (see :mod:`chalicelib.sync.watch_plan`); returns True if its sync changed it.

        STATUS shows new mail, expunges and a new UIDVALIDITY, and with CONDSTORE every flag
        change (HIGHESTMODSEQ). Without CONDSTORE (Office 365) it shows the UNSEEN count: the
        commonest change, read/unread, is found on the next sweep; other flag changes in a
        folder whose STATUS did not move wait for the flags re-check, every
        ``watcher_flags_recheck_seconds``. So an idle account costs one STATUS per folder per
        sweep, not a sync of every folder.
        """
        self._sync_mailbox_list(connection, self.checkpoints.initialized)
        now = time.monotonic()
        recheck = now - self._flags_rechecked_at >= self.settings.watcher_flags_recheck_seconds
        synced = []
        watch_path_changed = False
        connection.close_mailbox()
        for path in sorted(self.listed):
            if path == self.watch_path and not include_watch_path:
                continue
            status = connection.status(path)
            if status != self.statuses.get(path) or (recheck and status.highestmodseq is None):
                changed = self.sync(connection, path)
                watch_path_changed = watch_path_changed or (changed and path == self.watch_path)
                self.statuses[path] = status
                synced.append(path)
        if recheck:
            self._flags_rechecked_at = now
        logger.debug("swept", extra={"account": self.account, "synced": synced, "flags_recheck": recheck})
        return watch_path_changed

    # -- publishing and committing -----------------------------------------------------------

    def _flush_batch(self) -> None:
        """Store what the catch-up batch holds now (it stays open for what follows)."""
        if self._batch is None:
            return
        batch, self._batch = self._batch, None
        try:
            if batch.events or batch.writes or batch.deletions or batch.mark_initialized:
                self._store(batch.events, batch.writes, batch.deletions, mark_initialized=batch.mark_initialized)
        finally:
            self._batch = _Batch()

    def _commit(self, events: list[Event], writes: list[tuple[MailboxCheckpoint, int]],
                deletions: list[MailboxDeletion] | None = None) -> None:
        if self._batch is not None:
            self._batch.events.extend(events)
            self._batch.writes.extend(writes)
            self._batch.deletions.extend(deletions or [])
            return
        self._store(events, writes, deletions)

    def _store(self, events: list[Event], writes: list[tuple[MailboxCheckpoint, int]],
               deletions: list[MailboxDeletion] | None = None, *, mark_initialized: bool = False) -> None:
        """Publish, then commit the checkpoints (conditional on revisions and the lease epoch)."""
        if events:
            self.context.sink.publish(events)
        checkpoint_store.commit(self.account, self.context.lease_epoch_of(self.account), writes, deletions or [],
                                mark_initialized=mark_initialized)
        for checkpoint, _ in writes:
            self.checkpoints.mailboxes[checkpoint.path] = checkpoint
        for deletion in deletions or []:
            self.checkpoints.mailboxes.pop(deletion.path, None)
