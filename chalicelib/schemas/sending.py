"""Request and response shapes of sending and the outbox (EmailEngine's names where it has them).

Addresses are accepted as ``{"name", "address"}`` objects or as strings (``"ann@example.com"``
or ``"Ann Lee <ann@example.com>"``); ``to``/``cc``/``bcc``/``replyTo`` take one or a list.
Every address is checked for syntax only (reserved test domains are valid). Attachment
``content`` must be strict base64 (whitespace allowed): anything else is a 400 naming
``attachments.N.content``, never a silently truncated file.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from chalicelib.schemas.common import AccountId, EmailAddress, IsoDateTime, OutputModel, PageQuery, StrictModel
from chalicelib.smtp.compose import normalize_message_id
from chalicelib.smtp.headertext import header_text_problem

MAX_RECIPIENTS_PER_FIELD = 500
MAX_ATTACHMENTS = 100
MAX_CUSTOM_HEADERS = 50
MAX_DELIVERY_ATTEMPTS = 50
OutboxState = Literal["queued", "sending", "sent", "failed", "cancelled"]
_NAME_AND_ADDRESS = re.compile(r"^\s*(?:(?P<name>[^<>]*?)\s*<(?P<address>[^<>]+)>|(?P<bare>[^<>\s]+))\s*$")


def _address_from_string(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    match = _NAME_AND_ADDRESS.match(value)
    if not match:
        raise ValueError("expected 'address' or 'Name <address>'")
    if match.group("bare") is not None:
        return {"address": match.group("bare")}
    name = match.group("name").strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return {"name": name or None, "address": match.group("address").strip()}


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


def _strict_base64(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None


def _raw_message(value: Any) -> Any:
    """``raw``: base64 (as EmailEngine takes it) or the message text itself. A message has at
    least one ``Name: value`` header line, and ``:`` is no base64 character, so the two never
    read alike."""
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        if ":" not in value:
            raise ValueError("expected an RFC 822 message, as base64 or as text") from None
        return value.encode("utf-8")


def _one_line(value: str | None) -> str | None:
    problem = header_text_problem(value) if value is not None else None
    if problem:
        raise ValueError(f"must be a single line of text; this {problem}")
    return value


class SendAddress(StrictModel):
    name: str | None = Field(None, max_length=256)
    address: EmailAddress

    _single_line_name = field_validator("name")(_one_line)


Address = Annotated[SendAddress, BeforeValidator(_address_from_string)]
AddressList = Annotated[list[Address], Field(max_length=MAX_RECIPIENTS_PER_FIELD), BeforeValidator(_one_or_many)]
Base64Content = Annotated[bytes, BeforeValidator(_strict_base64),
                          WithJsonSchema({"type": "string", "contentEncoding": "base64"})]
RawMessage = Annotated[bytes, BeforeValidator(_raw_message), WithJsonSchema({"type": "string", "minLength": 1})]
# What builds a message; none of them may come with ``raw``, which is the whole message already.
MESSAGE_FIELDS = ("from", "to", "cc", "bcc", "replyTo", "subject", "text", "html", "attachments", "headers",
                  "messageId", "reference")


class SendAttachment(StrictModel):
    filename: str | None = Field(None, max_length=255)
    content: Base64Content = Field(description="The file's bytes, base64-encoded")
    contentType: str | None = Field(None, max_length=255, examples=["application/pdf"],
                                    description="Guessed from the filename when omitted")
    cid: str | None = Field(None, max_length=255, pattern=r"^<?[^<>\s]+>?$",
                            description="Content-ID: the HTML shows it inline as <img src=\"cid:...\">")

    _single_line_filename = field_validator("filename")(_one_line)


class SendReference(StrictModel):
    message: str = Field(min_length=1, max_length=1024, description="Id of the message replied to or forwarded")
    action: Literal["reply", "reply-all", "forward"] = "reply"
    inline: bool = Field(False, description="Quote the original (reply) or include it (forward)")
    forwardAttachments: bool = Field(False, description="Forward: attach the original's attachments")


class DeliveryOptions(StrictModel):
    """What a submit and a draft submit share: when, how often, whether to keep a copy."""

    copy_: bool | None = Field(None, alias="copy",
                               description="Store the sent message in the Sent folder (default: yes, unless "
                                           "the provider stores one itself, as Gmail does)")
    sendAt: IsoDateTime | None = Field(None, description="Send later (ISO 8601 with a time zone)")
    deliveryAttempts: int = Field(10, ge=1, le=MAX_DELIVERY_ATTEMPTS,
                                  description="Attempts before a temporarily failing message is given up")
    dryRun: bool = Field(False, description="Build and return the message without sending it")

    @field_validator("sendAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-11-21T09:00:00Z)")
        return value


class SubmitEnvelope(StrictModel):
    from_: EmailAddress | Literal[""] = Field(alias="from", description="MAIL FROM; \"\" is the null sender <>")
    to: Annotated[list[EmailAddress], Field(min_length=1, max_length=MAX_RECIPIENTS_PER_FIELD),
                  BeforeValidator(_one_or_many)] = Field(description="RCPT TO, one or a list")


class SubmitRequest(DeliveryOptions):
    model_config = ConfigDict(json_schema_extra={"not": {"anyOf": [
        {"required": ["raw", name]} for name in MESSAGE_FIELDS]}})

    raw: RawMessage | None = Field(
        None, description="A whole RFC 822 message (base64, or the text itself), sent as it is: no other field "
                          "that builds a message may come with it. Bcc is removed from what is sent and kept in "
                          "the Sent copy; Date and Message-ID are added only when missing")
    envelope: SubmitEnvelope | None = Field(None, description="SMTP envelope; default: From, and To + Cc + Bcc")
    from_: Address | None = Field(None, alias="from", description="Defaults to the account's name and email")
    to: AddressList = Field(default_factory=list)
    cc: AddressList = Field(default_factory=list)
    bcc: AddressList = Field(default_factory=list)
    replyTo: AddressList = Field(default_factory=list)
    subject: str | None = Field(None, max_length=998)
    text: str | None = None
    html: str | None = None
    attachments: list[SendAttachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    headers: dict[str, str] = Field(default_factory=dict, max_length=MAX_CUSTOM_HEADERS)
    messageId: str | None = Field(None, max_length=998, examples=["<unique-id@example.com>"])
    reference: SendReference | None = None

    _single_line_subject = field_validator("subject")(_one_line)

    @field_validator("messageId")
    @classmethod
    def _message_id(cls, value: str | None) -> str | None:
        return normalize_message_id(value) if value is not None else None


class DraftSubmitRequest(DeliveryOptions):
    deleteDraft: bool = Field(True, description="Remove the draft once it is sent, as mail clients do")


class SentMessageOut(OutputModel):
    path: str
    id: str | None = None
    uid: int | None = None


class EnvelopeOut(OutputModel):
    from_: str = Field(alias="from", serialization_alias="from")
    to: list[str]


class SubmitResponse(OutputModel):
    response: str = Field(description="The server's reply to the message, or 'Queued for delivery'")
    messageId: str
    queueId: str
    sendAt: datetime | None = None
    envelope: EnvelopeOut | None = None
    accepted: list[str] | None = None
    deferred: dict[str, str] | None = Field(None, description="Recipients the server refused for now (retried)")
    rejected: dict[str, str] | None = Field(None, description="Recipients the server refused for good")
    sentMessage: SentMessageOut | None = None
    raw: str | None = Field(None, description="dryRun: the message as it would be sent")
    warnings: list[str] | None = Field(None, description="Steps after sending that did not succeed")


class OutboxErrorOut(OutputModel):
    code: str
    error: str
    serverResponse: str | None = None
    temporary: bool
    at: datetime


class OutboxEntryOut(OutputModel):
    queueId: str
    account: str
    messageId: str
    subject: str | None = None
    envelope: EnvelopeOut
    state: OutboxState
    created: datetime
    sendAt: datetime | None = None
    nextAttempt: datetime | None = None
    attemptsMade: int
    deliveryAttempts: int
    lastError: OutboxErrorOut | None = None
    response: str | None = None
    # Steps after sending that did not succeed (no Sent copy, ...): the message was sent.
    warnings: list[str] | None = None


class OutboxList(OutputModel):
    messages: list[OutboxEntryOut]
    total: int
    page: int
    pages: int


class OutboxListQuery(PageQuery):
    account: AccountId | None = None
    state: OutboxState | None = None


class CancelledResponse(OutputModel):
    deleted: bool
