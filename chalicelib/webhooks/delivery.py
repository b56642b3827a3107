"""One queued event through one delivery pass: the consumer calls this for every record.

    record (parsed by the consumer) ---------------------------------------- poison -> DLQ
       |                                                                  (not JSON / not an event)
       | the batch's log view says "delivered in this run" --------------------> duplicate (no POST)
       | received before (receive count > 1) and the log says "not yet":  wait (hide again)
       v
    target (settings + account override) -- detected before the account was registered
       |                                        (a deleted account's, same id) -> dropped, not logged
       |                                    -- not sent? --> log "skipped" (replayable later)
       v
    receive count 1:  sign (Standard Webhooks, the endpoint's own secrets) -> POST once                        (direct)
                      (+ X-EE-Wh-Signature with the service secret when webhooksSignature is "emailengine")
    receive count >1: the same inside a Powertools idempotent attempt (key = event id + run;
                      INPROGRESS lock, record kept 14 days) ---- already delivered -> done
       v
    policy.decide:  2xx -> log delivered
                    retry -> log pending + next attempt; hide until then   (record stays)
                    give up / 410 -> DLQ, log failed (410 also disables that endpoint)

Every outcome goes into the batch's :class:`~chalicelib.webhooks.batch_log.BatchLog`
(read with one BatchGetItem before the first record, written with one BatchWriteItem
after the last, before anything is deleted). Outcomes that keep the record in the queue
raise :class:`DeliveryDeferredError` after the message's visibility is set; everything
else returns and the batch deletes the record.

Why a first receive needs no idempotency lock: the queue is FIFO with one message group
per account, and SQS hands a group to one consumer at a time, holding its later messages
until the batch in flight is deleted or becomes visible again. So two passes over one
event can only overlap when a visibility timeout expires while the first consumer is
still working, and the record then comes back with a receive count above 1: exactly the
records that take the Powertools path (its INPROGRESS record makes the second consumer
wait). Sequential duplicates (the watcher emitting an event again, the same event twice
in one batch) are caught by the log view: an event delivered in this run is not POSTed
again, and neither is an original-run record of an event that any run delivered.

At least once, never silently lost: a POST that succeeded but whose log write then failed
leaves the record in the queue (see consumer.py); its next pass POSTs it again, with the
same ``webhook-id`` the receiver dedupes on. A POST whose Powertools record could not be
completed afterwards (DynamoDB throttled) is not such a case: its outcome is known, so it
is logged like any other and the record is deleted; the stale INPROGRESS record expires
after one attempt budget.

A *run* is one journey of an event through the queue: the original (``original``) or a
replay (``rpl_...``, from the ``imaplessRun`` message attribute). Idempotency is per event
id and run: an event is never POSTed again after a success in the same run, while a replay
(which the user asked for) is. Receivers dedupe on ``webhook-id`` either way.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from pydantic import ValidationError as PydanticValidationError

from chalicelib import aws_clients
from chalicelib.events.model import Event, utc_now
from chalicelib.lambda_budget import FixedBudget
from chalicelib.observability import logger, record_webhook_attempt
from chalicelib.settings import get_settings
from chalicelib.store.deliveries import ORIGINAL_RUN, DeliveryOutcome, LoggedEvent, StoredDelivery
from chalicelib.webhooks import configuration, policy, queue_ops, targets
from chalicelib.webhooks.batch_log import BatchLog
from chalicelib.webhooks.client import PostResult, post_webhook
from chalicelib.webhooks.signing import signed_headers

IDEMPOTENCY_TTL_SECONDS = 14 * 86400  # as long as SQS keeps a message and the log keeps its record
IN_PROGRESS_RETRY_SECONDS = 30
# A message may come back a little before its stored time (visibility is whole seconds).
EARLY_RETURN_TOLERANCE = timedelta(seconds=1)
ERROR_TEXT_CHARS = 300
POISON = "poison"  # the failureReason of a message that is not an event


class DeliveryDeferredError(Exception):
    """The record stays queued (its visibility is already set); later records of its group wait."""


class _AttemptFailedError(Exception):
    def __init__(self, result: PostResult) -> None:
        super().__init__(result.error_code or f"HTTP {result.status_code}")
        self.result = result


@dataclass(frozen=True)
class QueuedMessage:
    message_id: str
    receipt_handle: str
    body: str
    group_id: str | None
    deduplication_id: str | None
    receive_count: int
    queued_at: datetime
    run_id: str

    @classmethod
    def from_record(cls, record: SQSRecord) -> QueuedMessage:
        attributes = record.attributes
        run = record.message_attributes[queue_ops.RUN_ATTRIBUTE]
        return cls(message_id=record.message_id, receipt_handle=record.receipt_handle, body=record.body,
                   group_id=attributes.message_group_id, deduplication_id=attributes.message_deduplication_id,
                   receive_count=int(attributes.approximate_receive_count or 1),
                   queued_at=datetime.fromtimestamp(int(attributes.sent_timestamp) / 1000, UTC),
                   run_id=(run.string_value if run is not None else None) or ORIGINAL_RUN)


def _post_signed(*, attempt: dict[str, str], url: str, body: bytes, keys: tuple[bytes, ...],
                 nonce: str, service_secret: str | None = None,
                 posted: list[PostResult] | None = None) -> dict[str, Any]:
    headers = signed_headers(keys, attempt["eventId"], body, service_secret=service_secret)
    result = post_webhook(url, body, headers, get_settings().webhook_timeout_seconds)
    record_webhook_attempt(result.succeeded)
    if posted is not None:  # seen by the caller even when Powertools then fails to store the record
        posted.append(result)
    if not result.succeeded:
        raise _AttemptFailedError(result)  # Powertools forgets the in-progress record; a retry may run
    return {"nonce": nonce, "statusCode": result.status_code}


@functools.lru_cache(maxsize=1)
def _idempotent_post() -> Any:
    settings = get_settings()
    config = IdempotencyConfig(event_key_jmespath="[eventId, runId]", raise_on_no_idempotency_key=True,
                               expires_after_seconds=IDEMPOTENCY_TTL_SECONDS)
    # Powertools annotates the concrete LambdaContext class, of which it only calls
    # get_remaining_time_in_millis(): the budget is duck-typed to that one method.
    # An attempt holds its record for at most its timeout (plus a margin), so a consumer
    # that dies mid-attempt blocks the event only until its next receive.
    config.register_lambda_context(FixedBudget(2 * settings.webhook_timeout_seconds + 5))
    # The process's shared client: Powertools would otherwise build a boto3 session of its own.
    persistence = DynamoDBPersistenceLayer(table_name=settings.table_name("webhook-idempotency"),
                                           boto3_client=aws_clients.client("dynamodb"))
    # Configured here, before any thread uses it: Powertools marks the layer configured
    # before it finishes configuring it, and a batch's accounts are delivered in parallel.
    persistence.configure(config, key_prefix="webhook-delivery")
    return idempotent_function(data_keyword_argument="attempt", persistence_store=persistence, config=config,
                               key_prefix="webhook-delivery")(_post_signed)


def _error_text(result: PostResult) -> str | None:
    if result.error:
        return result.error[:ERROR_TEXT_CHARS]
    if result.status_code is None or result.succeeded:
        return None
    answer = " ".join(result.response_excerpt.split())[:200]
    return f"HTTP {result.status_code}" + (f": {answer}" if answer else "")


def _defer(message: QueuedMessage, until: datetime, now: datetime, why: str) -> NoReturn:
    queue_ops.change_visibility(message.receipt_handle, policy.visibility_seconds(until, now))
    raise DeliveryDeferredError(why)


def _dead_letter(message: QueuedMessage, event: Event, reason: str, result: PostResult | None) -> None:
    attributes = {queue_ops.FAILURE_REASON_ATTRIBUTE: reason, queue_ops.DEAD_RUN_ATTRIBUTE: message.run_id}
    if result is not None and result.status_code is not None:
        attributes[queue_ops.LAST_STATUS_ATTRIBUTE] = str(result.status_code)
    queue_ops.dead_letter(message.body, group_id=event.account, deduplication_id=f"{event.id}.{message.run_id}",
                          attributes=attributes)


def parse_event(body: str) -> Event | None:
    """The event a message carries, or None for a poison message (not JSON, not an event)."""
    try:
        return Event.from_json(body)
    except PydanticValidationError:
        return None


def _already_delivered(previous: StoredDelivery | None, run_id: str) -> bool:
    if previous is None:
        return False
    if previous.status == "delivered" and previous.run_id == run_id:
        return True
    # The watcher may emit an event again (after SQS's 5-minute deduplication window):
    # delivered once by any run, the original needs no second POST.
    return run_id == ORIGINAL_RUN and previous.delivered_at is not None


def process_message(message: QueuedMessage, event: Event | None, log: BatchLog,
                    reader: targets.TargetReader | None = None) -> str:
    """Deliver, skip, dead-letter or defer one queued event; returns what happened."""
    if event is None:
        queue_ops.dead_letter(message.body, group_id=message.group_id or "poison",
                              deduplication_id=message.deduplication_id or message.message_id,
                              attributes={queue_ops.FAILURE_REASON_ATTRIBUTE: POISON})
        logger.error("poison message moved to the dead-letter queue", extra={"messageId": message.message_id})
        return "poison"
    now = utc_now()
    previous = log.get(event.id)
    if _already_delivered(previous, message.run_id):
        return "duplicate"  # the log already says so: nothing to write
    if (message.receive_count > 1 and previous is not None and previous.status == "pending"
            and previous.run_id == message.run_id and previous.next_attempt_at is not None
            and previous.next_attempt_at > now + EARLY_RETURN_TOLERANCE):
        _defer(message, previous.next_attempt_at, now, "waiting for the next attempt")
    event_date = event.date if event.date.tzinfo else event.date.replace(tzinfo=UTC)
    reader = reader or targets.TargetReader()
    target = reader.resolve(event.account)
    if target.predates_account(event_date):
        logger.info("event of a deleted account with the same id dropped", extra={"eventId": event.id})
        return "stale"
    logged = LoggedEvent(event.id, event.account, event.event, event_date, message.body)
    skip_reason = target.skip_reason(event)
    if skip_reason is not None:
        log.record(message.message_id, logged, DeliveryOutcome(status="skipped", run_id=message.run_id,
                                                               attempted=False, reason=skip_reason), now)
        return "skipped"
    return _attempt(message, event, logged, target, log, reader)


def _attempt(message: QueuedMessage, event: Event, logged: LoggedEvent, target: targets.WebhookTarget,
             log: BatchLog, reader: targets.TargetReader) -> str:
    url, endpoint_secrets = target.url, target.secrets
    assert url is not None and endpoint_secrets is not None  # skip_reason covers both
    nonce = secrets.token_hex(8)
    # A first receive cannot overlap another pass (see the module docstring): no lock needed.
    post = _post_signed if message.receive_count == 1 else _idempotent_post()
    posted: list[PostResult] = []
    try:
        answer = post(attempt={"eventId": event.id, "runId": message.run_id}, url=url, body=message.body.encode(),
                      keys=endpoint_secrets.keys(utc_now()), nonce=nonce, service_secret=target.service_secret,
                      posted=posted)
        attempted = answer["nonce"] == nonce
        # This pass POSTed (its nonce came back): keep what the receiver said and how long it took.
        result = posted[-1] if attempted and posted else PostResult(status_code=answer["statusCode"],
                                                                     duration_ms=0.0)
    except _AttemptFailedError as failure:
        result, attempted = failure.result, True
    except IdempotencyPersistenceLayerError as exc:
        if not posted:
            raise  # nothing was POSTed: the record is retried like any other store failure
        # The POST happened; only completing (or removing) its idempotency record failed.
        # Its outcome counts: logged as delivered, no later pass POSTs the event again.
        logger.warning("webhook idempotency record not saved after the attempt",
                       extra={"eventId": event.id, "error": type(exc.__cause__ or exc).__name__})
        result, attempted = posted[-1], True
    except IdempotencyAlreadyInProgressError:
        now = utc_now()
        _defer(message, now + timedelta(seconds=IN_PROGRESS_RETRY_SECONDS), now, "another consumer is delivering it")
    now = utc_now()
    decision = policy.decide(result.status_code, result.retry_after_seconds, queued_at=message.queued_at, now=now,
                             schedule=get_settings().webhook_retry_schedule)
    outcome = functools.partial(DeliveryOutcome, run_id=message.run_id, attempted=attempted,
                                status_code=result.status_code, error=_error_text(result),
                                duration_ms=round(result.duration_ms, 1) if attempted else None,
                                answer=result.response_excerpt or None)

    def record(done: DeliveryOutcome) -> None:
        log.record(message.message_id, logged, done, now)

    if decision.verdict is policy.Verdict.DELIVERED:
        record(outcome(status="delivered"))
        return "delivered" if attempted else "duplicate"
    if decision.verdict is policy.Verdict.RETRY:
        assert decision.next_attempt_at is not None
        record(outcome(status="pending", next_attempt_at=decision.next_attempt_at))
        _defer(message, decision.next_attempt_at, now, "retry scheduled")
    reason = "retriesExhausted"
    if decision.verdict is policy.Verdict.DISABLE_ENDPOINT:
        reason = "endpointGone"
        configuration.disable_endpoint(url, result.status_code, "the receiver answered 410 Gone",
                                       account=target.owner)
        reader.forget_endpoint(url, target.owner)
        logger.warning("webhook endpoint disabled after 410 Gone", extra={"account": event.account})
    _dead_letter(message, event, reason, result)
    record(outcome(status="failed", reason=reason))
    logger.warning("webhook delivery failed for good", extra={"eventId": event.id, "reason": reason,
                                                              "statusCode": result.status_code})
    return "failed"
