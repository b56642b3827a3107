"""Recovering webhooks: the delivery log, replays, and a signed test delivery.

- The log (:mod:`chalicelib.store.deliveries`) has every event the consumer saw in the
  last 14 days with its body, so a replay re-sends the very same event (same id, same
  bytes) through the queue: per-account order, retries, signing and the event filter all
  apply as for a live event. A replay is a new *run*: the consumer's idempotency (event id
  + run) lets it through once, and only once, even if the replay request is retried.
- A replay request sends at most ``REPLAY_LIMIT`` events (an API call must finish within
  API Gateway's 29 s); ``nextCursor`` continues where it stopped.
- The test delivery goes straight to the receiver (not through the queue, not logged),
  signed like any event, and reports the receiver's answer.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from chalicelib.errors import ApiError, InvalidIdError, NotFoundError, UnprocessableError
from chalicelib.events.model import Event, event_id, utc_now
from chalicelib.schemas.webhooks import (
    DeliveryList,
    DeliveryListQuery,
    DeliveryOut,
    ReplayRequest,
    ReplayResult,
    WebhookTestResult,
)
from chalicelib.settings import get_settings
from chalicelib.store import deliveries
from chalicelib.store.deliveries import ORIGINAL_RUN, DeliveryQuery, InvalidCursorError, StoredDelivery
from chalicelib.webhooks import queue_ops, targets
from chalicelib.webhooks.client import post_webhook
from chalicelib.webhooks.signing import signed_headers

REPLAY_LIMIT = 1000
REPLAY_PAGE = 100
CLOCK_SKEW = timedelta(minutes=5)


class EventNotFoundError(NotFoundError):
    code = "EventNotFound"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bounds(since: datetime | None, until: datetime | None, field_prefix: str) -> tuple[datetime, datetime]:
    now = utc_now()
    start = _utc(since) if since else now - deliveries.RETENTION
    end = _utc(until) if until else now + CLOCK_SKEW
    # Older items have expired anyway; clamping keeps the day walk at most ~15 partitions.
    start = max(start, now - deliveries.RETENTION - timedelta(days=1))
    if end <= start:
        raise UnprocessableError("until must be later than since", code="InvalidRange",
                                 details={f"{field_prefix}until": "before since"})
    return start, end


def _page(query: DeliveryQuery, size: int, cursor: str | None, field: str) -> tuple[list[StoredDelivery], str | None]:
    try:
        return deliveries.query_deliveries(query, size, cursor)
    except InvalidCursorError as exc:
        raise InvalidIdError("cursor is invalid", code="InvalidCursor", details={field: str(exc)}) from None


def delivery_out(stored: StoredDelivery) -> DeliveryOut:
    return DeliveryOut(id=stored.event_id, account=stored.account, event=stored.event, date=stored.event_date,
                       status=stored.status, attempts=stored.attempts, lastStatusCode=stored.last_status_code,
                       lastError=stored.last_error, lastAttemptAt=stored.last_attempt_at,
                       nextAttemptAt=stored.next_attempt_at, deliveredAt=stored.delivered_at, reason=stored.reason,
                       replay=bool(stored.run_id and stored.run_id != ORIGINAL_RUN))


def list_deliveries(request: DeliveryListQuery) -> DeliveryList:
    since, until = _bounds(request.since, request.until, "query.")
    query = DeliveryQuery(since=since, until=until, account=request.account, status=request.status,
                          event=request.event, newest_first=True)
    found, cursor = _page(query, request.pageSize, request.cursor, "query.cursor")
    return DeliveryList(deliveries=[delivery_out(item) for item in found], nextCursor=cursor)


def _requeue(items: list[StoredDelivery], run_id: str) -> None:
    queue_ops.enqueue_replay(items, run_id)
    now = utc_now()
    for item in items:
        deliveries.mark_requeued(item.event_id, run_id, now)


def new_replay_id() -> str:
    return "rpl_" + secrets.token_hex(8)


def replay(request: ReplayRequest) -> ReplayResult:
    """Queue every logged event matching the request again, oldest first (per account order)."""
    since, until = _bounds(request.since, request.until, "")
    query = DeliveryQuery(since=since, until=until, account=request.account, status=request.status,
                          event=request.event, newest_first=False)
    run_id = new_replay_id()
    cursor, replayed = request.cursor, 0
    while replayed < REPLAY_LIMIT:
        found, cursor = _page(query, min(REPLAY_PAGE, REPLAY_LIMIT - replayed), cursor, "cursor")
        _requeue(found, run_id)
        replayed += len(found)
        if cursor is None:
            break
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
    target = targets.resolve_target(account or "", use_cache=False)
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
    result = post_webhook(target.url, body, signed_headers(target.secrets.keys(moment), event.id, body),
                          get_settings().webhook_timeout_seconds)
    return WebhookTestResult(success=result.succeeded, url=target.url, eventId=event.id,
                             statusCode=result.status_code, durationMs=round(result.duration_ms, 1),
                             code=result.error_code, error=result.error,
                             response=result.response_excerpt or None)
