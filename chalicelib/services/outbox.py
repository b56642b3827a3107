"""The outbox: queued sends, their retries and schedules, and the SQS consumer that runs them.

Process layout::

    POST /submit ──temporary failure / sendAt──▶ enqueue: outbox entry + content (DynamoDB)
                                                         + SQS message {queueId}, DelaySeconds
    SQS outbox queue ──▶ handle_outbox_batch (Lambda on AWS; the local dispatcher under make run)
        entry final or gone ─────────────────────▶ drop the message
        its account gone, being deleted or
          re-created (another incarnation) ──────▶ cancel the entry, drop the message (no events)
        not due yet (sendAt, backoff > 15 min) ──▶ re-enqueue with min(remaining, 900 s) delay
        claim (conditional: queued -> sending,
               or sending whose lease expired)
          no smtpAccepted ──▶ send_attempts.attempt
               server took it ──▶ smtpAccepted written (the durable "sent" mark), then the
                                  steps after sending (Sent copy, flag, draft), then finish
               sent / failed ──▶ finish (final; content deleted)
               queued ─────────▶ finish (next attempt time) + re-enqueue with the backoff delay
          smtpAccepted ──▶ the steps it still lists (never SMTP again), then finish
          smtpAccepted, 2 workers died in the steps ──▶ finish sent, the steps as warnings

(the decisions alone, as tables: :mod:`chalicelib.services.outbox_plan`)

Why the entry and not the queue is the truth: SQS standard queues deliver at least once
and delay at most 15 minutes. A duplicate message finds the entry already claimed or
final and is dropped; a schedule further out than 15 minutes hops through the queue.

Failure modes:
- A worker dies (the Lambda timeout, an out-of-memory kill) after the server accepted the
  message: ``smtpAccepted`` is already on the entry, written before any step after sending.
  The entry stays ``sending`` until its lease expires; the SQS message reappears after the
  visibility timeout (720 s > lease) and the next worker re-claims the entry, sees the
  acceptance and only finishes the steps it lists: the Sent copy is first looked up by
  Message-ID, so an APPEND that landed without its answer is not repeated
  (:mod:`chalicelib.services.after_send`). The entry ends ``sent``. If a second worker dies
  in those steps too, the third gives them up (``warnings`` on the entry) instead of
  cycling until the dead-letter queue.
- A worker dies between the server's final ``250`` and the ``smtpAccepted`` write (one
  DynamoDB UpdateItem, milliseconds), or that write fails: the next worker cannot know the
  server took the message and sends it again. This window is inherent: SMTP has no
  transaction id to ask the server about (RFC 5321 6.1 accepts duplicates over losses).
  A worker dying before the final ``250`` also leads to a resend, which is what a lost
  connection at that point means in SMTP anyway.
- A worker dies before the server accepted: the entry stays ``sending`` until its lease
  expires and the next worker makes the attempt again (the same attempt number, so the
  same event ids).
- SQS refuses the enqueue of a first attempt: the entry is marked failed and the API
  answers 503, so nothing is left waiting for a message that will never come.
- A record that raises in the consumer is reported in ``batchItemFailures`` and retried by
  SQS; after 5 receives it goes to the dead-letter queue.
- The synchronous first attempt of ``POST /submit`` has no entry while it runs (it is made
  only for what is left to retry): its steps after sending are the same idempotent,
  time-bounded ones (within the request budget), but an API Lambda stopped after the
  server's ``250`` leaves no entry to finish them from. It does not send again on a retry
  with the same Idempotency-Key: the acceptance is recorded on the key's record first
  (:mod:`chalicelib.services.idempotency`); a retry without a key is a new request.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from chalicelib import aws_clients
from chalicelib.errors import AccountNotFoundError, ConflictError, NotFoundError, ServiceUnavailableError
from chalicelib.observability import logger
from chalicelib.schemas.sending import EnvelopeOut, OutboxEntryOut, OutboxErrorOut, OutboxState
from chalicelib.services import accounts, outbox_plan
from chalicelib.services.after_send import Acceptance
from chalicelib.services.send_attempts import AttemptOutcome, SendJob, attempt, complete
from chalicelib.settings import get_settings
from chalicelib.smtp.compose import Envelope
from chalicelib.store import outbox as outbox_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.store.outbox import OutboxEntry, OutboxEntryNotFound

OUTBOX_QUEUE = "outbox"
# One record per Lambda invocation: a send may take the whole SMTP timeout budget, and a
# failed invocation then means exactly one failed record.
BATCH_SIZE = 1
MAX_SQS_DELAY_SECONDS = 900
# The timing of one send, in the order each must hold (tests/unit/test_outbox_timing.py):
#   deliver_outbox's lambda_timeout (.chalice/config.json)   120 s: an SMTP attempt (connect
#        10 s + one command answer 20 s each, a few seconds when the server is well), then the
#        steps after sending in what is left (work_deadline), then the DynamoDB writes
#   < SEND_LEASE                                             300 s: a live worker never loses
#        its lease, so no second worker can claim (and send) while the first still runs
#   < the outbox queue's VisibilityTimeout (template.yaml)  720 s: 6x the function timeout (AWS's
#        advice for SQS event sources); a message redelivered after a worker died finds the
#        lease expired and is claimed at once
SEND_LEASE = timedelta(seconds=300)
# Kept back from the Lambda's remaining time for the finish write, the events and the re-enqueue.
FINISH_RESERVE_SECONDS = 10.0
# Without a Lambda context (tests, scripts): what the 120 s function has less the reserve.
LOCAL_WORK_SECONDS = 110.0


class OutboxEntryNotFoundError(NotFoundError):
    code = "OutboxEntryNotFound"


class OutboxEntryNotCancellableError(ConflictError):
    code = "OutboxEntryNotCancellable"


def get_sqs_client():
    return aws_clients.client("sqs")


@functools.lru_cache(maxsize=1)
def outbox_queue_url() -> str:
    return get_sqs_client().get_queue_url(QueueName=get_settings().queue_name(OUTBOX_QUEUE))["QueueUrl"]


def reset_clients() -> None:
    aws_clients.reset()
    outbox_queue_url.cache_clear()


def _delay_until(due: datetime, now: datetime) -> int:
    return max(0, min(MAX_SQS_DELAY_SECONDS, math.ceil((due - now).total_seconds())))


def _send_to_queue(queue_id: str, due: datetime, now: datetime | None = None) -> None:
    get_sqs_client().send_message(QueueUrl=outbox_queue_url(), MessageBody=json.dumps({"queueId": queue_id}),
                                  DelaySeconds=_delay_until(due, now or datetime.now(UTC)))


def _options(job: SendJob) -> dict[str, Any]:
    return {"copy": job.copy, "reference": job.reference, "draft": job.draft, "afterSendDone": job.after_send_done,
            "sentCopyPrefix": base64.b64encode(job.sent_copy_prefix).decode("ascii")}


def _job_from_entry(entry: OutboxEntry, raw: bytes) -> SendJob:
    options = entry.options
    return SendJob(account=entry.account, queue_id=entry.queue_id, message_id=entry.message_id,
                   envelope=Envelope(entry.mail_from, tuple(entry.pending), entry.smtputf8), raw=raw,
                   sent_copy_prefix=base64.b64decode(options.get("sentCopyPrefix") or ""), subject=entry.subject,
                   copy=options.get("copy"), reference=options.get("reference"), draft=options.get("draft"),
                   delivery_attempts=entry.delivery_attempts, attempts_made=entry.attempts_made,
                   after_send_done=bool(options.get("afterSendDone")), incarnation=entry.incarnation)


def _error_record(outcome: AttemptOutcome, now: datetime) -> dict[str, Any] | None:
    if outcome.failure is None:
        return None
    failure = outcome.failure
    return {"code": failure.code, "error": failure.message, "serverResponse": failure.server_response,
            "temporary": failure.temporary, "at": now.isoformat()}


def enqueue(job: SendJob, *, due: datetime, send_at: datetime | None = None,
            last_error: dict[str, Any] | None = None, all_recipients: tuple[str, ...] | None = None) -> None:
    """Store ``job`` and schedule its next attempt at ``due``; ServiceUnavailableError if the queue refuses."""
    entry = OutboxEntry(queue_id=job.queue_id, account=job.account, message_id=job.message_id,
                        mail_from=job.envelope.mail_from, recipients=list(all_recipients or job.envelope.recipients),
                        pending=list(job.envelope.recipients), smtputf8=job.envelope.smtputf8,
                        delivery_attempts=job.delivery_attempts, next_attempt_at=due, subject=job.subject,
                        send_at=send_at, attempts_made=job.attempts_made, last_error=last_error,
                        options=_options(job), incarnation=job.incarnation)
    outbox_store.create_entry(entry, job.raw)
    try:
        _send_to_queue(job.queue_id, due)
    except Exception:  # noqa: BLE001 - any queue failure: undo the entry, then answer 503
        logger.exception("could not enqueue an outbox message", extra={"queueId": job.queue_id})
        token = uuid.uuid4().hex
        if outbox_store.claim(job.queue_id, token, datetime.now(UTC), SEND_LEASE):
            outbox_store.finish_attempt(job.queue_id, token, state="failed", attempts_made=job.attempts_made,
                                        pending=list(job.envelope.recipients),
                                        last_error={"code": "QueueUnavailable", "error": "could not be queued",
                                                    "temporary": False, "at": datetime.now(UTC).isoformat()})
            outbox_store.delete_content(job.queue_id)
        raise ServiceUnavailableError("the message could not be queued; it was not sent",
                                      code="QueueUnavailable") from None


def enqueue_after_attempt(outcome: AttemptOutcome, all_recipients: tuple[str, ...]) -> None:
    """Queue what a synchronous first attempt left for later (whole message or deferred recipients)."""
    assert outcome.next_attempt_at is not None
    enqueue(outcome.job, due=outcome.next_attempt_at, last_error=_error_record(outcome, datetime.now(UTC)),
            all_recipients=all_recipients)


def _owner(entry: OutboxEntry) -> StoredAccount | None:
    """The account that queued ``entry``, if it still exists in the same incarnation."""
    try:
        stored = accounts.get_account(entry.account)
    except AccountNotFoundError:
        return None
    return stored if stored.incarnation == entry.incarnation else None


def _recorder(queue_id: str, token: str) -> Callable[[Acceptance], None]:
    """Writes an acceptance (and later its progress) to the entry, under the lease."""

    def record(acceptance: Acceptance) -> None:
        try:
            if outbox_store.record_acceptance(queue_id, token, acceptance.to_record()) is None:
                logger.warning("outbox lease lost before the acceptance was recorded", extra={"queueId": queue_id})
        except Exception:  # noqa: BLE001 - the message is out: finish the steps; the finish write retries it
            logger.exception("could not record the SMTP acceptance", extra={"queueId": queue_id})

    return record


def work_deadline(context: Any = None) -> float:
    """When (``time.monotonic()``) this invocation must be done sending and finishing the steps
    after it: the Lambda's remaining time (the local dispatcher's context plays the same
    timeout) less :data:`FINISH_RESERVE_SECONDS`; without a context, :data:`LOCAL_WORK_SECONDS`.
    What is not done by then is reported as a warning, or finished by the next worker if this
    one is killed."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    seconds = LOCAL_WORK_SECONDS if remaining is None else remaining() / 1000 - FINISH_RESERVE_SECONDS
    return time.monotonic() + max(0.0, seconds)


def process_message(queue_id: str, *, now: datetime | None = None, context: Any = None) -> str:
    """Run one queue message; returns what happened (for logs and tests).

    ``context``: the Lambda context, whose remaining time bounds the steps after sending.
    """
    now = now or datetime.now(UTC)
    try:
        entry = outbox_store.get_entry(queue_id)
    except OutboxEntryNotFound:
        return "missing"
    owner = None if entry.state in outbox_plan.FINAL_STATES else _owner(entry)
    action = outbox_plan.before_claim(entry.state, owner_current=owner is not None, due=entry.next_attempt_at,
                                      now=now)
    if action == "drop":
        return entry.state
    if action == "orphaned":
        # Never through whoever holds the id now, and no events: they would reach that
        # account's webhooks with the old account's envelope.
        if outbox_store.cancel(queue_id) is not None:
            outbox_store.delete_content(queue_id)
        return "orphaned"
    if action == "reschedule":
        _send_to_queue(queue_id, entry.next_attempt_at, now)
        return "rescheduled"
    token = uuid.uuid4().hex
    claimed = outbox_store.claim(queue_id, token, now, SEND_LEASE)
    if claimed is None:
        return "busy"
    job = _job_from_entry(claimed, outbox_store.read_content(queue_id))
    accepted = Acceptance.from_record(claimed.smtp_accepted) if claimed.smtp_accepted else None
    record = _recorder(queue_id, token)
    deadline = work_deadline(context)
    match outbox_plan.after_claim(accepted):
        case "send":
            outcome = attempt(job, now=now, account=owner, on_accepted=record, deadline=deadline)
        case "resume":
            assert accepted is not None
            # An earlier worker died after the server took the message: finish its steps only.
            accepted = replace(accepted, runs=accepted.runs + 1)
            record(accepted)
            logger.warning("finishing the steps after sending of a worker that died",
                           extra={"queueId": queue_id, "steps": list(accepted.steps), "run": accepted.runs})
            outcome = complete(job, accepted, now=now, deadline=deadline, on_progress=record)
        case "give-up":
            assert accepted is not None
            logger.warning("giving up the steps after sending", extra={"queueId": queue_id,
                                                                      "steps": list(accepted.steps)})
            outcome = complete(job, accepted, now=now, give_up_steps=True)
    finished = outbox_store.finish_attempt(
        queue_id, token, state=outcome.state, attempts_made=outcome.job.attempts_made,
        pending=list(outcome.job.envelope.recipients), next_attempt_at=outcome.next_attempt_at,
        last_error=_error_record(outcome, now), response=outcome.result.response if outcome.result else None,
        options=_options(outcome.job), warnings=outcome.warnings)
    if finished is None:
        logger.warning("outbox lease lost during an attempt", extra={"queueId": queue_id})
        return "lease-lost"
    if outcome.state == "queued":
        assert outcome.next_attempt_at is not None
        _send_to_queue(queue_id, outcome.next_attempt_at)
    else:
        outbox_store.delete_content(queue_id)
    return outcome.state


def handle_outbox_batch(event: dict[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
    """SQS batch handler (plain function: Lambda via app.py, or the local dispatcher).

    Returns the partial-batch-failure answer: records that raised are retried by SQS.
    """
    failures = []
    for record in event.get("Records", []):
        try:
            queue_id = json.loads(record["body"])["queueId"]
            result = process_message(queue_id, context=context)
            logger.info("outbox message processed", extra={"queueId": queue_id, "result": result})
        except Exception:  # noqa: BLE001 - one bad record must not fail its batch neighbours
            logger.exception("outbox message failed", extra={"messageId": record.get("messageId")})
            failures.append({"itemIdentifier": record.get("messageId", "")})
    return {"batchItemFailures": failures}


def deliver_outbox(event: Any) -> dict[str, list[dict[str, str]]]:
    """The Chalice ``on_sqs_message`` handler (``event`` is Chalice's SQSEvent).

    Lambda receives :data:`BATCH_SIZE` (one) record per invocation, so failing the
    invocation fails exactly that record; no ReportBatchItemFailures setting is needed.
    """
    answer = handle_outbox_batch(event.to_dict(), event.context)
    if answer["batchItemFailures"]:
        raise RuntimeError(f"{len(answer['batchItemFailures'])} outbox record(s) failed; SQS will retry them")
    return answer


# -- API use cases --------------------------------------------------------------------------


def get_entry(queue_id: str) -> OutboxEntry:
    try:
        return outbox_store.get_entry(queue_id)
    except OutboxEntryNotFound:
        raise OutboxEntryNotFoundError(f"no outbox entry {queue_id!r}", details={"queueId": queue_id}) from None


def get_visible_entry(queue_id: str, bound_account: str | None) -> OutboxEntry:
    """The entry, if a token bound to ``bound_account`` (None: unbound) may see it; 404 otherwise."""
    entry = get_entry(queue_id)
    if bound_account is not None and bound_account != entry.account:
        # A token bound to another account learns nothing, not even that the id exists.
        raise OutboxEntryNotFoundError(f"no outbox entry {entry.queue_id!r}", details={"queueId": entry.queue_id})
    return entry


def entry_out(entry: OutboxEntry) -> OutboxEntryOut:
    """The API's view of an entry."""
    error = entry.last_error
    return OutboxEntryOut(
        queueId=entry.queue_id, account=entry.account, messageId=entry.message_id, subject=entry.subject,
        envelope=EnvelopeOut.model_validate({"from": entry.mail_from, "to": entry.recipients}),
        # The store keeps the state as a plain string; the model validates it.
        state=cast(OutboxState, entry.state), created=entry.created_at, sendAt=entry.send_at,
        nextAttempt=entry.next_attempt_at if entry.state == "queued" else None,
        attemptsMade=entry.attempts_made, deliveryAttempts=entry.delivery_attempts,
        lastError=OutboxErrorOut.model_validate(error) if error else None, response=entry.response,
        warnings=entry.warnings or None)


def _of_current_incarnation(account: str, entries: list[OutboxEntry]) -> list[OutboxEntry]:
    """A re-registered id lists only its own entries, not those a previous life left behind
    (cancelled by the consumer, kept for the retention); a deleted id's leftovers stay listed."""
    try:
        incarnation = accounts.get_account(account).incarnation
    except AccountNotFoundError:
        return entries
    return [entry for entry in entries if entry.incarnation == incarnation]


def list_entries(page: int, page_size: int, *, account: str | None = None,
                 state: str | None = None) -> tuple[list[OutboxEntry], int, int]:
    entries = outbox_store.list_entries(account=account, state=state)
    if account is not None:
        entries = _of_current_incarnation(account, entries)
    total = len(entries)
    pages = max(1, math.ceil(total / page_size))
    return entries[page * page_size:(page + 1) * page_size], total, pages


def cancel(queue_id: str) -> None:
    """Cancel a queued send; 404 if unknown, 409 if it is being sent or already finished."""
    if outbox_store.cancel(queue_id) is not None:
        outbox_store.delete_content(queue_id)
        return
    entry = get_entry(queue_id)
    raise OutboxEntryNotCancellableError(f"the message is {entry.state}; only queued messages can be cancelled",
                                         details={"queueId": queue_id, "state": entry.state})



