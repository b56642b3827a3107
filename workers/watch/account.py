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

- What to do next (connect, which folders to sync or sweep, leave and re-enter IDLE, close
  the helper, how long to back off) is decided by the pure :mod:`chalicelib.sync.watch_plan`;
  this module owns the connections and the timers and carries the decisions out. What is
  synced and how (reconciled by UID, events before checkpoints, bounded passes, the first
  baseline as one transaction) is :mod:`workers.watch.mailbox_sync`.
- After any error the connections are dropped and the next connect does a full catch-up
  from the stored checkpoints, so changes made while disconnected are emitted once; a
  checkpoint conflict (lease moved, or someone else wrote) does the same.
- Account events: a login outcome that changes the account's state publishes one event
  and then moves the state (conditional write, with its ``lastError``), see
  :mod:`chalicelib.sync.account_state`. Failures after a good login are counted: repeated,
  they make the account ``syncError``; only a complete catch-up makes it ``connected`` again.
  The counters and those decisions (backoff series, syncError now or later, announce
  ``connected``) are the plan's :class:`~chalicelib.sync.watch_plan.Health`.
- Connections: one (IDLE + NOTIFY) on servers with NOTIFY; without NOTIFY a second one
  sweeps STATUS of the other folders every ``watcher_status_poll_seconds`` (when the
  per-account budget allows two; otherwise the sweep borrows the IDLE connection), and of
  INBOX too until IDLE has shown it reports promptly (``IdleLatency``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import fields
from datetime import UTC, datetime

from chalicelib.errors import AccountNotFoundError, ConflictError, MailServerError
from chalicelib.imap.watch import ConnectionLostError, WatchConnection
from chalicelib.imap.watch_responses import Hints
from chalicelib.incarnations import LEGACY
from chalicelib.services import accounts as account_service
from chalicelib.services import oauth2_app_health
from chalicelib.store import accounts as account_store
from chalicelib.sync.account_state import LoginOutcome, last_error, transition_event
from chalicelib.sync.watch_plan import (
    Finder,
    Health,
    Heard,
    IdleLatency,
    Steps,
    Wake,
    WatchState,
    fired_timers,
    plan_steps,
    reconnect_delay,
)
from chalicelib.token_refusal import login_refreshing_once
from workers.watch import logger
from workers.watch.context import WatchContext
from workers.watch.failures import RECOVERABLE, classify_failure
from workers.watch.mailbox_sync import MailboxSync


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
        self.health = Health()
        self.user: str | None = None
        self.idle_latency = IdleLatency()
        self._lock = threading.Lock()
        self._pending = Wake()
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
            self._pending = self._pending.merge(Wake(**work))
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
        fired = fired_timers(now, retry_at=self.retry_at, reissue_at=self.reissue_at, sweep_at=self.sweep_at,
                             helper_used_at=self.helper_used_at if self.helper is not None else None)
        if fired.connect:
            self.retry_at = None
        if fired.reissue:
            self.reissue_at = None
        if fired.sweep:
            self.sweep_at = None
        if fired.close_helper:
            self.helper_used_at = now  # asked once; the task closes it
        return {f.name: True for f in fields(fired) if getattr(fired, f.name)}

    # -- the task (pool thread) ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                work, self._pending = self._pending, Wake()
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
            except Exception as exc:  # noqa: BLE001 - one account's bug must not stop the others
                logger.exception("unexpected error while watching", extra={"account": self.account})
                self._fail(exc, unexpected=True)
        if stopping:
            self._close()
            self.stopped.set()

    def _state(self) -> WatchState:
        listener = self.listener
        return WatchState(connected=listener is not None, idling=listener is not None and listener.idling,
                          two_connections=self.settings.watcher_connections_per_account > 1,
                          helper_open=self.helper is not None, sweep_armed=self.sweep_at is not None,
                          idle=self.idle_latency)

    def _do(self, work: Wake) -> None:
        """Run the steps :func:`~chalicelib.sync.watch_plan.plan_steps` decides for ``work``."""
        listener = self.listener
        if listener is None:
            if plan_steps(self._state(), work).connect:
                self._connect_and_catch_up()
            return
        self._confirm_recovery()
        hints, self._carried = self._carried, Hints()
        reported = Hints()
        if work.readable:
            reported = listener.drain_idle(early=self._early)
            self._early = False
        logger.debug("work", extra={"account": self.account, "work": repr(work), "hints": repr(hints | reported)})
        bye = (hints | reported).bye
        hints = self.folders.without_noise(hints | reported)
        heard = Heard(selected_changed=hints.selected_changed, idle_reported=reported.selected_changed,
                      others_changed=bool(hints.mailboxes or hints.mailbox_list_changed), bye=bye)
        steps = plan_steps(self._state(), work, heard)
        # A sweep in the same task as IDLE's report may sync INBOX first: the find is IDLE's.
        swept_by: Finder = "idle" if heard.idle_reported else "sweep"
        if steps.reconnect:
            raise ConnectionLostError("server closed the connection")
        if steps.close_helper and self.helper is not None:
            self.helper.close()
            self.helper = None
        if steps.others_on_helper:
            self._note_found(self._sync_elsewhere(hints, steps), swept_by)
        if steps.keep_idling:
            self.context.scheduler.watch_idle(self, listener)
        if not steps.leave_idle and not steps.sync_idle_folder:
            return
        late = Hints()
        if steps.leave_idle:
            # Stop the multiplexer watching the socket first: after a timer's work (re-issue,
            # sweep) it is still registered, and the answers to our own commands would come back
            # as a stale "readable" (harmless now, see drain_idle, but a wasted task).
            self.context.scheduler.forget(self)
            late = listener.stop_idle()
        if steps.poke:
            late = late | listener.noop()
        if late.bye:
            raise ConnectionLostError("server closed the connection")
        if steps.others_on_listener:
            self._note_found(self._sync_others(listener, hints | late, steps), swept_by)
        elif late.mailboxes or late.mailbox_list_changed:
            self._sync_elsewhere(late, Steps())
        if steps.sync_idle_folder or late.selected_changed:
            self._note_found(self.folders.sync(listener, self.folders.watch_path), steps.found_by)
        self._idle(listener)

    def _note_found(self, changed: bool, found_by: Finder) -> None:
        """Measure IDLE: who found a change in the IDLE folder first (see IdleLatency)."""
        if changed:
            before = self.idle_latency.prompt
            self.idle_latency = self.idle_latency.observe(found_by)
            if before != self.idle_latency.prompt:
                logger.info("IDLE latency verdict", extra={"account": self.account, "found_by": found_by,
                                                           "idle_prompt": self.idle_latency.prompt})

    def _sync_others(self, connection: WatchConnection, hints: Hints, steps: Steps) -> bool:
        changed = self.folders.sync_others(connection, hints, steps.sweep, steps.sweep_idle_folder)
        if steps.sweep:
            self.sweep_at = time.monotonic() + self.settings.watcher_status_poll_seconds
        return changed

    def _sync_elsewhere(self, hints: Hints, steps: Steps) -> bool:
        helper = self._helper()
        changed = self._sync_others(helper, hints, steps)
        # The helper has no NOTIFY; what it hears is about the folder it has selected.
        while helper.take_unsolicited().selected_changed and helper.selected is not None:
            path = helper.selected
            if self.folders.sync(helper, path) and path == self.folders.watch_path:
                changed = True
        return changed

    # -- connecting ------------------------------------------------------------------------

    def _connect_and_catch_up(self) -> None:
        try:
            # An OAuth2 account's access token may be refreshed here, and the refresh refused.
            credentials = account_service.load_credentials(self.account)
            if credentials.imap is None or credentials.imap_secret is None:
                raise AccountNotFoundError(f"account {self.account!r} has no IMAP settings")
            self.incarnation = self.folders.incarnation = credentials.incarnation
            listener = self._open_listener(credentials)
        except MailServerError as exc:
            # An application the provider refuses stops every account of it: say so for all now
            # (this one included: the login record below then finds it said already).
            oauth2_app_health.mark_app_invalid(self.account, exc, sink=self.context.sink)
            self._record_login(LoginOutcome(ok=False, code=exc.code, response=exc.server_response,
                                            message=exc.message))
            raise
        self.listener = listener
        self.health = self.health.logged_in(time.monotonic())
        self.user = credentials.imap.user
        self._record_login(LoginOutcome(ok=True, user=credentials.imap.user))
        self.folders.load()
        self.idle_latency = IdleLatency(supported=listener.capabilities.idle,
                                        reported_in_a_row=self.idle_latency.reported_in_a_row)
        if listener.capabilities.notify:
            listener.set_notify()
        self.folders.catch_up(listener)
        if not listener.capabilities.notify or not listener.capabilities.idle:
            self.sweep_at = time.monotonic() + self.settings.watcher_status_poll_seconds
        # Every folder is current: the state leaves syncError here (a login alone does not),
        # unless the server went over a read cap: then a connection that holds says so (_do).
        self.health, announce = self.health.caught_up()
        if announce:
            self._record_login(LoginOutcome(ok=True, user=credentials.imap.user, stage="sync"))
        self._idle(listener)

    def _open_listener(self, credentials: account_service.AccountCredentials) -> WatchConnection:
        def login(opened: account_service.AccountCredentials) -> WatchConnection:
            if opened.imap is None or opened.imap_secret is None:
                raise AccountNotFoundError(f"account {self.account!r} has no IMAP settings")
            return self.context.open_connection(opened.imap, opened.imap_secret)

        return login_refreshing_once(login, credentials,
                                     account_service.refreshed_imap_credentials(self.account, credentials))

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
        error = last_error(outcome, datetime.now(UTC).isoformat())
        try:
            self.version = account_store.set_account_state(self.account, outcome.state, expected_state=self.state,
                                                           last_error=error)
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
                    self.version = account_store.set_account_state(self.account, outcome.state, expected_state="new",
                                                                   last_error=error)
                    self.state = outcome.state
                except ConflictError:
                    pass  # moved again: the next login compares against what is stored then

    def _helper(self) -> WatchConnection:
        if self.helper is None:
            credentials = account_service.load_credentials(self.account)
            self.helper = self.context.open_connection(credentials.imap, credentials.imap_secret)
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
                self._pending = self._pending.merge(Wake(carried=True))
            return
        self.reissue_at = time.monotonic() + self.settings.watcher_idle_reissue_seconds
        if not listener.capabilities.idle:
            return  # a server without IDLE: the sweep and the re-issue timer do its work
        if listener.start_idle():
            with self._lock:
                self._pending = self._pending.merge(Wake(readable=True))
                self._early = True
            return
        self.context.scheduler.watch_idle(self, listener)

    def _fail(self, exc: BaseException, *, unexpected: bool = False) -> None:
        failure = classify_failure(exc, unexpected=unexpected)
        self.health, record_sync_error = self.health.failed(failure.kind, time.monotonic())
        self._close()
        delay = reconnect_delay(self.health.failures, minimum=self.settings.watcher_reconnect_min_seconds,
                                maximum=self.settings.watcher_reconnect_max_seconds)
        self.retry_at = time.monotonic() + delay
        if not unexpected:
            logger.info("watch interrupted; retrying", extra={"account": self.account, "error": type(exc).__name__,
                                                              "detail": str(exc)[:200], "retry_in": round(delay, 2)})
        if record_sync_error:
            try:
                self._record_login(failure.outcome)
            except Exception:  # noqa: BLE001 - the retry is scheduled; the next failure tries again
                logger.exception("could not record the sync error", extra={"account": self.account})

    def _confirm_recovery(self) -> None:
        """After an answer over a read cap, announce ``connected`` once a connection has held."""
        self.health, announce = self.health.confirmed(time.monotonic())
        if announce:
            self._record_login(LoginOutcome(ok=True, user=self.user, stage="sync"))

    def _close(self) -> None:
        self.context.scheduler.forget(self)
        for connection in (self.listener, self.helper):
            if connection is not None:
                connection.close()
        self.listener = self.helper = None
        self.health = self.health.closed()
        self.reissue_at = self.sweep_at = None
        self._early = False
        self._carried = Hints()
