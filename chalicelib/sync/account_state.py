"""Account connection state and the events its transitions produce. Pure.

::

             login ok                     login refused
      new ───────────────▶ connected ◀──────────────────┐
       │                    │    ▲                       │
       │ login refused      │    │ login ok              │
       ▼                    ▼    │                       │
    authenticationError ◀───┴────┴──▶ connectError ──────┘
                (server unreachable, TLS failure, ...)

       connected / new ──── sync failed SYNC_ERROR_AFTER_FAILURES times in a row ───▶ syncError
       syncError ──── caught up (every folder synced) ───▶ connected
                 (a login alone does not leave syncError: it logged in before, and failed after)

An event is produced only when the state *changes* (a watcher retrying a wrong password
every minute emits one ``authenticationError``, not one per attempt). The event id is
derived from the account record's version before the change: the watcher publishes
first and then moves the state with a conditional write, so a crash in between repeats
the same id, and two watchers racing for the same transition produce one id. Every id
also carries the account's incarnation: a deleted and re-registered id starts at version
1 again, and its events must not repeat the first life's ids.

Every error state carries a ``lastError`` (:func:`last_error`) written with the state; the
``connected`` transition removes it. ``syncError`` means the server let us in but the
watcher cannot keep the folders current (a command refused, an answer it cannot use, the
connection lost mid-sync every time): never ``connected`` while nothing is watched.

``disabled`` follows the account's ``imap.disabled`` switch (set through the accounts API); the
watcher leaves such accounts alone and never writes that state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from chalicelib.events.model import Event, EventType, event_id
from chalicelib.incarnations import LEGACY, scoped

CONNECTED: Final = "connected"
AUTHENTICATION_ERROR: Final = "authenticationError"
CONNECT_ERROR: Final = "connectError"
SYNC_ERROR: Final = "syncError"
DISABLED = "disabled"
WATCHABLE_STATES = frozenset({"new", CONNECTED, AUTHENTICATION_ERROR, CONNECT_ERROR, SYNC_ERROR})
# Codes that mean the login itself is refused until someone acts (a new password, token or
# authorization); anything else (AuthenticationUnavailable included) is connectError and retried.
AUTHENTICATION_CODES = frozenset({"AuthenticationFailed", "OAuthTokenRevoked", "OAuthAppInvalid"})
# Failures after a successful login, in a row, before the account is said to be in syncError
# (one lost connection or refused command is retried quietly).
SYNC_ERROR_AFTER_FAILURES = 3


StateAfter = Literal["connected", "authenticationError", "connectError", "syncError"]


@dataclass(frozen=True)
class LoginOutcome:
    """How the last attempt to open the account's mailbox (``stage="login"``) or to bring its
    folders up to date after the login (``stage="sync"``) went."""

    ok: bool
    user: str | None = None
    code: str | None = None  # MailServerError code, e.g. AuthenticationFailed, ConnectionRefused
    response: str | None = None  # the server's own words, if it said something; never a secret
    stage: Literal["login", "sync"] = "login"
    message: str | None = None  # our description of what failed (defaults to ``response``)

    @property
    def state(self) -> StateAfter:
        if self.ok:
            return CONNECTED
        if self.stage == "sync":
            return SYNC_ERROR
        return AUTHENTICATION_ERROR if self.code in AUTHENTICATION_CODES else CONNECT_ERROR


def next_state(previous_state: str, outcome: LoginOutcome) -> StateAfter | None:
    """The state ``outcome`` moves the account to, or None when it stays where it is."""
    state = outcome.state
    if state == previous_state:
        return None
    if previous_state == SYNC_ERROR and outcome.ok and outcome.stage == "login":
        return None  # it logged in before too; only a completed catch-up proves it syncs again
    return state


def sync_error_due(failures_after_login: int) -> bool:
    """Whether that many failures in a row after a good login make the account a syncError."""
    return failures_after_login >= SYNC_ERROR_AFTER_FAILURES


def last_error(outcome: LoginOutcome, since: str) -> dict[str, str] | None:
    """The account's ``lastError`` after ``outcome`` (None: not an error). ``since``: ISO 8601."""
    if outcome.ok:
        return None
    error = {"code": outcome.code or "Unknown", "message": outcome.message or outcome.response or "",
             "since": since}
    if outcome.response:
        error["serverResponse"] = outcome.response
    return error


def transition_event(account: str, previous_state: str, version: int | None, outcome: LoginOutcome, *,
                     incarnation: str = LEGACY) -> Event | None:
    """The event announcing ``previous_state -> outcome.state``, or None when nothing changed."""
    state = next_state(previous_state, outcome)
    if state is None:
        return None
    kind: EventType
    if state == CONNECTED:
        kind, data = "authenticationSuccess", {"user": outcome.user}
    else:
        kind = state
        data = {"response": outcome.response or outcome.message or "", "serverResponseCode": outcome.code or "Unknown"}
    return Event(id=event_id(scoped(account, incarnation), kind, previous_state, version), account=account,
                 event=kind, data=data)


def initialized_event(account: str, *, incarnation: str = LEGACY) -> Event:
    """Once per account incarnation: its first full baseline is stored."""
    return Event(id=event_id(scoped(account, incarnation), "accountInitialized"), account=account,
                 event="accountInitialized", data={"initialized": True})
