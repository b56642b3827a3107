"""The delivery log as one SQS batch sees it: read once at the start, written once at the end.

    handle_sqs_event(batch of <= 10 records)
      BatchLog.load(event ids)     one consistent BatchGetItem          (the "before" view)
      record 1 .. n                get() / record() on the in-batch view, no I/O
      BatchLog.flush()             one BatchWriteItem of whole items    (before any delete)

Every pass over a record reads the view and records its outcome into it, so a second
record of the same event id in one batch sees what the first did (delivered: no second
POST). Only the latest entry per event id is written; :func:`deliveries.apply_outcome`
already folded the earlier passes into it.

Failure modes: :meth:`load` raises what DynamoDB raises; :meth:`flush` raises
:class:`~chalicelib.store.deliveries.DeliveryLogError`, after which
:attr:`unwritten_message_ids` names the records whose outcome is not in the log (the
consumer keeps them in the queue). One instance per batch, shared by the threads that
work through the batch's message groups (a lock guards the view; groups never share an
event id, since an event's group is its account).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

from chalicelib.store import deliveries
from chalicelib.store.deliveries import DeliveryOutcome, LoggedEvent, StoredDelivery


class BatchLog:
    def __init__(self, entries: dict[str, StoredDelivery]) -> None:
        self._entries = dict(entries)
        self._changed: dict[str, StoredDelivery] = {}
        self._writers: list[str] = []
        self._lock = threading.Lock()

    @classmethod
    def load(cls, event_ids: Iterable[str]) -> BatchLog:
        return cls(deliveries.get_deliveries(event_ids))

    def get(self, event_id: str) -> StoredDelivery | None:
        """The event's entry as of now in this batch (None: the log has never seen it)."""
        with self._lock:
            return self._entries.get(event_id)

    def record(self, message_id: str, logged: LoggedEvent, outcome: DeliveryOutcome, now: datetime) -> None:
        """Fold one pass's outcome into the view; written by :meth:`flush`."""
        with self._lock:
            entry = deliveries.apply_outcome(self._entries.get(logged.event_id), logged, outcome, now)
            self._entries[logged.event_id] = self._changed[logged.event_id] = entry
            self._writers.append(message_id)

    @property
    def unwritten_message_ids(self) -> tuple[str, ...]:
        return tuple(self._writers)

    def flush(self) -> None:
        """Write every changed entry with one BatchWriteItem; raises DeliveryLogError."""
        if self._changed:
            deliveries.put_deliveries(self._changed.values())
        self._changed.clear()
        self._writers.clear()
