"""One delivery attempt of a composed message, and what follows from its outcome.

Shared by the synchronous first attempt of ``POST /submit`` and by the outbox consumer, so
both decide retries, store the Sent copy and emit webhooks the same way::

    attempt(job)
      ├─ server took it (for some or all recipients)
      │    ├─ first acceptance only: Sent copy, \\Answered/$Forwarded, draft removal
      │    ├─ event messageSent (accepted, rejected, deferred recipients)
      │    └─ some recipients deferred (4xx)? ── attempts left ─▶ queued for those
      │                                        └─ none left ────▶ messageFailed for those
      └─ nobody took it
           ├─ event messageDeliveryError (every failed attempt)
           ├─ temporary and attempts left ─▶ queued, next attempt after the backoff
           └─ otherwise ───────────────────▶ failed + event messageFailed

Event ids are deterministic (queue id + attempt number), so an attempt replayed after a
crash yields the same ids and consumers dedupe. Publishing is best effort here: the
message has already gone out, and failing the request (or retrying the send) because
the event queue hiccuped would be worse than a missing webhook; the failure is logged.

Steps after sending (Sent copy, flags, draft removal; :mod:`chalicelib.services.after_send`)
never turn a sent message into a failure: each problem becomes a ``warnings`` entry and a
log line. The caller learns of the server's acceptance before any of them runs
(``on_accepted``), so the outbox can record it durably; a later worker that finds it
recorded calls :func:`complete`, never :func:`attempt`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib import backoff
from chalicelib.errors import AccountNotFoundError
from chalicelib.events.model import Event, EventType, event_id
from chalicelib.events.publisher import EventSink, SqsEventSink
from chalicelib.incarnations import LEGACY, scoped
from chalicelib.observability import logger
from chalicelib.security.transport import MailServer
from chalicelib.services import accounts, after_send
from chalicelib.services.after_send import Acceptance
from chalicelib.settings import get_settings
from chalicelib.smtp.compose import Envelope
from chalicelib.smtp.delivery import DeliveryFailure, DeliveryResult, deliver
from chalicelib.smtp.pool import SmtpLogin
from chalicelib.store.accounts import StoredAccount


@dataclass(frozen=True)
class SendJob:
    """Everything an attempt needs; persisted in the outbox between attempts."""

    account: str
    queue_id: str
    message_id: str
    envelope: Envelope
    raw: bytes = field(repr=False)
    sent_copy_prefix: bytes = field(default=b"", repr=False)  # the Bcc line of the Sent copy
    subject: str | None = None
    copy: bool | None = None
    reference: dict[str, str] | None = None   # {"message": id, "action": "reply"|"reply-all"|"forward"}
    draft: dict[str, Any] | None = None       # {"message": id, "delete": bool}
    delivery_attempts: int = 10
    attempts_made: int = 0
    after_send_done: bool = False
    incarnation: str = LEGACY  # of the account that queued it (chalicelib.incarnations)


@dataclass
class AttemptOutcome:
    state: str  # "sent" | "queued" | "failed"
    job: SendJob
    result: DeliveryResult | None = None
    failure: DeliveryFailure | None = None
    next_attempt_at: datetime | None = None
    sent_message: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


def get_event_sink() -> EventSink:
    return SqsEventSink()


def retry_delay_seconds(failed_attempts: int, *, base: float, maximum: float, jitter: float | None = None) -> float:
    """Exponential backoff with +-20 % jitter: base, 2 base, 4 base, ... capped at ``maximum``."""
    return backoff.delay(failed_attempts, base=base, maximum=maximum, low=0.8, high=1.2, jitter=jitter)


def _publish(events: list[Event]) -> None:
    try:
        get_event_sink().publish(events)
    except Exception:  # noqa: BLE001 - see the module docstring: the message is already out
        logger.exception("could not publish sending events", extra={"events": [e.id for e in events]})


def _envelope_data(job: SendJob, recipients: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {"from": job.envelope.mail_from, "to": list(recipients)}


def _event(job: SendJob, kind: EventType, data: dict[str, Any], *id_parts: object) -> Event:
    payload = {"messageId": job.message_id, "queueId": job.queue_id, **data}
    return Event(id=event_id(kind, scoped(job.account, job.incarnation), job.queue_id, *id_parts),
                 account=job.account, event=kind, data=payload)


def _failure_events(job: SendJob, failure: DeliveryFailure, attempt: int, next_at: datetime | None) -> list[Event]:
    details = failure.to_dict()
    events = [_event(job, "messageDeliveryError", {
        "envelope": _envelope_data(job, job.envelope.recipients), **details, "attempt": attempt,
        "deliveryAttempts": job.delivery_attempts, "nextAttempt": next_at.isoformat() if next_at else None,
    }, attempt)]
    if next_at is None:
        events.append(_event(job, "messageFailed", {
            "envelope": _envelope_data(job, job.envelope.recipients), **details, "attempts": attempt}))
    return events


def smtp_login(account_id: str, stored: StoredAccount) -> SmtpLogin:
    """The account's submission login; the password is decrypted only if a new session is opened."""
    if not stored.smtp:
        raise DeliveryFailure(f"account {account_id!r} has no SMTP settings", code="SmtpNotConfigured",
                              temporary=False, stage="prepare")
    material = json.dumps(stored.smtp, sort_keys=True, default=str) + "\0" + stored.sealed_secrets
    fingerprint = hashlib.sha256(material.encode()).hexdigest()

    def credentials(rejected: str | None = None) -> tuple[MailServer, str]:
        try:
            opened = accounts.load_credentials(account_id, rejected=rejected)
        except AccountNotFoundError:
            raise DeliveryFailure(f"account {account_id!r} no longer exists", code="AccountNotFound",
                                  temporary=False, stage="prepare") from None
        if opened.smtp is None or opened.smtp_secret is None:
            raise DeliveryFailure(f"account {account_id!r} has no SMTP settings", code="SmtpNotConfigured",
                                  temporary=False, stage="prepare")
        return opened.smtp, opened.smtp_secret

    return SmtpLogin(str(stored.smtp["host"]), int(stored.smtp["port"]), f"{account_id}:{fingerprint}", credentials,
                     refreshed=credentials if accounts.is_oauth2_app(stored) else None)


def _stored_account(job: SendJob, stored: StoredAccount | None) -> StoredAccount:
    if stored is not None:
        return stored
    try:
        return accounts.get_account(job.account)
    except AccountNotFoundError:
        raise DeliveryFailure(f"account {job.account!r} no longer exists", code="AccountNotFound",
                              temporary=False, stage="prepare") from None


def _next_attempt_at(job: SendJob, failed_attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``failed_attempts`` temporary failures; None when none are left."""
    if failed_attempts >= job.delivery_attempts:
        return None
    settings = get_settings()
    delay = retry_delay_seconds(failed_attempts, base=settings.send_retry_base_seconds,
                                maximum=settings.send_retry_max_seconds)
    return now + timedelta(seconds=delay)


def attempt(job: SendJob, *, now: datetime | None = None, account: StoredAccount | None = None,
            on_accepted: Callable[[Acceptance], None] | None = None,
            deadline: float | None = None) -> AttemptOutcome:
    """Try to deliver ``job`` once; see the module docstring for what each outcome triggers.

    ``account`` is the account record when the caller has just read it (saves a read).
    ``on_accepted`` is called the moment the server has taken the message, before any step
    after sending (the outbox makes it durable there). ``deadline`` (``time.monotonic()``)
    bounds those steps: what the SMTP exchange left of the caller's time, so a request or a
    Lambda is not cut off in the middle of them (default: the API request budget from now).
    """
    now = now or datetime.now(UTC)
    number = job.attempts_made + 1
    tried = replace(job, attempts_made=number)
    try:
        login = smtp_login(job.account, _stored_account(job, account))
        result = deliver(login, job.envelope, job.raw)
    except DeliveryFailure as failure:
        next_at = _next_attempt_at(job, number, now) if failure.temporary else None
        _publish(_failure_events(tried, failure, number, next_at))
        logger.info("delivery attempt failed", extra={"queueId": job.queue_id, "attempt": number,
                                                      "code": failure.code, "temporary": failure.temporary})
        return AttemptOutcome("queued" if next_at else "failed", tried, failure=failure, next_attempt_at=next_at)
    acceptance = after_send.Acceptance.of(number, result, now, after_send.steps_for(job, login.host))
    if on_accepted is not None:
        on_accepted(acceptance)
    return complete(job, acceptance, now=now, deadline=deadline, on_progress=on_accepted)


def complete(job: SendJob, acceptance: Acceptance, *, now: datetime | None = None,
             deadline: float | None = None, on_progress: Callable[[Acceptance], None] | None = None,
             give_up_steps: bool = False) -> AttemptOutcome:
    """What follows an acceptance: the steps after sending, events, the deferred recipients.

    Runs right after the server took the message, or in a later worker that found the
    acceptance recorded (the earlier one died); the attempt number, and so the event ids,
    come from the acceptance, so a replay yields the same ids. ``give_up_steps``: report
    the steps left as warnings instead of running them (:data:`after_send.MAX_RUNS`).
    """
    now = now or datetime.now(UTC)
    number = acceptance.attempt
    tried = replace(job, attempts_made=number)
    result = acceptance.result()
    if give_up_steps:
        warnings = after_send.abandoned(acceptance)
    else:
        budget = (deadline - time.monotonic() if deadline is not None
                  else get_settings().api_request_budget_seconds)
        acceptance, warnings = after_send.run_steps(job, acceptance, budget_seconds=budget, on_progress=on_progress)
    sent_message = acceptance.sent_message
    tried = replace(tried, after_send_done=True)
    data: dict[str, Any] = {"response": result.response, "envelope": _envelope_data(job, result.accepted),
                            "attempt": number}
    if result.rejected:
        data["rejected"] = result.rejected
    if result.deferred:
        data["deferred"] = result.deferred
    if sent_message:
        data["sentMessage"] = sent_message
    events = [_event(tried, "messageSent", data, number)]
    outcome = AttemptOutcome("sent", tried, result=result, sent_message=sent_message, warnings=warnings)
    if result.deferred:
        # Only the deferred recipients remain; the next attempt must not reach the others twice.
        remaining = replace(tried, envelope=replace(job.envelope, recipients=tuple(result.deferred)))
        deferral = DeliveryFailure("the server deferred some recipients", code="RecipientsDeferred",
                                  temporary=True, stage="RCPT TO", recipients=result.deferred,
                                  server_response=next(iter(result.deferred.values())))
        next_at = _next_attempt_at(job, number, now)
        outcome = AttemptOutcome("queued" if next_at else "sent", remaining, result=result, failure=deferral,
                                 next_attempt_at=next_at, sent_message=sent_message, warnings=warnings)
        events.extend(_failure_events(remaining, deferral, number, outcome.next_attempt_at))
    _publish(events)
    logger.info("message sent", extra={"queueId": job.queue_id, "attempt": number,
                                       "accepted": len(result.accepted), "deferred": len(result.deferred)})
    return outcome
