"""The outbox: messages waiting to be sent (scheduled, or retried after a temporary failure).

Two tables::

    outbox           queueId                       one item per queued message (state, envelope,
                                                    attempts, last error, options)
      GSI byAccount  account / createdAt           an account's entries, oldest first
    outbox-content   queueId / part                the message bytes, zlib-compressed, in chunks
                                                    of at most 300 KB (DynamoDB items stop at 400 KB)

State machine (every transition is one conditional UpdateItem)::

      create ──▶ queued ──claim──▶ sending ──finish(sent)────▶ sent
                   ▲                  │  └───finish(failed)───▶ failed
                   └──finish(retry)───┘
      queued ──cancel──▶ cancelled
      sending, lease expired (the worker died) ──claim──▶ sending (another worker)
      sending ──record_acceptance──▶ sending + smtpAccepted (the server took it; the steps
                                     after sending are still to do)

``smtpAccepted`` (what the SMTP server answered, and which steps after sending remain) is
written the moment the server accepts the message, before anything else happens, and is
removed by ``finish``: an entry re-claimed with it set was sent and must never reach the
SMTP server again for that attempt (chalicelib/services/outbox_plan.py decides).

Invariants:
- Only the holder of the current ``leaseToken`` moves an entry out of ``sending``: a worker
  whose lease expired and was taken over cannot overwrite the newer worker's outcome.
- Content is written before the entry, so an entry never points at missing bytes; it is
  deleted when the entry reaches a final state (the TTL is a backstop).
- Final entries stay readable for :data:`RETENTION` (``expiresAt`` TTL), so a client can
  look up what became of a queue id.
- An entry records the incarnation of the account that queued it (none: a legacy entry);
  the consumer sends it only through that same incarnation (:mod:`chalicelib.incarnations`).
- Deleting an account's entries cancels each queued one before its content and then the
  entry go, so an interrupted deletion leaves nothing sendable and a retry finds the rest.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.incarnations import LEGACY
from chalicelib.settings import get_settings

_settings = get_settings()
RETENTION = timedelta(days=7)
# Content must outlive the furthest schedule plus every retry.
CONTENT_TTL = timedelta(days=45)
CHUNK_BYTES = 300 * 1024
STATES = ("queued", "sending", "sent", "failed", "cancelled")
FINAL_STATES = ("sent", "failed", "cancelled")


class OutboxByAccount(GlobalSecondaryIndex):
    class Meta:
        index_name = "byAccount"
        projection = AllProjection()

    account = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True, attr_name="createdAt")


class OutboxItem(Model):
    class Meta:
        table_name = _settings.table_name("outbox")
        region = _settings.aws_region

    queue_id = UnicodeAttribute(hash_key=True, attr_name="queueId")
    account = UnicodeAttribute()
    created_at = UTCDateTimeAttribute(attr_name="createdAt")
    state = UnicodeAttribute()
    message_id = UnicodeAttribute(attr_name="messageId")
    subject = UnicodeAttribute(null=True)
    mail_from = UnicodeAttribute(attr_name="mailFrom")
    # pynamodb types ListAttribute's `of` as the element's Python type, which only a MapAttribute matches.
    recipients = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    pending = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    smtputf8 = BooleanAttribute(default=False)
    send_at = UTCDateTimeAttribute(null=True, attr_name="sendAt")
    next_attempt_at = UTCDateTimeAttribute(attr_name="nextAttemptAt")
    attempts_made = NumberAttribute(default=0, attr_name="attemptsMade")
    delivery_attempts = NumberAttribute(attr_name="deliveryAttempts")
    last_error = JSONAttribute(null=True, attr_name="lastError")
    response = UnicodeAttribute(null=True)
    options = JSONAttribute(default=dict)
    lease_token = UnicodeAttribute(null=True, attr_name="leaseToken")
    lease_until = UTCDateTimeAttribute(null=True, attr_name="leaseUntil")
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt")
    expires_at = TTLAttribute(null=True, attr_name="expiresAt")
    incarnation = UnicodeAttribute(null=True)
    smtp_accepted = JSONAttribute(null=True, attr_name="smtpAccepted")
    warnings = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]

    by_account = OutboxByAccount()


class OutboxContentItem(Model):
    class Meta:
        table_name = _settings.table_name("outbox-content")
        region = _settings.aws_region

    queue_id = UnicodeAttribute(hash_key=True, attr_name="queueId")
    part = NumberAttribute(range_key=True)
    data = BinaryAttribute(legacy_encoding=False)
    expires_at = TTLAttribute(attr_name="expiresAt")


@dataclass
class OutboxEntry:
    queue_id: str
    account: str
    message_id: str
    mail_from: str
    recipients: list[str]
    delivery_attempts: int
    next_attempt_at: datetime
    subject: str | None = None
    pending: list[str] = field(default_factory=list)
    smtputf8: bool = False
    send_at: datetime | None = None
    state: str = "queued"
    attempts_made: int = 0
    last_error: dict[str, Any] | None = None
    response: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    lease_token: str | None = None
    incarnation: str = LEGACY
    smtp_accepted: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


class OutboxEntryNotFound(LookupError):  # noqa: N818 - a lookup outcome
    pass


def _from_item(item: OutboxItem) -> OutboxEntry:
    return OutboxEntry(
        queue_id=item.queue_id, account=item.account, message_id=item.message_id, mail_from=item.mail_from,
        recipients=list(item.recipients or []), delivery_attempts=int(item.delivery_attempts),
        next_attempt_at=item.next_attempt_at, subject=item.subject, pending=list(item.pending or []),
        smtputf8=bool(item.smtputf8), send_at=item.send_at, state=item.state,
        attempts_made=int(item.attempts_made or 0), last_error=item.last_error, response=item.response,
        options=dict(item.options or {}), created_at=item.created_at, lease_token=item.lease_token,
        incarnation=item.incarnation or LEGACY, smtp_accepted=item.smtp_accepted,
        warnings=list(item.warnings or []))


def create_entry(entry: OutboxEntry, raw: bytes) -> None:
    """Store the content, then the entry (which must not exist yet)."""
    now = datetime.now(UTC)
    compressed = zlib.compress(raw, 6)
    with OutboxContentItem.batch_write() as batch:
        for part, start in enumerate(range(0, max(len(compressed), 1), CHUNK_BYTES)):
            batch.save(OutboxContentItem(entry.queue_id, part, data=compressed[start:start + CHUNK_BYTES],
                                         expires_at=now + CONTENT_TTL))
    item = OutboxItem(
        entry.queue_id, account=entry.account, created_at=entry.created_at, state=entry.state,
        message_id=entry.message_id, subject=entry.subject, mail_from=entry.mail_from,
        recipients=entry.recipients, pending=entry.pending or entry.recipients, smtputf8=entry.smtputf8,
        send_at=entry.send_at, next_attempt_at=entry.next_attempt_at, attempts_made=entry.attempts_made,
        delivery_attempts=entry.delivery_attempts, last_error=entry.last_error, response=entry.response,
        options=entry.options, updated_at=now, incarnation=entry.incarnation or None)
    item.save(condition=OutboxItem.queue_id.does_not_exist())


def read_content(queue_id: str) -> bytes:
    parts = sorted(OutboxContentItem.query(queue_id, consistent_read=True), key=lambda item: item.part)
    if not parts:
        raise OutboxEntryNotFound(f"no content stored for {queue_id}")
    return zlib.decompress(b"".join(item.data for item in parts))


def delete_content(queue_id: str) -> None:
    with OutboxContentItem.batch_write() as batch:
        for item in OutboxContentItem.query(queue_id, attributes_to_get=["queueId", "part"]):
            batch.delete(item)


def get_entry(queue_id: str) -> OutboxEntry:
    try:
        return _from_item(OutboxItem.get(queue_id, consistent_read=True))
    except DoesNotExist:
        raise OutboxEntryNotFound(queue_id) from None


def list_entries(account: str | None = None, state: str | None = None) -> list[OutboxEntry]:
    """Entries oldest first; one account through the index, all of them by a scan."""
    condition = OutboxItem.state == state if state else None
    if account is not None:
        items = OutboxItem.by_account.query(account, filter_condition=condition)
    else:
        items = OutboxItem.scan(condition)
    now = datetime.now(UTC)
    entries = [_from_item(item) for item in items if item.expires_at is None or item.expires_at > now]
    return sorted(entries, key=lambda entry: entry.created_at)


def _conditional_update(queue_id: str, actions: list[Any], condition: Any) -> OutboxEntry | None:
    item = OutboxItem(queue_id)
    try:
        item.update(actions=[*actions, OutboxItem.updated_at.set(datetime.now(UTC))], condition=condition)
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            return None
        raise
    return _from_item(item)


def claim(queue_id: str, token: str, now: datetime, lease: timedelta) -> OutboxEntry | None:
    """queued (or sending with an expired lease) -> sending under ``token``; None if not claimable."""
    claimable = (OutboxItem.state == "queued") | (
        (OutboxItem.state == "sending") & (OutboxItem.lease_until < now))
    return _conditional_update(queue_id, [OutboxItem.state.set("sending"), OutboxItem.lease_token.set(token),
                                          OutboxItem.lease_until.set(now + lease)],
                               OutboxItem.queue_id.exists() & claimable)


def record_acceptance(queue_id: str, token: str, accepted: dict[str, Any]) -> OutboxEntry | None:
    """Note that the SMTP server took the message (``accepted``: its answer and the steps left);
    None when ``token`` no longer holds the lease. Written again as steps after sending progress."""
    return _conditional_update(queue_id, [OutboxItem.smtp_accepted.set(accepted)],
                               (OutboxItem.state == "sending") & (OutboxItem.lease_token == token))


def finish_attempt(queue_id: str, token: str, *, state: str, attempts_made: int, pending: list[str],
                   next_attempt_at: datetime | None = None, last_error: dict[str, Any] | None = None,
                   response: str | None = None, options: dict[str, Any] | None = None,
                   warnings: list[str] | None = None) -> OutboxEntry | None:
    """Record an attempt's outcome; None when ``token`` no longer holds the lease."""
    actions = [OutboxItem.state.set(state), OutboxItem.attempts_made.set(attempts_made),
               OutboxItem.pending.set(pending), OutboxItem.lease_token.remove(), OutboxItem.lease_until.remove(),
               OutboxItem.smtp_accepted.remove()]
    if next_attempt_at is not None:
        actions.append(OutboxItem.next_attempt_at.set(next_attempt_at))
    if last_error is not None:
        actions.append(OutboxItem.last_error.set(last_error))
    if response is not None:
        actions.append(OutboxItem.response.set(response))
    if options is not None:
        actions.append(OutboxItem.options.set(options))
    if warnings:
        actions.append(OutboxItem.warnings.set(warnings))
    if state in FINAL_STATES:
        actions.append(OutboxItem.expires_at.set(datetime.now(UTC) + RETENTION))
    return _conditional_update(queue_id, actions,
                               (OutboxItem.state == "sending") & (OutboxItem.lease_token == token))


def cancel(queue_id: str) -> OutboxEntry | None:
    """queued -> cancelled; None when the entry is in another state (or gone)."""
    return _conditional_update(
        queue_id, [OutboxItem.state.set("cancelled"), OutboxItem.expires_at.set(datetime.now(UTC) + RETENTION)],
        OutboxItem.queue_id.exists() & (OutboxItem.state == "queued"))


def delete_entries_of_account(account: str) -> int:
    """Remove every entry of ``account`` (account deletion); returns how many.

    Each queued entry is cancelled first (an SQS message on its way then finds nothing to
    send); one being sent right now finishes that attempt but can no longer record it.
    """
    count = 0
    for item in OutboxItem.by_account.query(account, attributes_to_get=["queueId"]):
        cancel(item.queue_id)
        delete_content(item.queue_id)
        OutboxItem(item.queue_id).delete()
        count += 1
    return count
