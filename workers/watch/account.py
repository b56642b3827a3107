"""One watched account: its IMAP connections, timers and the work that keeps its folders current.

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

- What is synced and how (reconciled by UID, events before checkpoints, bounded passes,
  the first baseline as one transaction) is :mod:`workers.watch.mailbox_sync`; this module
  owns the connections, the timers and the order in which work happens.
- After any error the connections are dropped and the next connect does a full catch-up
  from the stored checkpoints, so changes made while disconnected are emitted once; a
  checkpoint conflict (lease moved, or someone else wrote) does the same.
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
from dataclasses import dataclass

from chalicelib.errors import AccountNotFoundError, ConflictError, MailServerError
from chalicelib.events.publisher import PublishError
from chalicelib.imap.limits import RESPONSE_TOO_LARGE
from chalicelib.imap.watch import CommandFailedError, ConnectionLostError, WatchConnection
from chalicelib.imap.watch_responses import Hints
from chalicelib.incarnations import LEGACY
from chalicelib.services import accounts as account_service
from chalicelib.store import accounts as account_store
from chalicelib.store.checkpoints import CheckpointConflictError
from chalicelib.sync.account_state import LoginOutcome, transition_event
from workers.watch import logger
from workers.watch.context import WatchContext
from workers.watch.mailbox_sync import MailboxSync

# The second connection (other folders, on NOTIFY servers) is closed after this long unused.
HELPER_IDLE_SECONDS = 120.0
RECOVERABLE = (ConnectionLostError, CommandFailedError, MailServerError, PublishError, CheckpointConflictError,
               OSError)


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


class AccountWatch:
    def __init__(self, account: str, state: str, version: int | None, context: WatchContext,
                 updated_at: object = None) -> None:
        self.account = account
        self.state = state
        self.version = version
        self.incarnation = LEGACY  # read with the credentials at every connect
        self.updated_at = updated_at
        self.context = context
        self.settings = context.settings
        self.retry_at: float | None = None
        self.reissue_at: float | None = None
        self.sweep_at: float | None = None
        self.listener: WatchConnection | None = None
        self.helper: WatchConnection | None = None
        self.helper_used_at = 0.0
        self.folders = MailboxSync(account, context)
        self.failures = 0
        self._lock = threading.Lock()
        self._pending = _Work()
        self._busy = False
        self._stopping = False
        self._early = False
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
            # Only the connect timer opens a connection: it carries the backoff and the
            # connect-rate token. A timer that fired while the last connection was failing
            # (re-issue, sweep) leaves work behind that must not reconnect at once.
            if work.connect:
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
        hints = self.folders.without_noise(hints)
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
        self.folders.sync(listener, self.folders.watch_path)
        self._idle(listener)

    def _sync_others(self, connection: WatchConnection, hints: Hints, sweep: bool) -> None:
        self.folders.sync_others(connection, hints, sweep)
        if sweep:
            self.sweep_at = time.monotonic() + self.settings.watcher_status_poll_seconds

    def _sync_elsewhere(self, hints: Hints, sweep: bool) -> None:
        helper = self._helper()
        self._sync_others(helper, hints, sweep)
        # The helper has no NOTIFY; what it hears is about the folder it has selected.
        while helper.take_unsolicited().selected_changed and helper.selected not in (None, self.folders.watch_path):
            self.folders.sync(helper, helper.selected)

    # -- connecting ------------------------------------------------------------------------

    def _connect_and_catch_up(self) -> None:
        credentials = account_service.load_credentials(self.account)
        if credentials.imap is None or credentials.imap_password is None:
            raise AccountNotFoundError(f"account {self.account!r} has no IMAP settings")
        self.incarnation = self.folders.incarnation = credentials.incarnation
        try:
            listener = self.context.open_connection(credentials.imap, credentials.imap_password)
        except MailServerError as exc:
            self._record_login(LoginOutcome(ok=False, code=exc.code, response=exc.server_response or exc.message))
            raise
        self.listener = listener
        self._record_login(LoginOutcome(ok=True, user=credentials.imap.user))
        self.folders.load()
        if listener.notify:
            listener.set_notify()
        self.folders.catch_up(listener)
        if not listener.notify:
            self.sweep_at = time.monotonic() + self.settings.watcher_status_poll_seconds
        self.failures = 0
        self._idle(listener)

    def _record_login(self, outcome: LoginOutcome) -> None:
        if transition_event(self.account, self.state, self.version, outcome, incarnation=self.incarnation) is None:
            return  # the usual case for a retry: nothing to read, nothing to say
        # About to announce a change: make sure it is one against what is stored now (an
        # edit through the API resets the state to "new" and bumps the version; a watch
        # started from a watchlist row may hold a state that an earlier connection has moved
        # on since). Only real changes get here, so this read is rare.
        fresh = account_store.get_account(self.account)
        self.state, self.version = fresh.state, fresh.version
        event = transition_event(self.account, self.state, self.version, outcome, incarnation=self.incarnation)
        if event is None:
            return
        self.context.sink.publish([event])
        try:
            self.version = account_store.set_account_state(self.account, outcome.state, expected_state=self.state)
            self.state = outcome.state
        except ConflictError:
            # The state moved between our read and our write: an API edit reset it to "new"
            # while this very login was under way (a corrected password picked up by a retry).
            # This login's outcome is announced already; record it against the new state
            # without a second event, or the next connect would announce it again under the
            # edited version's id.
            fresh = account_store.get_account(self.account)
            self.state, self.version = fresh.state, fresh.version
            if fresh.state == "new":
                try:
                    self.version = account_store.set_account_state(self.account, outcome.state, expected_state="new")
                    self.state = outcome.state
                except ConflictError:
                    pass  # moved again: the next login compares against what is stored then

    def _helper(self) -> WatchConnection:
        if self.helper is None:
            credentials = account_service.load_credentials(self.account)
            self.helper = self.context.open_connection(credentials.imap, credentials.imap_password)
        self.helper_used_at = time.monotonic()
        return self.helper

    def _idle(self, listener: WatchConnection) -> None:
        if listener.selected != self.folders.watch_path:
            # Never a bare EXAMINE: its EXISTS would tell the connection about mail that
            # arrived since our last sync, and IDLE would then never report it.
            self.folders.sync(listener, self.folders.watch_path)
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
        if isinstance(exc, MailServerError) and exc.code == RESPONSE_TOO_LARGE:
            self._report_unusable(exc)
        self.failures += 1
        ceiling = min(self.settings.watcher_reconnect_max_seconds,
                      self.settings.watcher_reconnect_min_seconds * 2 ** min(self.failures - 1, 20))
        delay = ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
        self.retry_at = time.monotonic() + delay
        if exc is not None:
            logger.info("watch interrupted; retrying", extra={"account": self.account, "error": type(exc).__name__,
                                                              "detail": str(exc)[:200], "retry_in": round(delay, 2)})

    def _report_unusable(self, exc: MailServerError) -> None:
        """The server logged us in, then sent more than a cap allows (chalicelib/imap/limits.py):
        the account reports ``connectError`` as for a failed connect (a no-op when the login
        itself was what failed: that outcome is recorded already)."""
        try:
            self._record_login(LoginOutcome(ok=False, code=exc.code, response=exc.message))
        except Exception:  # noqa: BLE001 - the retry is scheduled whatever the store or queue says
            logger.warning("could not record the account's connectError", extra={"account": self.account})

    def _close(self) -> None:
        self.context.scheduler.forget(self)
        for connection in (self.listener, self.helper):
            if connection is not None:
                connection.close()
        self.listener = self.helper = None
        self.reissue_at = self.sweep_at = None
        self._early = False
        self._carried = Hints()
