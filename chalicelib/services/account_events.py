"""Announcing accounts registered and deleted through the API: ``accountAdded``, ``accountDeleted``.

EmailEngine's two events, in our envelope (:mod:`chalicelib.events.model`), on the same
events queue as the watcher's, so webhooks deliver and filter them like any other type::

    {"id": "evt_…", "account": "alice", "event": "accountAdded", "date": "…", "data": {"account": "alice"}}

Invariants:
- Ids are deterministic per registration (the account's incarnation): a retried deletion
  announces the same ``accountDeleted`` again, which every consumer drops as a duplicate.
- ``accountAdded`` follows the stored record; if it cannot be queued the account stays
  registered (the request succeeded) and the failure is logged: the event is lost, never
  the account.
- ``accountDeleted`` goes before the record does: a deletion whose event could not be
  queued fails, and its retry (the tombstone keeps the incarnation) announces it then.
  Once the record is gone the account's override endpoint is gone too: the event follows
  the global webhook settings (chalicelib/webhooks/targets.py).
"""

from __future__ import annotations

from chalicelib.events.model import Event, EventType, event_id
from chalicelib.events.publisher import EventSink, SqsEventSink
from chalicelib.incarnations import scoped
from chalicelib.observability import logger


def get_event_sink() -> EventSink:
    return SqsEventSink()


def account_event(kind: EventType, account: str, incarnation: str | None) -> Event:
    return Event(id=event_id(scoped(account, incarnation), kind), account=account, event=kind,
                 data={"account": account})


def announce_added(account: str, incarnation: str | None) -> None:
    try:
        get_event_sink().publish([account_event("accountAdded", account, incarnation)])
    except Exception:  # noqa: BLE001 - see the module docstring: the account is registered already
        logger.exception("could not publish accountAdded", extra={"account": account})


def announce_deleted(account: str, incarnation: str | None) -> None:
    get_event_sink().publish([account_event("accountDeleted", account, incarnation)])
