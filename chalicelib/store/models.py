"""DynamoDB item shapes (pynamodb models). Only ``chalicelib.store`` imports this module.

Table names come from settings at import time (pynamodb reads ``Meta`` when the class
is built), so tests and the local runner set the environment before importing.

Invariant: no attribute holds a secret in the clear. Mailbox passwords and access tokens live only inside
``AccountItem.sealed_secrets`` (and OAuth2 tokens we refresh inside ``sealed_oauth2``; see
:mod:`chalicelib.security.envelope`); API tokens are
stored as SHA-256 digests.
"""

from __future__ import annotations

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.models import Model

from chalicelib.settings import get_settings

_settings = get_settings()


class AccountItem(Model):
    class Meta:
        table_name = _settings.table_name("accounts")
        region = _settings.aws_region

    account = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    state = UnicodeAttribute(default="new")
    # Connection settings without secrets: {"host", "port", "secure", "user", "tls"}, and
    # "credentials": "accessToken" when the secret is an OAuth2 access token (absent: a password).
    imap = JSONAttribute(null=True)
    smtp = JSONAttribute(null=True)
    # Sealed JSON {"imap": secret, "smtp": secret} (password or access token), bound to the account id.
    sealed_secrets = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    version = VersionAttribute()
    # Drawn at creation, never changed; absent on accounts created before incarnations
    # existed (see chalicelib.incarnations).
    incarnation = UnicodeAttribute(null=True)
    # -- webhooks: per-account override of the global webhook URL and event filter --
    webhooks = UnicodeAttribute(null=True)
    # pynamodb types ListAttribute's `of` as the element's Python type, which only a MapAttribute matches.
    webhook_events = ListAttribute[str](of=UnicodeAttribute, null=True, attr_name="webhookEvents")  # type: ignore[arg-type]
    # Sealed signing secrets of the override endpoint (its own, never the global one's).
    sealed_webhook_secret = UnicodeAttribute(null=True, attr_name="sealedWebhookSecret")
    # -- watcher: why the account is in an error state ({code, message, serverResponse, since}) --
    last_error = JSONAttribute(null=True, attr_name="lastError")
    # -- OAuth2 tokens we manage ("credentials": "oauth2App"): {app, user, expires, scopes}, no secret --
    oauth2 = JSONAttribute(null=True)
    # Sealed JSON {"refreshToken", "accessToken"}, bound to the account id; rewritten on every refresh.
    sealed_oauth2 = UnicodeAttribute(null=True, attr_name="sealedOAuth2")
    # The refresh lease: who refreshes the tokens now, and until when (epoch seconds).
    oauth2_lease_owner = UnicodeAttribute(null=True, attr_name="oauth2LeaseOwner")
    oauth2_lease_until = NumberAttribute(null=True, attr_name="oauth2LeaseUntil")


class TokenItem(Model):
    class Meta:
        table_name = _settings.table_name("tokens")
        region = _settings.aws_region

    id = UnicodeAttribute(hash_key=True)
    token_sha256 = UnicodeAttribute()
    description = UnicodeAttribute()
    # pynamodb types ListAttribute's `of` as the element's Python type, which only a MapAttribute matches.
    scopes = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    account = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
