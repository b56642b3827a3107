"""Recovering webhooks: the delivery log, replays, and a signed test delivery.

- The log (:mod:`chalicelib.store.deliveries`) has every event the consumer saw in the
  last 14 days with its body, so a replay re-sends the very same event (same id, same
  bytes) through the queue: per-account order, retries, signing and the event filter all
  apply as for a live event.
- ``since``/``until`` must lie within the log's retention (14 days, plus a day of slack
  either side): older events are gone, later ones do not exist yet, and each day of the
  range is one partition to read. Outside it: 400 naming the field.
- A replay is a new *run* (``rpl_...``), and every continuation of it keeps that run:

      POST /replay {since, ...}                  -> run R, events e1..ek queued, nextCursor(R, position)
      POST /replay {since, ..., cursor}          -> run R again, from the position on
      the same request again (a retry)           -> run R, nothing queued twice

  A request stops at ``REPLAY_LIMIT`` events or ``REPLAY_BUDGET_SECONDS`` (API Gateway
  ends a request at 29 s), whichever comes first, and returns ``nextCursor``. Why nothing
  is sent twice: an event whose log entry already names run R was queued by this run and
  is skipped; one queued but not yet marked (a request that died in between) is queued
  again under R, which SQS (deduplication id = event id + run, 5 minutes) and the
  consumer's idempotency (event id + run) drop. A retried *first* request can only be
  recognised with an ``Idempotency-Key`` header (the API layer passes it to
  :mod:`chalicelib.services.idempotency`).
- Cursors of the log and of replays are sealed by :mod:`chalicelib.services.cursors` and
  bound to the query's filters, so a cursor only continues the listing it came from.
- The test delivery goes straight to the receiver (not through the queue, not logged),
  signed like any event, and reports the receiver's answer.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.errors import ApiError, InvalidCursorError, NotFoundError, UnprocessableError, ValidationError
from chalicelib.events.model import Event, event_id, utc_now
from chalicelib.schemas.webhooks import (
    AttemptOut,
    DeliveryList,
    DeliveryListQuery,
    DeliveryOut,
    ReplayRequest,
    ReplayResult,
    WebhookTestResult,
)
from chalicelib.services import cursors
from chalicelib.settings import get_settings
from chalicelib.store import deliveries
from chalicelib.store.deliveries import ORIGINAL_RUN, DeliveryQuery, Position, PositionError, StoredDelivery
from chalicelib.webhooks import queue_ops, targets
from chalicelib.webhooks.client import post_webhook
from chalicelib.webhooks.signing import signed_headers

REPLAY_LIMIT = 1000
REPLAY_PAGE = 100
REPLAY_BUDGET_SECONDS = 20.0
CLOCK_SKEW = timedelta(minutes=5)
RANGE_SLACK = timedelta(days=1)
LIST_CURSOR = "deliveries"
REPLAY_CURSOR = "replay"
_RUN_ID = re.compile(r"^rpl_[0-9a-f]{16}$")


class EventNotFoundError(NotFoundError):
    code = "EventNotFound"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bounds(since: datetime | None, until: datetime | None, field_prefix: str) -> tuple[datetime, datetime]:
    """The range to read: defaults filled in, and both ends within the log's retention."""
    now = utc_now()
    start = _utc(since) if since else now - deliveries.RETENTION
    end = _utc(until) if until else now + CLOCK_SKEW
    if end <= start:
        raise UnprocessableError("until must be later than since", code="InvalidRange",
                                 details={f"{field_prefix}until": "before since"})
    earliest, latest = now - deliveries.RETENTION - RANGE_SLACK, now + RANGE_SLACK
    for name, moment in (("since", start), ("until", end)):
        if moment < earliest or moment > latest:
            raise ValidationError(
                f"{name} must lie within the delivery log's retention: {earliest:%Y-%m-%dT%H:%M:%SZ} "
                f"to {latest:%Y-%m-%dT%H:%M:%SZ}",
                details={f"{field_prefix}{name}": f"outside the log's {deliveries.RETENTION.days}-day retention"})
    return start, end


def _scope(request: DeliveryListQuery | ReplayRequest) -> str:
    """The query a cursor continues: its filters as the client sent them (defaults are "now"-relative)."""
    filters = request.model_dump(mode="json", include={"since", "until", "account", "event", "status"})
    return json.dumps(filters, sort_keys=True, separators=(",", ":"))


def _seal(kind: str, state: dict[str, Any], scope: str) -> str:
    return cursors.seal_cursor(kind, json.dumps(state, separators=(",", ":")).encode(), scope)


def _open(kind: str, cursor: str, scope: str, field: str) -> dict[str, Any]:
    state = json.loads(cursors.open_cursor(kind, cursor, scope, field=field))
    if not isinstance(state, dict):  # sealed by us, so only a change of this module's format lands here
        raise InvalidCursorError("cursor is from an older version of the API", details={field: "outdated"})
    return state


def _page(query: DeliveryQuery, size: int, position: Position | None,
          field: str) -> tuple[list[StoredDelivery], Position | None]:
    try:
        return deliveries.query_deliveries(query, size, position)
    except PositionError as exc:
        raise InvalidCursorError("cursor does not continue this query", details={field: str(exc)}) from None


def delivery_out(stored: StoredDelivery) -> DeliveryOut:
    return DeliveryOut(id=stored.event_id, account=stored.account, event=stored.event, date=stored.event_date,
                       status=stored.status, attempts=stored.attempts, lastStatusCode=stored.last_status_code,
                       lastError=stored.last_error, lastAttemptAt=stored.last_attempt_at,
                       nextAttemptAt=stored.next_attempt_at, deliveredAt=stored.delivered_at, reason=stored.reason,
                       replay=bool(stored.run_id and stored.run_id != ORIGINAL_RUN),
                       lastDurationMs=stored.last_duration_ms,
                       attemptLog=[AttemptOut(at=a.at, statusCode=a.status_code, durationMs=a.duration_ms,
                                              error=a.error, answer=a.answer) for a in stored.attempt_log])


def list_deliveries(request: DeliveryListQuery) -> DeliveryList:
    since, until = _bounds(request.since, request.until, "query.")
    query = DeliveryQuery(since=since, until=until, account=request.account, status=request.status,
                          event=request.event, newest_first=True)
    scope = _scope(request)
    position = _open(LIST_CURSOR, request.cursor, scope, "query.cursor").get("position") if request.cursor else None
    found, following = _page(query, request.pageSize, position, "query.cursor")
    cursor = _seal(LIST_CURSOR, {"position": following}, scope) if following is not None else None
    return DeliveryList(deliveries=[delivery_out(item) for item in found], nextCursor=cursor)


def _requeue(items: list[StoredDelivery], run_id: str) -> int:
    """Queue the items this run has not queued yet; how many were queued."""
    fresh = [item for item in items if item.run_id != run_id]
    queue_ops.enqueue_replay(fresh, run_id)
    now = utc_now()
    for item in fresh:
        deliveries.mark_requeued(item.event_id, run_id, now)
    return len(fresh)


def new_replay_id() -> str:
    return "rpl_" + secrets.token_hex(8)


def replay(request: ReplayRequest, *, clock: Callable[[], float] = time.monotonic,
           budget_seconds: float = REPLAY_BUDGET_SECONDS) -> ReplayResult:
    """Queue every logged event matching the request again, oldest first (per account order).

    Stops after ``REPLAY_LIMIT`` events or ``budget_seconds``; ``nextCursor`` continues the
    same run from there (see the module docstring for why nothing is queued twice).
    """
    since, until = _bounds(request.since, request.until, "")
    query = DeliveryQuery(since=since, until=until, account=request.account, status=request.status,
                          event=request.event, newest_first=False)
    scope = _scope(request)
    if request.cursor:
        state = _open(REPLAY_CURSOR, request.cursor, scope, "cursor")
        run_id, position = state.get("run"), state.get("position")
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise InvalidCursorError("cursor is from an older version of the API", details={"cursor": "outdated"})
    else:
        run_id, position = new_replay_id(), None
    deadline = clock() + budget_seconds
    replayed = seen = 0
    while True:
        found, position = _page(query, min(REPLAY_PAGE, REPLAY_LIMIT - seen), position, "cursor")
        replayed += _requeue(found, run_id)
        seen += len(found)
        if position is None or seen >= REPLAY_LIMIT or clock() >= deadline:
            break
    cursor = _seal(REPLAY_CURSOR, {"run": run_id, "position": position}, scope) if position is not None else None
    return ReplayResult(replayed=replayed, replayId=run_id, nextCursor=cursor)


def replay_one(event_id_: str, only_account: str | None = None) -> ReplayResult:
    """Requeue one logged event; with ``only_account``, only an event of that account (another
    account's event is as unknown as one that never was)."""
    stored = deliveries.get_delivery(event_id_)
    if stored is None or (only_account is not None and stored.account != only_account):
        raise EventNotFoundError(f"no event {event_id_!r} in the delivery log (kept for 14 days)",
                                 details={"eventId": event_id_})
    run_id = new_replay_id()
    _requeue([stored], run_id)
    return ReplayResult(replayed=1, replayId=run_id)


def send_test(account: str | None) -> WebhookTestResult:
    """POST a signed ``test`` event to the URL the account's events would go to."""
    target = targets.resolve_target(account or "")
    if not target.url:
        raise ApiError("no webhook URL is configured" + (f" for account {account!r}" if account else ""),
                       code="WebhookNotConfigured", status=409, details={"webhooks": "not set"})
    if target.secrets is None:
        raise ApiError("no webhook secret is configured", code="WebhookNotConfigured", status=409,
                       details={"webhookSecret": "not set"})
    moment = utc_now()
    event = Event(id=event_id("test", secrets.token_hex(8)), account=account or "", event="test", date=moment,
                  data={"message": "a test delivery from imapless"})
    body = event.to_json().encode()
    headers = signed_headers(target.secrets.keys(moment), event.id, body, service_secret=target.service_secret)
    result = post_webhook(target.url, body, headers, get_settings().webhook_timeout_seconds)
    return WebhookTestResult(success=result.succeeded, url=target.url, eventId=event.id,
                             statusCode=result.status_code, durationMs=round(result.duration_ms, 1),
                             code=result.error_code, error=result.error,
                             response=result.response_excerpt or None)
