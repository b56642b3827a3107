"""Webhook settings, delivery log, replay and test shapes (names follow EmailEngine's settings)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator

from chalicelib.events.model import DeliveryStatus, EventType
from chalicelib.mime.headers import HEADER_NAME_PATTERN  # not the IMAP reader that also uses it
from chalicelib.schemas import emailengine_fields as ee
from chalicelib.schemas.common import AccountId, Cursor, IsoDateTime, OutputModel, StrictModel
from chalicelib.webhooks.client import MAX_URL_LENGTH, check_url_syntax
from chalicelib.webhooks.signing import (
    MAX_SERVICE_SECRET_CHARS,
    MIN_SERVICE_SECRET_CHARS,
    SECRET_PATTERN,
    SignatureStyle,
    check_service_secret,
    parse_secret,
)

WebhookUrl = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH, examples=["https://example.com/hooks"]),
                       AfterValidator(check_url_syntax)]
WebhookEventName = Literal[EventType, "*"]  # nested Literals flatten: one enum, clean field errors
# The pattern documents what the model's validator (parse_secret) accepts.
WebhookSecret = Annotated[SecretStr, Field(json_schema_extra={"pattern": SECRET_PATTERN})]
MAX_NOTIFY_HEADERS = 50
# A header name (or "*"): names go into the watcher's IMAP FETCH.
HeaderName = Annotated[str, Field(min_length=1, max_length=200, pattern=HEADER_NAME_PATTERN)]
WEBHOOK_EVENTS_DESCRIPTION = 'Event types to send; ["*"] sends every type'
INBOX_NEW_ONLY_DESCRIPTION = ("Send messageNew only for messages in the inbox (the INBOX folder, a \\Inbox special-use "
                              "folder, or a message with Gmail's \\Inbox label); other events are not affected")


class SettingsUpdate(StrictModel):
    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.SETTINGS

    webhooks: WebhookUrl | None = Field(None, description="Where events are POSTed; null removes the URL")
    webhooksEnabled: bool | None = Field(None, description="Master switch of webhook delivery")
    webhookEvents: list[WebhookEventName] | None = Field(
        None, description=WEBHOOK_EVENTS_DESCRIPTION, examples=[["messageNew", "messageDeleted"]])
    inboxNewOnly: bool | None = Field(None, description=INBOX_NEW_ONLY_DESCRIPTION)
    webhookSecret: WebhookSecret | None = Field(
        None, description="Standard Webhooks secret 'whsec_<base64 of 24..64 bytes>'; generated when omitted")
    webhooksSignature: SignatureStyle | None = Field(
        None, description="'standard': Standard Webhooks headers only; 'emailengine': also X-EE-Wh-Signature "
                          "(HMAC-SHA256 of the body with serviceSecret, base64url) and X-EE-Wh-Event-Id")
    serviceSecret: SecretStr | None = Field(
        None, min_length=MIN_SERVICE_SECRET_CHARS, max_length=MAX_SERVICE_SECRET_CHARS,
        description="EmailEngine's serviceSecret, the key of X-EE-Wh-Signature (write-only); generated when "
                    "webhooksSignature becomes 'emailengine' without one")
    notifyText: bool | None = Field(None, description="Include message text in messageNew events")
    notifyTextSize: int | None = Field(None, ge=0, le=1024 * 1024, description="Largest text included, in bytes")
    notifyHeaders: list[HeaderName] | None = Field(
        None, max_length=MAX_NOTIFY_HEADERS, description="Message headers to include in messageNew events")

    @field_validator("webhookSecret")
    @classmethod
    def _secret_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_secret(value.get_secret_value())  # ValueError names the rule, never the value
        return value

    @field_validator("serviceSecret")
    @classmethod
    def _service_secret_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_service_secret(value.get_secret_value())  # ValueError names the rule, never the value
        return value


class DisabledEndpoint(OutputModel):
    url: str
    account: str | None = Field(None, description="The account whose own endpoint this is; null: the global one")
    statusCode: int | None = None
    reason: str
    disabledAt: datetime


class SettingsOut(OutputModel):
    webhooks: str | None = None
    webhooksEnabled: bool = False
    webhookEvents: list[str] = Field(default_factory=lambda: ["*"])
    inboxNewOnly: bool = False
    webhookSecretSet: bool = Field(False, description="Whether a signing secret exists (it is never shown again)")
    webhooksSignature: SignatureStyle = "standard"
    serviceSecretSet: bool = Field(False, description="Whether EmailEngine's serviceSecret exists (never shown again)")
    notifyText: bool = False
    notifyTextSize: int | None = None
    notifyHeaders: list[str] = Field(default_factory=list)
    disabledWebhookEndpoints: list[DisabledEndpoint] = Field(
        default_factory=list, description="URLs that answered 410 Gone; saving the URL again re-enables it")


class SettingsUpdated(OutputModel):
    updated: list[str]
    settings: SettingsOut
    webhookSecret: str | None = Field(None, description="The generated secret, shown only in this response")
    serviceSecret: str | None = Field(None, description="The generated serviceSecret, shown only in this response")


class WebhooksUpdate(StrictModel):
    """``POST /v1/webhooks``: the settings' ``webhooks`` and ``webhookEvents``, and ``webhooksEnabled: true``."""

    url: WebhookUrl = Field(description="Where events are POSTed (the setting webhooks)")
    events: list[WebhookEventName] | None = Field(
        None, description=WEBHOOK_EVENTS_DESCRIPTION + " (the setting webhookEvents; omitted: unchanged)",
        examples=[["messageNew", "messageUpdated", "messageDeleted"]])


class WebhooksOut(OutputModel):
    url: str | None = Field(None, description="The setting webhooks")
    events: list[str] = Field(default_factory=lambda: ["*"], description="The setting webhookEvents")
    enabled: bool = Field(False, description="The setting webhooksEnabled")
    webhookSecretSet: bool = Field(False, description="Whether a signing secret exists (it is never shown again)")


class WebhooksUpdated(WebhooksOut):
    webhookSecret: str | None = Field(None, description="The generated secret, shown only in this response")


class SecretRotated(OutputModel):
    webhookSecret: str = Field(description="The new signing secret, shown only in this response")
    previousSecretValidUntil: datetime | None = Field(
        None, description="Until then every request carries the old secret's signature too")


class DeliveryListQuery(StrictModel):
    status: DeliveryStatus | None = None
    account: AccountId | None = None
    event: EventType | None = None
    since: IsoDateTime | None = Field(None, description="Events detected at or after (default: 14 days ago)")
    until: IsoDateTime | None = Field(None, description="Events detected before (default: now)")
    pageSize: int = Field(50, ge=1, le=500)
    cursor: Cursor | None = Field(None, description="nextCursor of the previous page")


class AttemptOut(OutputModel):
    at: datetime
    statusCode: int | None = None
    durationMs: float | None = None
    error: str | None = None
    answer: str | None = Field(None, description="The start of the receiver's answer (its text, as received)")


class DeliveryOut(OutputModel):
    id: str
    account: str
    event: str
    date: datetime
    status: str
    attempts: int
    lastStatusCode: int | None = None
    lastError: str | None = None
    lastAttemptAt: datetime | None = None
    nextAttemptAt: datetime | None = None
    deliveredAt: datetime | None = None
    reason: str | None = Field(None, description="Why it was skipped or failed")
    replay: bool = Field(False, description="The latest run was a replay")
    lastDurationMs: float | None = Field(None, description="How long the last POST took")
    attemptLog: list[AttemptOut] = Field(default_factory=list,
                                         description="The last POSTs (up to 5), oldest first")


class DeliveryList(OutputModel):
    deliveries: list[DeliveryOut]
    nextCursor: str | None = None


class ReplayRequest(StrictModel):
    since: IsoDateTime
    until: IsoDateTime | None = None
    account: AccountId | None = None
    event: EventType | None = None
    status: DeliveryStatus | None = Field(None, description="Only events in this state, e.g. failed")
    cursor: Cursor | None = Field(None, description="nextCursor of a truncated replay")


class ReplayResult(OutputModel):
    replayed: int
    replayId: str
    nextCursor: str | None = Field(None, description="More events matched: send the same request with this cursor")


class WebhookTestRequest(StrictModel):
    account: AccountId | None = Field(None, description="Use this account's webhook URL override, if it has one")


class WebhookTestResult(OutputModel):
    success: bool
    url: str
    eventId: str
    statusCode: int | None = None
    durationMs: float
    code: str | None = None
    error: str | None = None
    response: str | None = Field(None, description="The start of the receiver's answer")
