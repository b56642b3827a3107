"""What one watched account does next. Pure: no sockets, no clock reads, no AWS.

Everything that decides the watcher's next step for an account lives in this file; the
executor (:class:`workers.watch.account.AccountWatch`) performs the steps and feeds back
what happened. The inputs are a :class:`Wake` (what woke the account's task: a timer,
the multiplexer, hints carried in a command's answer), what the server said
(:class:`Heard`) and the account's :class:`WatchState`; the output is :class:`Steps`, in
the order the executor runs them::

    timers ──fired_timers()──▶ Wake ─┐
    IDLE / answers ──▶ Heard ────────┼──▶ plan_steps() ──▶ Steps ──▶ executor
    account ──▶ WatchState ──────────┘                                   │
        ▲                                                                │ INBOX found changed
        └──────────── IdleLatency.observe(how it was found) ◀────────────┘

Decision table of :func:`plan_steps` (first matching row; "others" are the folders other
than the IDLE folder, named by hints or due for a sweep):

============================  ==================================================================
not connected                 connect only if the connect timer fired (it carries the backoff
                              and the connect-rate token); other timers' work waits
the server said BYE           reconnect (drop both connections, back off)
close_helper fired            close the helper first, unless a sweep is armed (it will use it)
others, two connections       sync them on the helper; the IDLE connection stays in IDLE
IDLE folder changed, re-issue leave IDLE, (one connection: sync others here), sync the IDLE folder,
timer, not idling, or others  IDLE again
on one connection
a sweep, IDLE not trusted     poke: leave IDLE, NOOP, sync the IDLE folder if that showed a change,
                              IDLE again
nothing for the IDLE folder   keep idling (hand the socket back to the multiplexer)
============================  ==================================================================

IDLE latency (:class:`IdleLatency`). A server's IDLE may only poll: Cyrus without idled (the
Debian default cyrus.conf) and Courier without its enhanced IDLE report a change up to 60 s
late. The STATUS sweep (servers without NOTIFY) therefore includes the IDLE folder, and
pokes the IDLE connection (DONE, NOOP, IDLE: the server reports what it has pending), until
IDLE has reported :data:`PROMPT_AFTER_REPORTS` changes in a row before any other path found
them; a change found first by the sweep, a poke or a re-issue's sync puts the folder back in
the sweep. A server without IDLE never earns that trust (nothing is reported; the sweep does all).

Timers (:func:`fired_timers`): retry (connect), IDLE re-issue, sweep, and closing an unused
helper connection after :data:`HELPER_IDLE_SECONDS`. Backoff: :func:`reconnect_delay`.

Stability (:func:`failures_before`, :func:`recovery_due`). A server may let the watcher log in
and catch up and then fail every time (drop the connection in IDLE, flood an answer past a
read cap). A completed catch-up therefore does not reset the backoff: only a connection that
held for :data:`STABLE_CONNECTION_SECONDS` does, so such a server is retried ever more slowly
instead of at the minimum delay forever. After an answer over a read cap, the catch-up alone
does not announce the account ``connected`` either; a connection that holds does.

Health (:class:`Health`): the account's counters across connections, moved by what happened
(logged in, caught up, failed with a :data:`FailureKind`, still connected); each move returns the
new value and what to announce. A failure after a good login counts towards ``syncError``
(:data:`~chalicelib.sync.account_state.SYNC_ERROR_AFTER_FAILURES` in a row), except:

=================  ============================================================================
kind               after a good login
=================  ============================================================================
not_the_server     not counted: a lease that moved or an events queue that failed says nothing
                   about the account's server (before login: the connect recorded it already)
transient          counted; ``syncError`` when enough failed in a row
persistent         ``syncError`` at once: it will fail the same way on the next try
over_read_cap      ``syncError`` at once, and only a connection that holds announces
                   ``connected`` again (a flooding server lets a catch-up through too)
=================  ============================================================================

As a ``syncError``, the next good login announces nothing, so a server that fails the same way
after every login does not flap between ``authenticationSuccess`` and an error every retry.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

from chalicelib import backoff
from chalicelib.sync.account_state import sync_error_due

# The second connection (other folders, on NOTIFY servers) is closed after this long unused.
HELPER_IDLE_SECONDS = 120.0
# Changes IDLE must report first, in a row, before the sweep stops looking at the IDLE folder.
PROMPT_AFTER_REPORTS = 3
# How long a connection must hold before its end starts a new backoff series (see Stability).
STABLE_CONNECTION_SECONDS = 60.0

Finder = Literal["idle", "sweep", "other"]
# What a failure says about the account's server (see Health in the module docstring).
FailureKind = Literal["not_the_server", "transient", "persistent", "over_read_cap"]


@dataclass(frozen=True)
class Wake:
    """Why the account's task runs (requests that arrive while a task runs are merged)."""

    connect: bool = False  # the retry timer fired
    readable: bool = False  # the IDLE socket has something to read
    reissue: bool = False  # the IDLE re-issue timer fired
    sweep: bool = False  # the STATUS sweep timer fired
    carried: bool = False  # hints arrived inside command responses
    close_helper: bool = False  # the helper connection has been unused for a while

    def merge(self, other: Wake) -> Wake:
        return Wake(**{f.name: getattr(self, f.name) or getattr(other, f.name) for f in fields(self)})

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class Heard:
    """What the server said since the last task (after the noise is removed)."""

    selected_changed: bool = False  # EXISTS/EXPUNGE/FETCH for the IDLE folder (from any answer)
    idle_reported: bool = False  # ... and IDLE itself said so (not an answer to one of our commands)
    others_changed: bool = False  # NOTIFY named other folders, or the folder list changed
    bye: bool = False


@dataclass(frozen=True)
class IdleLatency:
    """Whether this server's IDLE reports changes promptly, measured from how changes were found."""

    supported: bool = True  # the server offers IDLE at all
    reported_in_a_row: int = 0  # INBOX changes IDLE reported before any other path saw them

    @property
    def prompt(self) -> bool:
        return self.supported and self.reported_in_a_row >= PROMPT_AFTER_REPORTS

    def observe(self, found_by: Finder) -> IdleLatency:
        """An IDLE-folder change was found (a sync of it changed the checkpoint) by ``found_by``."""
        if found_by == "idle":
            return replace(self, reported_in_a_row=self.reported_in_a_row + 1)
        return replace(self, reported_in_a_row=0)


@dataclass(frozen=True)
class WatchState:
    connected: bool = False  # the IDLE connection is open (logged in, caught up)
    idling: bool = False  # ... and in IDLE now
    two_connections: bool = True  # the per-account budget allows a helper connection
    helper_open: bool = False
    sweep_armed: bool = False  # a sweep timer is set (servers without NOTIFY)
    idle: IdleLatency = IdleLatency()


@dataclass(frozen=True)
class Steps:
    """What to do, in this order. ``keep_idling`` and ``idle_again`` exclude each other."""

    connect: bool = False  # log in and catch up every folder, then IDLE
    reconnect: bool = False  # the connection is gone: drop everything and back off
    close_helper: bool = False
    others_on_helper: bool = False  # sync hinted folders (and the sweep) on the helper
    leave_idle: bool = False  # DONE on the IDLE connection
    poke: bool = False  # NOOP on it: a server whose IDLE only polls reports pending changes now
    others_on_listener: bool = False  # one connection: sync hinted folders (and the sweep) here
    sweep: bool = False  # STATUS every other folder, sync the ones that moved
    sweep_idle_folder: bool = False  # ... the IDLE folder included (IDLE not trusted to report)
    sync_idle_folder: bool = False  # (after a poke: only if the server reported a change)
    idle_again: bool = False  # IDLE again (where the server has none: arm the re-issue timer only)
    keep_idling: bool = False
    found_by: Finder = "other"  # who gets the credit if the IDLE folder's sync finds a change


def plan_steps(state: WatchState, wake: Wake, heard: Heard = Heard()) -> Steps:
    """The steps for one task run (see the decision table in the module docstring)."""
    if not state.connected:
        return Steps(connect=wake.connect)
    if heard.bye:
        return Steps(reconnect=True)
    close_helper = wake.close_helper and state.helper_open and not state.sweep_armed
    sweep_idle_folder = wake.sweep and not state.idle.prompt
    others = heard.others_changed or wake.sweep
    # Other folders go to the helper: the IDLE connection stays in IDLE on its folder and
    # never selects another one (a change in a folder while it is selected would come as
    # EXISTS, and be lost when we switch back).
    on_helper = state.two_connections and others
    # The IDLE connection is needed: its folder changed, the re-issue is due (IDLE ends, the
    # folder is synced as a safety net), it is not in IDLE (yet to start, or the server ended
    # it), or it is the only connection and other folders are due.
    busy = (heard.selected_changed or wake.reissue or (state.idle.supported and not state.idling)
            or (not state.two_connections and others))
    # A sweep while IDLE is not trusted also pokes the IDLE connection: STATUS cannot show
    # every flag change (no CONDSTORE: only UNSEEN), but the IDLE folder's own session reports
    # them as soon as it is asked (Courier and Cyrus check the mailbox on every command).
    poke = wake.sweep and state.idling and not state.idle.prompt
    if not busy and poke:
        return Steps(close_helper=close_helper, others_on_helper=on_helper, sweep=on_helper and wake.sweep,
                     sweep_idle_folder=on_helper and sweep_idle_folder, leave_idle=True, poke=True,
                     idle_again=True)
    if not busy:
        return Steps(close_helper=close_helper, others_on_helper=on_helper, sweep=on_helper and wake.sweep,
                     sweep_idle_folder=on_helper and sweep_idle_folder, keep_idling=state.idling)
    return Steps(close_helper=close_helper, others_on_helper=on_helper, leave_idle=state.idling,
                 others_on_listener=not state.two_connections and others, sweep=wake.sweep,
                 sweep_idle_folder=sweep_idle_folder, sync_idle_folder=True, idle_again=True,
                 found_by="idle" if heard.idle_reported else "other")


def fired_timers(now: float, *, retry_at: float | None, reissue_at: float | None, sweep_at: float | None,
                 helper_used_at: float | None) -> Wake:
    """The timers due at ``now`` (``helper_used_at`` None: no helper connection open)."""
    return Wake(connect=retry_at is not None and now >= retry_at,
                reissue=reissue_at is not None and now >= reissue_at,
                sweep=sweep_at is not None and now >= sweep_at,
                close_helper=(helper_used_at is not None and sweep_at is None
                              and now - helper_used_at > HELPER_IDLE_SECONDS))


def reconnect_delay(failures: int, *, minimum: float, maximum: float, jitter: float | None = None) -> float:
    """Seconds before the next connect after ``failures`` failures in a row (half to all of the
    exponential ceiling, so accounts that failed together do not return together)."""
    return backoff.delay(failures, base=minimum, maximum=maximum, low=0.5, high=1.0, jitter=jitter)


def failures_before(failures: int, connected_for: float | None) -> int:
    """The failures in a row a new failure adds to: none when the connection it ends had held
    for :data:`STABLE_CONNECTION_SECONDS` (``connected_for`` None: it never logged in)."""
    return 0 if connected_for is not None and connected_for >= STABLE_CONNECTION_SECONDS else failures


def recovery_due(capped: bool, connected_for: float | None) -> bool:
    """Whether an account whose server went over a read cap has now held a connection long
    enough to be announced ``connected`` again."""
    return capped and connected_for is not None and connected_for >= STABLE_CONNECTION_SECONDS


@dataclass(frozen=True)
class Health:
    """The account's failure counters, across its connections (see Health in the module docstring)."""

    failures: int = 0  # failures in a row: the backoff series
    sync_failures: int = 0  # failures after a good login, since the last complete catch-up
    connected_at: float | None = None  # when the current connection logged in (monotonic seconds)
    capped: bool = False  # the last counted failure was an answer over a read cap, not yet recovered

    def connected_for(self, now: float) -> float | None:
        return None if self.connected_at is None else now - self.connected_at

    def logged_in(self, now: float) -> Health:
        return replace(self, connected_at=now)

    def closed(self) -> Health:
        return replace(self, connected_at=None)

    def caught_up(self) -> tuple[Health, bool]:
        """Every folder is current: the new health, and whether to announce ``connected`` (not
        after a read cap: a connection that holds does, see :meth:`confirmed`)."""
        return replace(self, sync_failures=0), not self.capped

    def confirmed(self, now: float) -> tuple[Health, bool]:
        """Still connected at ``now``: the new health, and whether to announce ``connected``."""
        if recovery_due(self.capped, self.connected_for(now)):
            return replace(self, capped=False), True
        return self, False

    def failed(self, kind: FailureKind, now: float) -> tuple[Health, bool]:
        """A failure of ``kind`` ended the connection (if any) at ``now``: the new health, and
        whether to record the account's ``syncError`` now."""
        logged_in = self.connected_at is not None
        after = replace(self, failures=failures_before(self.failures, self.connected_for(now)) + 1,
                        connected_at=None)
        if not logged_in or kind == "not_the_server":
            return after, False
        after = replace(after, sync_failures=self.sync_failures + 1,
                        capped=self.capped or kind == "over_read_cap")
        return after, kind in ("persistent", "over_read_cap") or sync_error_due(after.sync_failures)
