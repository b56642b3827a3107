"""The webhook delivery log: one item per event, kept for 14 days (DynamoDB TTL).

Each item holds what an operator needs to see what happened to an event (status,
attempts, last status code and error, timestamps) *and* the event's wire body, so a
replay re-sends exactly the bytes the receiver would have got (same ``webhook-id``).

Keys and indexes::

    table          eventId                      one item per event id (written whole after each pass)
    GSI byAccount  account   / sortKey          an account's events in detection order
    GSI byDay      day       / sortKey          every event of one UTC day in detection order
    sortKey = "<event date, ISO 8601 with microseconds>#<event id>"   (sorts by time, unique)

Listing without an account walks the ``byDay`` partitions from one end of the requested
range to the other (at most 15 for the 14-day retention), so no single partition key
takes every write of the deployment. Status and event type are filters.

Reads and writes come in batches, one of each per SQS batch the consumer handles
(chalicelib/webhooks/batch_log.py): :func:`get_deliveries` (one consistent BatchGetItem),
then :func:`apply_outcome` (pure: the previous item + one pass's outcome -> the next item)
for every record, then :func:`put_deliveries` (one BatchWriteItem of whole items).

Invariants:
- An item is always written whole, computed from the item read at the start of the batch:
  the only writer of an event's item during a delivery is the consumer holding its FIFO
  message group (one at a time), so there is no concurrent read-modify-write to lose.
  The replay API's :func:`mark_requeued` is one other writer (an UpdateItem); the
  dead-letter recorder (chalicelib/webhooks/dead_letters.py) the other, and it writes only
  over the item it read (:func:`put_delivery_if_unchanged`), so it never overwrites a
  newer outcome.
- ``attempts`` counts POSTs; ``createdAt`` is the first write; ``deliveredAt`` the last success.
- ``attemptLog`` keeps the last ``ATTEMPT_HISTORY`` POSTs (time, status code, duration, error,
  the start of the receiver's answer), newest last, as one JSON text: a bounded list, so an
  event retried for days never grows its item; ``lastDurationMs`` is the newest one's duration.
- ``expiresAt`` moves to 14 days after the latest write, so a replayed event stays visible.
- A batch read or write that fails (or still has unprocessed items after pynamodb's
  retries) raises :class:`DeliveryLogError`.
- Paging works on *positions* (a plain dict: the day partition being read and DynamoDB's
  LastEvaluatedKey), never on client text: the service seals a position into a cursor
  (:mod:`chalicelib.services.cursors`), so a position that reaches this module was issued
  by it. One that does not fit the query (a day outside its range, a day for a query by
  account) raises :class:`PositionError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.events.model import DeliveryStatus
from chalicelib.settings import get_settings

_settings = get_settings()
RETENTION = timedelta(days=14)
ORIGINAL_RUN = "original"  # run id of an event's first journey through the queue (replays get rpl_...)
_SORT_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
ATTEMPT_HISTORY = 5  # POSTs kept per event: enough to see a retry pattern, small next to the body
ANSWER_CHARS = 200  # of the receiver's answer, per attempt
# What an activity read needs of an item (never the body: it may carry message text).
_ACTIVITY_ATTRIBUTES = ["eventId", "account", "event", "eventDate", "status", "attempts", "lastDurationMs"]


class PositionError(ValueError):
    """A paging position that does not belong to the query it is used with."""


class DeliveryLogError(Exception):
    """The log could not be read or written (DynamoDB refused, or kept returning unprocessed items)."""


class DeliveriesByAccount(GlobalSecondaryIndex):
    class Meta:
        index_name = "byAccount"
        projection = AllProjection()

    account = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True, attr_name="sortKey")


class DeliveriesByDay(GlobalSecondaryIndex):
    class Meta:
        index_name = "byDay"
        projection = AllProjection()

    day = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True, attr_name="sortKey")


class DeliveryItem(Model):
    class Meta:
        table_name = _settings.table_name("webhook-deliveries")
        region = _settings.aws_region

    event_id = UnicodeAttribute(hash_key=True, attr_name="eventId")
    account = UnicodeAttribute()
    event = UnicodeAttribute()
    event_date = UTCDateTimeAttribute(attr_name="eventDate")
    day = UnicodeAttribute()
    sort_key = UnicodeAttribute(attr_name="sortKey")
    body = UnicodeAttribute()
    status = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    attempts = NumberAttribute(default=0)
    run_id = UnicodeAttribute(null=True, attr_name="runId")
    last_status_code = NumberAttribute(null=True, attr_name="lastStatusCode")
    last_error = UnicodeAttribute(null=True, attr_name="lastError")
    last_attempt_at = UTCDateTimeAttribute(null=True, attr_name="lastAttemptAt")
    last_duration_ms = NumberAttribute(null=True, attr_name="lastDurationMs")
    attempt_log = UnicodeAttribute(null=True, attr_name="attemptLog")
    next_attempt_at = UTCDateTimeAttribute(null=True, attr_name="nextAttemptAt")
    delivered_at = UTCDateTimeAttribute(null=True, attr_name="deliveredAt")
    created_at = UTCDateTimeAttribute(attr_name="createdAt")
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt")
    expires_at = TTLAttribute(attr_name="expiresAt")

    by_account = DeliveriesByAccount()
    by_day = DeliveriesByDay()


@dataclass(frozen=True)
class LoggedEvent:
    """The facts of an event that the log keys and replays on."""

    event_id: str
    account: str
    event: str
    event_date: datetime
    body: str


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one pass over an event did; ``attempted`` is False for skips and waits."""

    status: DeliveryStatus
    run_id: str
    attempted: bool
    status_code: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    reason: str | None = None
    duration_ms: float | None = None
    answer: str | None = None  # the start of the receiver's answer (its text, untrusted)


@dataclass(frozen=True)
class AttemptRecord:
    """One POST as the log keeps it."""

    at: datetime
    status_code: int | None
    duration_ms: float | None
    error: str | None
    answer: str | None


@dataclass(frozen=True)
class StoredDelivery:
    event_id: str
    account: str
    event: str
    event_date: datetime
    body: str
    status: str
    attempts: int
    run_id: str | None
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    reason: str | None
    created_at: datetime
    updated_at: datetime
    last_duration_ms: float | None = None
    attempt_log: tuple[AttemptRecord, ...] = ()


def _attempts_to_text(records: tuple[AttemptRecord, ...]) -> str | None:
    if not records:
        return None
    return json.dumps([{"at": sort_key_prefix(r.at), "statusCode": r.status_code, "durationMs": r.duration_ms,
                        "error": r.error, "answer": r.answer} for r in records], separators=(",", ":"))


def _attempts_from_text(text: str | None) -> tuple[AttemptRecord, ...]:
    if not text:
        return ()
    return tuple(AttemptRecord(at=datetime.strptime(r["at"], _SORT_DATE_FORMAT).replace(tzinfo=UTC),
                               status_code=r.get("statusCode"), duration_ms=r.get("durationMs"),
                               error=r.get("error"), answer=r.get("answer")) for r in json.loads(text))


def sort_key_prefix(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_SORT_DATE_FORMAT)


def _from_item(item: DeliveryItem) -> StoredDelivery:
    return StoredDelivery(
        event_id=item.event_id, account=item.account, event=item.event, event_date=item.event_date,
        body=item.body, status=item.status, attempts=int(item.attempts or 0), run_id=item.run_id,
        last_status_code=int(item.last_status_code) if item.last_status_code is not None else None,
        last_error=item.last_error, last_attempt_at=item.last_attempt_at, next_attempt_at=item.next_attempt_at,
        delivered_at=item.delivered_at, reason=item.reason, created_at=item.created_at,
        updated_at=item.updated_at,
        last_duration_ms=float(item.last_duration_ms) if item.last_duration_ms is not None else None,
        attempt_log=_attempts_from_text(item.attempt_log))


def _day(event_date: datetime) -> str:
    return event_date.astimezone(UTC).strftime("%Y-%m-%d")


def _sort_key(event_date: datetime, event_id: str) -> str:
    return f"{sort_key_prefix(event_date)}#{event_id}"


def apply_outcome(previous: StoredDelivery | None, logged: LoggedEvent, outcome: DeliveryOutcome,
                  now: datetime) -> StoredDelivery:
    """The event's log entry after one pass (pure): ``previous`` (None: never logged) + ``outcome``."""
    attempted = outcome.attempted
    history = previous.attempt_log if previous is not None else ()
    if attempted:
        answer = outcome.answer[:ANSWER_CHARS] if outcome.answer else None
        history = (*history, AttemptRecord(at=now, status_code=outcome.status_code, duration_ms=outcome.duration_ms,
                                           error=outcome.error, answer=answer))[-ATTEMPT_HISTORY:]
    delivered_at = previous.delivered_at if previous is not None else None
    if outcome.status == "delivered" and (attempted or delivered_at is None):
        delivered_at = now
    return StoredDelivery(
        event_id=logged.event_id, account=logged.account, event=logged.event, event_date=logged.event_date,
        body=logged.body, status=outcome.status, run_id=outcome.run_id,
        attempts=(previous.attempts if previous is not None else 0) + (1 if attempted else 0),
        last_status_code=outcome.status_code if attempted or previous is None else previous.last_status_code,
        last_error=outcome.error if attempted or previous is None else previous.last_error,
        last_attempt_at=now if attempted else (previous.last_attempt_at if previous is not None else None),
        next_attempt_at=outcome.next_attempt_at, delivered_at=delivered_at, reason=outcome.reason,
        created_at=previous.created_at if previous is not None else now, updated_at=now,
        last_duration_ms=(outcome.duration_ms if attempted
                          else previous.last_duration_ms if previous is not None else None),
        attempt_log=history)


def _to_item(entry: StoredDelivery) -> DeliveryItem:
    return DeliveryItem(
        entry.event_id, account=entry.account, event=entry.event, event_date=entry.event_date,
        day=_day(entry.event_date), sort_key=_sort_key(entry.event_date, entry.event_id), body=entry.body,
        status=entry.status, reason=entry.reason, attempts=entry.attempts, run_id=entry.run_id,
        last_status_code=entry.last_status_code, last_error=entry.last_error, last_attempt_at=entry.last_attempt_at,
        next_attempt_at=entry.next_attempt_at, delivered_at=entry.delivered_at, created_at=entry.created_at,
        updated_at=entry.updated_at, expires_at=entry.updated_at + RETENTION,
        last_duration_ms=entry.last_duration_ms, attempt_log=_attempts_to_text(entry.attempt_log))


def put_deliveries(entries: Iterable[StoredDelivery]) -> None:
    """Write whole entries with BatchWriteItem (25 per request; one per SQS batch in practice).

    pynamodb resends unprocessed items up to ``max_retry_attempts`` times; after that, or
    on any DynamoDB error, :class:`DeliveryLogError` (some items may have been written:
    writing them again is harmless, they are whole items).
    """
    try:
        with DeliveryItem.batch_write() as batch:
            for entry in entries:
                batch.save(_to_item(entry))
    except PynamoDBException as exc:
        raise DeliveryLogError(f"delivery log write failed: {type(exc).__name__}") from exc


def get_deliveries(event_ids: Iterable[str]) -> dict[str, StoredDelivery]:
    """The log entries of ``event_ids`` that exist, by id: one consistent BatchGetItem per 100 ids
    (pynamodb asks again for unprocessed keys); DeliveryLogError when DynamoDB fails."""
    wanted = set(event_ids)
    if not wanted:
        return {}
    try:
        return {item.event_id: _from_item(item) for item in DeliveryItem.batch_get(wanted, consistent_read=True)}
    except PynamoDBException as exc:
        raise DeliveryLogError(f"delivery log read failed: {type(exc).__name__}") from exc


def _save_item(item: DeliveryItem, condition: Condition) -> None:
    # A typed receiver: deploy/aws_actions.py derives the function's PutItem grant from it.
    item.save(condition=condition)


def put_delivery_if_unchanged(entry: StoredDelivery, previous: StoredDelivery | None) -> bool:
    """Write ``entry`` whole if the stored item is still ``previous`` (None: still absent).

    False when it changed since it was read (the caller reads again and decides again);
    :class:`DeliveryLogError` when DynamoDB fails. ``updatedAt`` is the version: every
    writer sets it.
    """
    condition = (DeliveryItem.event_id.does_not_exist() if previous is None
                 else DeliveryItem.updated_at == previous.updated_at)
    try:
        _save_item(_to_item(entry), condition)
    except PynamoDBException as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            return False
        raise DeliveryLogError(f"delivery log write failed: {type(exc).__name__}") from exc
    return True


def get_delivery(event_id: str) -> StoredDelivery | None:
    try:
        return _from_item(DeliveryItem.get(event_id, consistent_read=True))
    except DeliveryItem.DoesNotExist:
        return None


def mark_requeued(event_id: str, run_id: str, now: datetime) -> None:
    """The event was queued again for a replay: pending, a fresh run, nothing scheduled."""
    DeliveryItem(event_id).update(actions=[
        DeliveryItem.status.set("pending"), DeliveryItem.run_id.set(run_id),
        DeliveryItem.next_attempt_at.remove(), DeliveryItem.reason.remove(),
        DeliveryItem.updated_at.set(now), DeliveryItem.expires_at.set(now + RETENTION)],
        condition=DeliveryItem.event_id.exists())


@dataclass(frozen=True)
class DeliveryQuery:
    since: datetime
    until: datetime
    account: str | None = None
    status: str | None = None
    event: str | None = None
    newest_first: bool = True


def _days(query: DeliveryQuery) -> list[str]:
    first, last = query.since.astimezone(UTC).date(), query.until.astimezone(UTC).date()
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    return days[::-1] if query.newest_first else days


Position = dict[str, Any]


def query_deliveries(query: DeliveryQuery, page_size: int, position: Position | None = None,
                     ) -> tuple[list[StoredDelivery], Position | None]:
    """One page of log items in detection order and the position of the next page (None: no more)."""
    state = position or {}
    range_condition = DeliveryItem.sort_key.between(sort_key_prefix(query.since), sort_key_prefix(query.until))
    filters: Condition | None = None
    for attribute, wanted in ((DeliveryItem.status, query.status), (DeliveryItem.event, query.event)):
        if wanted is not None:
            filters = attribute == wanted if filters is None else filters & (attribute == wanted)
    found: list[StoredDelivery] = []
    if query.account is not None:
        if "day" in state:
            raise PositionError("the cursor belongs to a query without an account")
        results = DeliveryItem.by_account.query(query.account, range_condition, limit=page_size,
                                                last_evaluated_key=state.get("key"), filter_condition=filters,
                                                scan_index_forward=not query.newest_first)
        found = [_from_item(item) for item in results]
        key = results.last_evaluated_key
        return found, {"key": key} if key else None
    days = _days(query)
    if state and state.get("day") not in days:
        raise PositionError("the cursor belongs to a query with other since/until bounds")
    start = days.index(state["day"]) if state else 0
    for index in range(start, len(days)):
        day = days[index]
        results = DeliveryItem.by_day.query(day, range_condition, limit=page_size - len(found),
                                            last_evaluated_key=state.get("key") if index == start else None,
                                            filter_condition=filters, scan_index_forward=not query.newest_first)
        found.extend(_from_item(item) for item in results)
        if len(found) >= page_size:
            key = results.last_evaluated_key
            if key:
                return found, {"day": day, "key": key}
            if index + 1 < len(days):
                return found, {"day": days[index + 1], "key": None}
            return found, None
    return found, None


@dataclass(frozen=True)
class ActivityRow:
    """What the activity view reads of one logged event."""

    event: str
    event_date: datetime
    status: str
    attempts: int
    last_duration_ms: float | None


def read_activity(since: datetime, until: datetime, account: str | None, limit: int,
                  ) -> tuple[list[ActivityRow], bool]:
    """The events detected in [since, until], newest first, at most ``limit`` of them, and
    whether more were left unread. Reads a projection (never the bodies) of the ``byAccount``
    index for one account, else of the ``byDay`` partitions the range touches."""
    condition = DeliveryItem.sort_key.between(sort_key_prefix(since), sort_key_prefix(until))
    rows: list[ActivityRow] = []

    def options() -> dict[str, Any]:
        # One more than the limit tells "exactly full" from "more left".
        # No page size of our own: DynamoDB ends a page at 1 MB read, so each request asks for all.
        return {"scan_index_forward": False, "attributes_to_get": _ACTIVITY_ATTRIBUTES,
                "page_size": limit + 1 - len(rows), "limit": limit + 1 - len(rows)}

    # Each query names its index in the code: deploy/aws_actions.py derives the Query grants from it.
    partitions = ([DeliveryItem.by_account.query(account, condition, **options())] if account is not None
                  else (DeliveryItem.by_day.query(day, condition, **options())
                        for day in _days(DeliveryQuery(since=since, until=until))))
    for results in partitions:
        rows.extend(ActivityRow(event=item.event, event_date=item.event_date, status=item.status,
                                attempts=int(item.attempts or 0),
                                last_duration_ms=float(item.last_duration_ms)
                                if item.last_duration_ms is not None else None) for item in results)
        if len(rows) > limit:
            return rows[:limit], True
    return rows, False


def delete_deliveries_of_account(account: str) -> int:
    """Remove every log item of ``account`` (account deletion); returns how many."""
    items = list(DeliveryItem.by_account.query(account, attributes_to_get=["eventId"]))
    with DeliveryItem.batch_write() as batch:
        for item in items:
            batch.delete(DeliveryItem(item.event_id))
    return len(items)
