"""The event contract: what the watcher emits, the queue carries and webhooks deliver.

One JSON object per event, identical on the queue and in the webhook body (the
EmailEngine envelope plus a stable ``id``)::

    {"id": "evt_…", "account": "alice", "path": "INBOX", "specialUse": "\\\\Inbox",
     "event": "messageNew", "date": "2026-11-21T06:30:00.123Z", "data": {...}}

Invariants:
- ``id`` is deterministic: the same change detected twice (after a restart, by two
  watchers during a lease hand-over) gets the same id, so every consumer can dedupe on it
  (it is the SQS FIFO deduplication id and the ``webhook-id`` header).
- An account's event ids include its incarnation (:func:`chalicelib.incarnations.scoped`):
  an id that is deleted and registered again never repeats an id of its first life.
- Events of one account are ordered: the queue's message group is the account.
- No event carries a secret.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "messageNew", "messageDeleted", "messageUpdated",
    "mailboxNew", "mailboxDeleted", "mailboxReset",
    "authenticationError", "authenticationSuccess", "connectError", "syncError", "accountInitialized",
    "accountAdded", "accountDeleted",
    "messageSent", "messageDeliveryError", "messageFailed",
    "test",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# What became of an event at its webhook endpoint: the status the delivery log records and
# the API filters on (pending: retries ahead; skipped: not sent, replayable).
DeliveryStatus = Literal["pending", "delivered", "failed", "skipped"]


def event_id(*parts: object) -> str:
    """A deterministic id from the facts that identify one change (never from wall-clock time)."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts], separators=(",", ":")).encode()).hexdigest()
    return "evt_" + digest[:32]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    account: str
    event: EventType
    date: datetime = Field(default_factory=utc_now)
    path: str | None = None
    specialUse: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        """The wire form: the queue message body and the webhook body."""
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, body: str | bytes) -> Event:
        return cls.model_validate_json(body)
