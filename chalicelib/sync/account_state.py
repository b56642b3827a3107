"""Account connection state and the events its transitions produce. Pure.

::

             login ok                     login refused
      new ───────────────▶ connected ◀──────────────────┐
       │                    │    ▲                       │
       │ login refused      │    │ login ok              │
       ▼                    ▼    │                       │
    authenticationError ◀───┴────┴──▶ connectError ──────┘
                (server unreachable, TLS failure, ...)

An event is produced only when the state *changes* (a watcher retrying a wrong password
every minute emits one ``authenticationError``, not one per attempt). The event id is
derived from the account record's version before the change: the watcher publishes
first and then moves the state with a conditional write, so a crash in between repeats
the same id, and two watchers racing for the same transition produce one id. Every id
also carries the account's incarnation: a deleted and re-registered id starts at version
1 again, and its events must not repeat the first life's ids.

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
DISABLED = "disabled"
WATCHABLE_STATES = frozenset({"new", CONNECTED, AUTHENTICATION_ERROR, CONNECT_ERROR})


@dataclass(frozen=True)
class LoginOutcome:
    """How the last attempt to open the account's mailbox went."""

    ok: bool
    user: str | None = None
    code: str | None = None  # MailServerError code, e.g. AuthenticationFailed, ConnectionRefused
    response: str | None = None  # the server's text or our description; never a secret

    @property
    def state(self) -> Literal["connected", "authenticationError", "connectError"]:
        if self.ok:
            return CONNECTED
        return AUTHENTICATION_ERROR if self.code == "AuthenticationFailed" else CONNECT_ERROR


def transition_event(account: str, previous_state: str, version: int | None, outcome: LoginOutcome, *,
                     incarnation: str = LEGACY) -> Event | None:
    """The event announcing ``previous_state -> outcome.state``, or None when nothing changed."""
    state = outcome.state
    if state == previous_state:
        return None
    kind: EventType
    if state == CONNECTED:
        kind, data = "authenticationSuccess", {"user": outcome.user}
    else:
        kind = state
        data = {"response": outcome.response or "", "serverResponseCode": outcome.code or "Unknown"}
    return Event(id=event_id(scoped(account, incarnation), kind, previous_state, version), account=account,
                 event=kind, data=data)


def initialized_event(account: str, *, incarnation: str = LEGACY) -> Event:
    """Once per account incarnation: its first full baseline is stored."""
    return Event(id=event_id(scoped(account, incarnation), "accountInitialized"), account=account,
                 event="accountInitialized", data={"initialized": True})
