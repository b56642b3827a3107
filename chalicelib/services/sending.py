"""Sending use cases: submit a new message, a reply or forward, a caller's raw message, or a draft.

    request ──▶ build (defaults, reference: fetch the original, thread, quote, forward)
            ──▶ compose (exact bytes + envelope)          400 naming the field on bad input
               (raw: the caller's bytes, Bcc out, Date/Message-ID when missing; envelope given or
                from its headers)
            ──▶ dryRun? return the bytes
            ──▶ sendAt in the future? outbox, 202
            ──▶ first attempt now (send_attempts.attempt)
                  sent ─────────────────────────▶ 200 {response, messageId, queueId, sentMessage}
                  temporary failure, attempts left ─▶ outbox, 202 "Queued for delivery"
                  failed ───────────────────────▶ 400 (permanent) / 503 (temporary, no attempts left)

The first attempt runs inside the request because that is what a user's mail client
does, and it is the fastest path (a warm process reuses its SMTP session); only what
cannot go out now goes through the queue.

``on_sent`` gets :func:`accepted_answer` the moment the SMTP server takes the message,
before the Sent copy and the other steps: the answer a retry gets if this process dies
during them (the API records it on the request's Idempotency-Key,
:mod:`chalicelib.services.idempotency`).
"""

from __future__ import annotations

import dataclasses
import mimetypes
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.errors import ApiError, ConflictError, ValidationError
from chalicelib.mime.decode import html_to_text
from chalicelib.mime.headers import decode_header_value, parse_address_list
from chalicelib.schemas.sending import (
    MESSAGE_FIELDS,
    DeliveryOptions,
    DraftSubmitRequest,
    SendAddress,
    SendAttachment,
    SendReference,
    SubmitEnvelope,
    SubmitRequest,
)
from chalicelib.services import accounts, outbox, sent_mail
from chalicelib.services.after_send import Acceptance
from chalicelib.services.send_attempts import AttemptOutcome, SendJob, attempt
from chalicelib.settings import get_settings
from chalicelib.smtp import replies
from chalicelib.smtp.addresses import AddressEncodingError, Mailbox
from chalicelib.smtp.compose import (
    AttachmentSpec,
    ComposedMessage,
    ComposeError,
    Envelope,
    OutgoingMessage,
    compose,
)
from chalicelib.smtp.delivery import DeliveryFailure, DeliveryResult
from chalicelib.smtp.drafts import prepare_draft, prepare_raw, split_message
from chalicelib.store.accounts import StoredAccount

QUEUED_RESPONSE = "Queued for delivery"
DRY_RUN_RESPONSE = "Dry run: the message was not sent"
STEPS_UNKNOWN_WARNING = ("the message was sent; this answer was recorded when the SMTP server accepted it, and the "
                         "steps after sending (Sent copy, flags, draft removal, queueing deferred recipients) may "
                         "not have completed")
MAX_SCHEDULE_AHEAD = timedelta(days=30)


class SendFailedError(ApiError):
    """Nobody got the message. ``code`` is the delivery failure's (RecipientsRejected, ...)."""

    def __init__(self, failure: DeliveryFailure, *, queue_id: str, message_id: str) -> None:
        status = 503 if failure.temporary else 422
        details = {"protocol": "smtp", "queueId": queue_id, "messageId": message_id, **failure.to_dict()}
        details.pop("error", None)
        details.pop("code", None)
        super().__init__(failure.message, code=failure.code, status=status, details=details)


@dataclass(frozen=True)
class SubmitAnswer:
    status: int
    body: dict[str, Any]


def new_queue_id() -> str:
    return secrets.token_hex(12)


def guess_content_type(filename: str | None) -> str:
    guessed = mimetypes.guess_type(filename)[0] if filename else None
    return guessed or "application/octet-stream"


def parse_mailboxes(value: bytes) -> list[Mailbox]:
    """An address-list header of a draft, read by the tolerant MIME address parser."""
    return [Mailbox(found.get("name") or "", found["address"]) for found in parse_address_list(value)
            if found.get("address")]


def _mailbox(address: SendAddress) -> Mailbox:
    return Mailbox(address.name or "", address.address)


def _mailboxes(addresses: list[SendAddress]) -> tuple[Mailbox, ...]:
    return tuple(_mailbox(a) for a in addresses)


def _attachment(index: int, attachment: SendAttachment) -> AttachmentSpec:
    content_type = attachment.contentType or guess_content_type(attachment.filename)
    cid = attachment.cid.strip("<>") if attachment.cid else None
    return AttachmentSpec(content=attachment.content, content_type=content_type, filename=attachment.filename,
                          content_id=cid, field=f"attachments.{index}")


def _compose(message: OutgoingMessage) -> ComposedMessage:
    try:
        return compose(message, text_from_html=html_to_text, max_bytes=get_settings().send_max_message_bytes)
    except ComposeError as exc:
        raise ValidationError(str(exc), code=exc.code, details={exc.field: str(exc)}) from None


@dataclass(frozen=True)
class MessageParts:
    """What a reply or forward changes in a message being built (submit and upload alike)."""

    subject: str | None
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    text: str | None
    html: str | None
    attachments: tuple[AttachmentSpec, ...]
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()


def apply_reference(account_id: str, ref: SendReference, parts: MessageParts, own: set[str]) -> MessageParts:
    """``parts`` as a reply to, or forward of, the referenced message: threading headers, the
    prefixed subject, reply recipients (unless given; never ``own`` addresses), and with
    ``inline`` the quote or forwarded body and its inline images."""
    original = sent_mail.fetch_original(account_id, ref.message, with_attachments=ref.forwardAttachments or ref.inline)
    in_reply_to, references = replies.threading_headers(original)
    subject = replies.prefixed_subject(parts.subject if parts.subject is not None else original.subject, ref.action)
    to, cc, text, html, attachments = parts.to, parts.cc, parts.text, parts.html, list(parts.attachments)
    if ref.action != "forward":
        reply_to, reply_cc = replies.reply_recipients(original, ref.action, own)
        to = to or tuple(reply_to)
        cc = cc or tuple(reply_cc)
    if ref.inline:
        quote = replies.inline_forward if ref.action == "forward" else replies.quote_reply
        text, html = quote(original, text, html, html_to_text)
        if html is not None:
            attachments.extend(replies.inline_images(original))
    if ref.action == "forward" and ref.forwardAttachments:
        attachments.extend(replies.forwarded_attachments(original))
    return MessageParts(subject=subject, to=to, cc=cc, text=text, html=html, attachments=tuple(attachments),
                        in_reply_to=in_reply_to, references=references)


def build_message(stored: StoredAccount, request: SubmitRequest) -> tuple[OutgoingMessage, dict[str, str] | None]:
    """The message to compose and, for replies and forwards, the reference to flag afterwards."""
    if request.from_ is not None:
        sender = _mailbox(request.from_)
    elif stored.email:
        sender = Mailbox(stored.name or "", stored.email)
    else:
        raise ValidationError("the account has no email address; set 'from'", details={"from": "field required"})
    parts = MessageParts(subject=request.subject, to=_mailboxes(request.to), cc=_mailboxes(request.cc),
                         text=request.text, html=request.html,
                         attachments=tuple(_attachment(i, a) for i, a in enumerate(request.attachments)))
    reference = None
    if request.reference is not None:
        parts = apply_reference(stored.account, request.reference, parts, {stored.email or "", sender.address})
        reference = {"message": request.reference.message, "action": request.reference.action}
    message = OutgoingMessage(sender=sender, to=parts.to, cc=parts.cc, bcc=_mailboxes(request.bcc),
                              reply_to=_mailboxes(request.replyTo), subject=parts.subject or "", text=parts.text,
                              html=parts.html, attachments=parts.attachments, headers=tuple(request.headers.items()),
                              message_id=request.messageId, in_reply_to=parts.in_reply_to,
                              references=parts.references)
    return message, reference


def _check_send_at(options: DeliveryOptions, now: datetime) -> datetime | None:
    if options.sendAt is None or options.sendAt <= now:
        return None
    if options.sendAt - now > MAX_SCHEDULE_AHEAD:
        raise ValidationError(f"sendAt may be at most {MAX_SCHEDULE_AHEAD.days} days ahead",
                              details={"sendAt": "too far in the future"})
    return options.sendAt.astimezone(UTC)


def _envelope_body(composed: ComposedMessage, recipients: tuple[str, ...] | None = None) -> dict[str, Any]:
    return {"from": composed.envelope.mail_from, "to": list(recipients or composed.envelope.recipients)}


def _answer_for(outcome: AttemptOutcome, composed: ComposedMessage, queue_id: str) -> SubmitAnswer:
    base: dict[str, Any] = {"messageId": composed.message_id, "queueId": queue_id}
    if outcome.state == "failed":
        assert outcome.failure is not None
        raise SendFailedError(outcome.failure, queue_id=queue_id, message_id=composed.message_id)
    if outcome.result is None:  # nothing went out yet: the whole message waits in the outbox
        outbox.enqueue_after_attempt(outcome, composed.envelope.recipients)
        return SubmitAnswer(202, {**base, "response": QUEUED_RESPONSE, "envelope": _envelope_body(composed)})
    if outcome.state == "queued":  # sent, but some recipients were deferred
        try:
            outbox.enqueue_after_attempt(outcome, composed.envelope.recipients)
        except ApiError as exc:
            outcome.warnings.append(f"the deferred recipients could not be queued for retry: {exc.message}")
    return _sent_answer(composed, queue_id, outcome.result, outcome.sent_message, outcome.warnings)


def _sent_answer(composed: ComposedMessage, queue_id: str, result: DeliveryResult,
                 sent_message: dict[str, Any] | None, warnings: list[str]) -> SubmitAnswer:
    body: dict[str, Any] = {"messageId": composed.message_id, "queueId": queue_id, "response": result.response,
                            "envelope": _envelope_body(composed, result.accepted), "accepted": list(result.accepted)}
    for name, value in (("deferred", result.deferred), ("rejected", result.rejected),
                        ("sentMessage", sent_message), ("warnings", warnings)):
        if value:
            body[name] = value
    return SubmitAnswer(200, body)


def accepted_answer(composed: ComposedMessage, queue_id: str, acceptance: Acceptance) -> SubmitAnswer:
    """The answer as of the SMTP server's acceptance: what was sent, to whom, and a warning
    that the steps after sending may not have run (small: no message, no Sent copy)."""
    return _sent_answer(composed, queue_id, acceptance.result(), None, [STEPS_UNKNOWN_WARNING])


def _first_acceptance(on_sent: Callable[[SubmitAnswer], None] | None, composed: ComposedMessage,
                      queue_id: str) -> Callable[[Acceptance], None] | None:
    """``attempt``'s ``on_accepted``, which it also calls after each step (the outbox records
    progress there): only the acceptance itself is worth a write here."""
    if on_sent is None:
        return None
    called = False

    def on_accepted(acceptance: Acceptance) -> None:
        nonlocal called
        if not called:
            called = True
            on_sent(accepted_answer(composed, queue_id, acceptance))
    return on_accepted


def _send(stored: StoredAccount, composed: ComposedMessage, options: DeliveryOptions, *, subject: str | None,
          reference: dict[str, str] | None = None, draft: dict[str, Any] | None = None,
          on_sent: Callable[[SubmitAnswer], None] | None = None) -> SubmitAnswer:
    account_id = stored.account
    now = datetime.now(UTC)
    # The whole send (SMTP, then the Sent copy, flag and draft steps) stays within the request
    # budget: API Gateway gives up at 29 s and the api_handler Lambda is stopped at 30 s.
    deadline = time.monotonic() + get_settings().api_request_budget_seconds
    queue_id = new_queue_id()
    if options.dryRun:
        return SubmitAnswer(200, {"response": DRY_RUN_RESPONSE, "messageId": composed.message_id,
                                  "queueId": queue_id, "envelope": _envelope_body(composed),
                                  "raw": composed.raw.decode("utf-8", "replace")})
    if not stored.smtp:
        # Nothing can be attempted: an input problem, not a delivery failure (no events).
        raise ConflictError("the account has no SMTP settings; add them with PUT /v1/account/{account}",
                            code="SmtpNotConfigured", details={"smtp": "not configured"})
    send_at = _check_send_at(options, now)
    job = SendJob(account=account_id, queue_id=queue_id, message_id=composed.message_id,
                  envelope=composed.envelope, raw=composed.raw, sent_copy_prefix=composed.bcc_header,
                  subject=subject, copy=options.copy_, reference=reference, draft=draft,
                  delivery_attempts=options.deliveryAttempts, incarnation=stored.incarnation)
    if send_at is not None:
        outbox.enqueue(job, due=send_at, send_at=send_at)
        return SubmitAnswer(202, {"response": QUEUED_RESPONSE, "messageId": composed.message_id,
                                  "queueId": queue_id, "sendAt": send_at.isoformat(),
                                  "envelope": _envelope_body(composed)})
    outcome = attempt(job, now=now, account=stored, deadline=deadline,
                      on_accepted=_first_acceptance(on_sent, composed, queue_id))
    return _answer_for(outcome, composed, queue_id)


def _envelope(given: SubmitEnvelope) -> Envelope:
    """The caller's SMTP envelope, in its wire form (A-label domains unless SMTPUTF8 is needed)."""
    mailboxes = [Mailbox("", address) for address in (given.from_, *given.to) if address]
    smtputf8 = any(m.needs_smtputf8 for m in mailboxes)
    try:
        return Envelope(mail_from=Mailbox("", given.from_).envelope_address(smtputf8=smtputf8) if given.from_ else "",
                        recipients=tuple(dict.fromkeys(Mailbox("", a).envelope_address(smtputf8=smtputf8)
                                                       for a in given.to)),
                        smtputf8=smtputf8)
    except AddressEncodingError as exc:
        raise ValidationError(str(exc), details={"envelope": str(exc)}) from None


def _subject_of(raw: bytes) -> str | None:
    subjects = [field.value for field in split_message(raw)[0] if field.name == "subject"]
    return decode_header_value(subjects[0]) if subjects else None


def _check_size(composed: ComposedMessage, field: str, what: str) -> None:
    if len(composed.raw) > get_settings().send_max_message_bytes:
        raise ValidationError(f"the {what} is larger than the message size limit", code="MessageTooLarge",
                              details={field: f"{len(composed.raw)} bytes"})


def prepare_raw_submit(request: SubmitRequest) -> ComposedMessage:
    """``raw`` as it will be sent. Nothing that builds a message may come with it: EmailEngine
    would quietly rewrite the message's headers from such fields; here the caller learns (400
    ``RawWithMessageFields``) that its message is sent as given."""
    assert request.raw is not None
    given = request.model_fields_set  # field names: "from" is from_
    beside = [name for name in MESSAGE_FIELDS if name in given or f"{name}_" in given]
    if beside:
        raise ValidationError(f"raw is the whole message; it cannot come with {', '.join(beside)}",
                              code="RawWithMessageFields", status=400,
                              details={name: "not allowed with raw" for name in beside})
    envelope = _envelope(request.envelope) if request.envelope is not None else None
    try:
        composed = prepare_raw(request.raw, parse_mailboxes, envelope=envelope)
    except ComposeError as exc:
        raise ValidationError(str(exc), details={exc.field: str(exc)}) from None
    _check_size(composed, "raw", "message")
    return composed


def submit(account_id: str, request: SubmitRequest,
           on_sent: Callable[[SubmitAnswer], None] | None = None) -> SubmitAnswer:
    stored = accounts.get_account(account_id)
    if request.raw is not None:
        composed = prepare_raw_submit(request)
        return _send(stored, composed, request, subject=_subject_of(composed.raw), on_sent=on_sent)
    message, reference = build_message(stored, request)
    composed = _compose(message)
    if request.envelope is not None:
        composed = dataclasses.replace(composed, envelope=_envelope(request.envelope))
    return _send(stored, composed, request, subject=message.subject or None, reference=reference,
                 on_sent=on_sent)


def submit_draft(account_id: str, message_id: str, request: DraftSubmitRequest,
                 on_sent: Callable[[SubmitAnswer], None] | None = None) -> SubmitAnswer:
    stored = accounts.get_account(account_id)
    raw = sent_mail.fetch_draft(account_id, message_id)
    try:
        composed = prepare_draft(raw, parse_mailboxes)
    except ComposeError as exc:
        raise ValidationError(str(exc), details={exc.field: str(exc)}) from None
    _check_size(composed, "draft", "draft")
    return _send(stored, composed, request, subject=_subject_of(composed.raw),
                 draft={"message": message_id, "delete": request.deleteDraft}, on_sent=on_sent)
