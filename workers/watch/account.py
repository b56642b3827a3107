"""One watched account: its IMAP connections, checkpoints, and the work that keeps them current.

Work for an account runs in the shared thread pool, one task at a time per account
(requests that arrive while a task runs are merged into the next one), so an account's
connections and checkpoints are only ever touched by one thread at a time.

::

                 connect (backoff, staggered)
      STOPPED ◀──────────┐        │
         ▲ stop()        │        ▼
         │          ┌─ CATCH-UP: login, load checkpoints, LIST, sync every mailbox ─┐
         │          │                                                                │ ok
         │   error: close, backoff                                                  ▼
         │          └────────────────────────── IDLE on INBOX (NOTIFY for the others)
         │                                          │ socket readable / re-issue timer / sweep timer
         │                                          ▼
         └──────────────────────────────────── SYNC the hinted mailboxes, IDLE again

- Every sync is *reconciled by UID* from the checkpoint; IDLE/NOTIFY lines are only hints.
- After any error the connections are dropped and the next connect does a full catch-up
  from the stored checkpoints, so changes made while disconnected are emitted once.
- Events are published before the checkpoint that includes them is committed; a
  checkpoint conflict (lease moved, or someone else wrote) drops the connections and
  the next catch-up reloads the checkpoints.
- Memory is bounded by one pass: a sync lists at most ``watcher_catchup_batch`` new
  messages per snapshot (:mod:`chalicelib.sync.passes`), publishes and commits them, and
  snapshots again until the folder is complete. A crash between passes resumes from the
  last committed pass; a re-published pass carries the same event ids.
- A catch-up of an initialized account commits folder by folder (pass by pass); only an
  account's first baseline (no message events, bounded by checkpoint size) is collected
  into one transaction together with the account's ``initialized`` marker.
- Account events: a login outcome that changes the account's state publishes one event
  and then moves the state (conditional write), see :mod:`chalicelib.sync.account_state`.
- Connections: one (IDLE + NOTIFY) on servers with NOTIFY; without NOTIFY a second one
  sweeps STATUS of the other folders every ``watcher_status_poll_seconds`` (when the
  per-account budget allows two; otherwise the sweep borrows the IDLE connection).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from chalicelib.errors import AccountNotFoundError, ConflictError, MailServerError
from chalicelib.events.model import Event
from chalicelib.events.publisher import EventSink, PublishError
from chalicelib.imap.message_content import ContentRequest
from chalicelib.imap.messages import MessageSummary
from chalicelib.imap.watch import CommandFailedError, ConnectionLostError, Describe, WatchConnection
from chalicelib.imap.watch_responses import Hints, MailboxStatus
from chalicelib.services import accounts as account_service
from chalicelib.services import notify_content
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import checkpoints as checkpoint_store
from chalicelib.store.checkpoints import AccountCheckpoints, CheckpointConflictError, MailboxDeletion
from chalicelib.sync.account_state import LoginOutcome, initialized_event, transition_event
from chalicelib.sync.checkpoint import MailboxCheckpoint
from chalicelib.sync.mailboxes import ListedMailbox, diff_mailboxes, mailbox_deleted_event, mailbox_new_event
from chalicelib.sync.reconcile import MailboxSnapshot, reconcile_mailbox
from workers.watch import logger

# The second connection (other folders, on NOTIFY servers) is closed after this long unused.
HELPER_IDLE_SECONDS = 120.0
RECOVERABLE = (ConnectionLostError, CommandFailedError, MailServerError, PublishError, CheckpointConflictError,
               OSError)


class Scheduler(Protocol):
    def submit(self, task: Callable[[], None]) -> None: ...
    def watch_idle(self, account: AccountWatch, connection: WatchConnection) -> None: ...
    def forget(self, account: AccountWatch) -> None: ...


def message_new_data(path: str, uidvalidity: int, summary: MessageSummary) -> dict:
    """``messageNew`` data: exactly the mail API's listing entry for the message, plus the
    text and headers the notify settings asked for (:mod:`chalicelib.services.notify_content`)."""
    return notify_content.message_new_data(path, uidvalidity, summary)


@dataclass
class WatchContext:
    """What every account of one watcher process shares."""

    sink: EventSink
    settings: Settings
    worker: str
    lease_epoch_of: Callable[[str], int]
    scheduler: Scheduler
    describe: Describe = message_new_data
    notify_request: Callable[[], ContentRequest] = notify_content.current_request
    open_connection: Callable[..., WatchConnection] = WatchConnection.open


@dataclass
class _Work:
    connect: bool = False
    readable: bool = False
    reissue: bool = False
    sweep: bool = False
    carried: bool = False  # hints that arrived inside command responses
    close_helper: bool = False

    def merge(self, other: _Work) -> None:
        for name in ("connect", "readable", "reissue", "sweep", "carried", "close_helper"):
            setattr(self, name, getattr(self, name) or getattr(other, name))

    def __bool__(self) -> bool:
        return self.connect or self.readable or self.reissue or self.sweep or self.carried or self.close_helper


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


class AccountWatch:
    def __init__(self, account: str, state: str, version: int | None, context: WatchContext,
                 updated_at: object = None) -> None:
        self.account = account
        self.state = state
        self.version = version
        self.updated_at = updated_at
        self.context = context
        self.settings = context.settings
        self.retry_at: float | None = None
        self.reissue_at: float | None = None
        self.sweep_at: float | None = None
        self.listener: WatchConnection | None = None
        self.helper: WatchConnection | None = None
        self.helper_used_at = 0.0
        self.checkpoints = AccountCheckpoints()
        self.listed: dict[str, ListedMailbox] = {}
        self.statuses: dict[str, MailboxStatus] = {}
        self.watch_path = "INBOX"
        self.failures = 0
        self._lock = threading.Lock()
        self._pending = _Work()
        self._busy = False
        self._stopping = False
        self._early = False
        self._batch: _Batch | None = None
        self._carried = Hints()
        self.stopped = threading.Event()

    # -- scheduling (any thread) ------------------------------------------------------------

    def request(self, **work: bool) -> None:
        with self._lock:
            if self._stopping:
                return
            self._pending.merge(_Work(**work))
            if self._busy:
                return
            self._busy = True
        self.context.scheduler.submit(self._run)

    def stop(self) -> None:
        """Stop watching; returns at once (``stopped`` is set when the last task is done)."""
        with self._lock:
            self._stopping = True
            idle = not self._busy
        if idle:
            self._close()
            self.stopped.set()
            return
        # A task may be blocked reading from the server: end its connections under it so
        # it fails fast, sees the stop, and closes them properly.
        for connection in (self.listener, self.helper):
            if connection is not None:
                connection.interrupt()

    def due_work(self, now: float) -> dict[str, bool]:
        """Timers that have fired (called by the multiplexer thread)."""
        work: dict[str, bool] = {}
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            work["connect"] = True
        if self.reissue_at is not None and now >= self.reissue_at:
            self.reissue_at = None
            work["reissue"] = True
        if self.sweep_at is not None and now >= self.sweep_at:
            self.sweep_at = None
            work["sweep"] = True
        if self.helper is not None and self.sweep_at is None and now - self.helper_used_at > HELPER_IDLE_SECONDS:
            self.helper_used_at = now  # asked once; the task closes it
            work["close_helper"] = True
        return work

    # -- the task (pool thread) ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                work, self._pending = self._pending, _Work()
                if self._stopping or not work:
                    self._busy = False
                    stopping = self._stopping
                    break
            try:
                self._do(work)
            except AccountNotFoundError:
                logger.info("account gone; not watching it", extra={"account": self.account})
                self._close()
            except RECOVERABLE as exc:
                self._fail(exc)
            except Exception:  # noqa: BLE001 - one account's bug must not stop the others
                logger.exception("unexpected error while watching", extra={"account": self.account})
                self._fail(None)
        if stopping:
            self._close()
            self.stopped.set()

    def _do(self, work: _Work) -> None:
        if self.listener is None:
            if work:
                self._connect_and_catch_up()
            return
        listener = self.listener
        if work.close_helper and self.helper is not None and self.sweep_at is None:
            self.helper.close()
            self.helper = None
        two_connections = self.settings.watcher_connections_per_account > 1
        hints, self._carried = self._carried, Hints()
        if work.readable:
            hints = hints | listener.drain_idle(early=self._early)
            self._early = False
        logger.debug("work", extra={"account": self.account, "work": repr(work), "hints": repr(hints)})
        if hints.bye:
            raise ConnectionLostError("server closed the connection")
        hints = self._without_noise(hints)
        # Other folders are synced on the second connection: the IDLE connection stays in
        # IDLE on INBOX, and never selects another folder (a change in a folder while it is
        # selected would come as EXISTS, and be lost when we switch back).
        if two_connections and (hints.mailboxes or hints.mailbox_list_changed or work.sweep):
            self._sync_elsewhere(hints, work.sweep)
        needs_listener = (hints.selected_changed or work.reissue or not listener.idling
                          or (not two_connections and (hints.mailboxes or hints.mailbox_list_changed or work.sweep)))
        if not needs_listener:
            self.context.scheduler.watch_idle(self, listener)
            return
        # Stop the multiplexer watching the socket first: after a timer's work (re-issue,
        # sweep) it is still registered, and the answers to our own commands would come back
        # as a stale "readable" (harmless now, see drain_idle, but a wasted task).
        self.context.scheduler.forget(self)
        hints = hints | listener.stop_idle()
        if hints.bye:
            raise ConnectionLostError("server closed the connection")
        if not two_connections:
            self._sync_others(listener, hints, work.sweep)
        elif hints.mailboxes or hints.mailbox_list_changed:
            self._sync_elsewhere(hints, False)
        self._sync(listener, self.watch_path)
        self._idle(listener)

    def _without_noise(self, hints: Hints) -> Hints:
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

    def _sync_others(self, connection: WatchConnection, hints: Hints, sweep: bool) -> None:
        if hints.mailbox_list_changed:
            self._sync_mailbox_list(connection, self.checkpoints.initialized)
        for path in sorted(hints.mailboxes - {self.watch_path}):
            if path in self.checkpoints.mailboxes:
                self._sync(connection, path)
        if sweep:
            self._sweep(connection)

    def _sync_elsewhere(self, hints: Hints, sweep: bool) -> None:
        helper = self._helper()
        self._sync_others(helper, hints, sweep)
        # The helper has no NOTIFY; what it hears is about the folder it has selected.
        while helper.take_unsolicited().selected_changed and helper.selected not in (None, self.watch_path):
            self._sync(helper, helper.selected)

    # -- connecting ------------------------------------------------------------------------

    def _connect_and_catch_up(self) -> None:
        credentials = account_service.load_credentials(self.account)
        if credentials.imap is None or credentials.imap_password is None:
            raise AccountNotFoundError(f"account {self.account!r} has no IMAP settings")
        try:
            listener = self.context.open_connection(credentials.imap, credentials.imap_password)
        except MailServerError as exc:
            self._record_login(LoginOutcome(ok=False, code=exc.code, response=exc.server_response or exc.message))
            raise
        self.listener = listener
        self._record_login(LoginOutcome(ok=True, user=credentials.imap.user))
        self.checkpoints = checkpoint_store.load_checkpoints(self.account)
        if listener.notify:
            listener.set_notify()
        initialized = self.checkpoints.initialized
        # A first baseline of every folder is a single transaction (and the account marker
        # lands with it, or nothing does). An initialized account commits as it goes: its
        # catch-up may carry a large backlog, and holding it all would defeat the bounded passes.
        self._batch = None if initialized else _Batch()
        try:
            synced = self._sync_mailbox_list(listener, initialized)
            for path in sorted(set(self.checkpoints.mailboxes) - synced - {self.watch_path}):
                self._sync(listener, path)
            if self.watch_path not in synced:
                self._sync(listener, self.watch_path)
            if not initialized:
                self._batch.events.append(initialized_event(self.account))
                self._batch.mark_initialized = True
                self._flush_batch()
        finally:
            self._batch = None
        self.checkpoints.initialized = True
        if not listener.notify:
            self.sweep_at = time.monotonic() + self.settings.watcher_status_poll_seconds
        self.failures = 0
        self._idle(listener)

    def _record_login(self, outcome: LoginOutcome) -> None:
        if transition_event(self.account, self.state, self.version, outcome) is None:
            return  # the usual case for a retry: nothing to read, nothing to say
        # About to announce a change: make sure it is one against what is stored now (an
        # edit through the API resets the state to "new" and bumps the version). A watch
        # that starts from "new" read it moments ago; a stale read there only costs a
        # duplicate id, which consumers drop.
        if self.state != "new":
            fresh = account_store.get_account(self.account)
            self.state, self.version = fresh.state, fresh.version
        event = transition_event(self.account, self.state, self.version, outcome)
        if event is None:
            return
        self.context.sink.publish([event])
        try:
            self.version = account_store.set_account_state(self.account, outcome.state, expected_state=self.state)
            self.state = outcome.state
        except ConflictError:
            fresh = account_store.get_account(self.account)
            self.state, self.version = fresh.state, fresh.version

    def _helper(self) -> WatchConnection:
        if self.helper is None:
            credentials = account_service.load_credentials(self.account)
            self.helper = self.context.open_connection(credentials.imap, credentials.imap_password)
        self.helper_used_at = time.monotonic()
        return self.helper

    def _idle(self, listener: WatchConnection) -> None:
        if listener.selected != self.watch_path:
            # Never a bare EXAMINE: its EXISTS would tell the connection about mail that
            # arrived since our last sync, and IDLE would then never report it.
            self._sync(listener, self.watch_path)
        carried = listener.take_unsolicited()
        if carried:
            with self._lock:
                self._carried = self._carried | carried
                self._pending.merge(_Work(carried=True))
            return
        self.reissue_at = time.monotonic() + self.settings.watcher_idle_reissue_seconds
        if listener.start_idle():
            with self._lock:
                self._pending.merge(_Work(readable=True))
                self._early = True
            return
        self.context.scheduler.watch_idle(self, listener)

    def _fail(self, exc: BaseException | None) -> None:
        self._close()
        self.failures += 1
        ceiling = min(self.settings.watcher_reconnect_max_seconds,
                      self.settings.watcher_reconnect_min_seconds * 2 ** min(self.failures - 1, 20))
        delay = ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
        self.retry_at = time.monotonic() + delay
        if exc is not None:
            logger.info("watch interrupted; retrying", extra={"account": self.account, "error": type(exc).__name__,
                                                              "detail": str(exc)[:200], "retry_in": round(delay, 2)})

    def _close(self) -> None:
        self.context.scheduler.forget(self)
        for connection in (self.listener, self.helper):
            if connection is not None:
                connection.close()
        self.listener = self.helper = None
        self.reissue_at = self.sweep_at = None
        self._early = False
        self._carried = Hints()

    # -- syncing ---------------------------------------------------------------------------

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
        if connection.gmail:
            self.watch_path = next((p for p, m in self.listed.items() if m.special_use == "\\All"), "INBOX")
        changes = diff_mailboxes(set(self.checkpoints.mailboxes), self.listed)
        for path in changes.deleted:
            old = self.checkpoints.mailboxes[path]
            delimiter = next((m.delimiter for m in self.listed.values()), None)
            events = [mailbox_deleted_event(self.account, path, delimiter, old.uidvalidity)] if announce else []
            self._commit(events, [], [MailboxDeletion(path, old.revision)])
            self.statuses.pop(path, None)
        for mailbox in changes.created:
            if announce:
                snapshot = self._snapshot(connection, mailbox.path, None, all_new=True)
                empty = MailboxCheckpoint.empty(mailbox.path, snapshot.uidvalidity)
                result = reconcile_mailbox(self.account, empty, snapshot, special_use=mailbox.special_use)
                created = mailbox_new_event(self.account, mailbox, snapshot.uidvalidity)
                self._commit([created, *result.events], [(result.checkpoint, 0)])
                if snapshot.partial:  # a folder created with its mail (a bulk import): the rest in passes
                    self._sync(connection, mailbox.path)
            elif mailbox.path != self.watch_path:  # the caller syncs the IDLE mailbox last
                self._sync(connection, mailbox.path)
        return {mailbox.path for mailbox in changes.created} - {self.watch_path}

    def _snapshot(self, connection: WatchConnection, path: str, previous: MailboxCheckpoint | None,
                  all_new: bool = False) -> MailboxSnapshot:
        return connection.snapshot(path, previous, all_new=all_new, flags_window=self.settings.watcher_flags_window,
                                   describe=self.context.describe, content=self.context.notify_request(),
                                   limit=self.settings.watcher_catchup_batch)

    def _sync(self, connection: WatchConnection, path: str) -> None:
        """Bring ``path`` up to date: one pass, or as many bounded passes as its backlog needs.

        Each partial pass is published and committed before the next snapshot, so at most
        one pass of events is ever held; the next pass starts from the committed checkpoint.
        """
        while True:
            previous = self.checkpoints.mailboxes.get(path)
            snapshot = self._snapshot(connection, path, previous)
            result = reconcile_mailbox(self.account, previous, snapshot, special_use=self._special_use(path))
            writes = [(result.checkpoint, previous.revision if previous else 0)] if result.changed else []
            if not snapshot.partial:
                if writes:
                    self._commit(result.events, writes)
                return
            # The next pass starts from this one's stored checkpoint, and a pass never
            # waits in the catch-up batch (only possible if an account lost its marker).
            self._flush_batch()
            self._store(result.events, writes)
            logger.debug("partial sync pass", extra={"account": self.account, "path": path,
                                                     "events": len(result.events),
                                                     "uidnext": result.checkpoint.uidnext})

    def _sweep(self, connection: WatchConnection) -> None:
        """Servers without NOTIFY: LIST, then STATUS each other folder; sync the ones that moved."""
        self._sync_mailbox_list(connection, self.checkpoints.initialized)
        for path in sorted(self.listed):
            if path == self.watch_path:
                continue
            status = connection.status(path)
            if status != self.statuses.get(path) or status.highestmodseq is None:
                self._sync(connection, path)
                self.statuses[path] = status
        self.sweep_at = time.monotonic() + self.settings.watcher_status_poll_seconds

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
                deletions: list[MailboxDeletion] | None = None, *, mark_initialized: bool = False) -> None:
        if self._batch is not None:
            self._batch.events.extend(events)
            self._batch.writes.extend(writes)
            self._batch.deletions.extend(deletions or [])
            return
        self._store(events, writes, deletions, mark_initialized=mark_initialized)

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
