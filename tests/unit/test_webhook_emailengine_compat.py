"""EmailEngine's inboxNewOnly test and its X-EE-Wh-Signature, as pure functions."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from chalicelib.events.model import Event
from chalicelib.webhooks.signing import emailengine_signature, generate_service_secret, signed_headers
from chalicelib.webhooks.targets import WebhookTarget, in_inbox
from examples.webhook_receiver import verify_emailengine


def event(path: str | None, special_use: str | None = None, **data) -> Event:
    return Event(id="evt_1", account="a", event="messageNew", path=path, specialUse=special_use, data=data)


@pytest.mark.parametrize(("given", "inbox"), [
    (event("INBOX", "\\Inbox"), True),
    (event("Inbox"), True),  # RFC 3501: INBOX in any case
    (event("Posteingang", "\\Inbox"), True),  # a server that flags another name as the inbox
    (event("Projects"), False),
    (event("Sent", "\\Sent"), False),
    (event("INBOX/Sub"), False),
    (event("[Gmail]/All Mail", "\\All", labels=["\\Inbox", "\\Important"]), True),  # Gmail: in the inbox too
    (event("[Gmail]/All Mail", "\\All", labels=["Receipts"]), False),  # Gmail: archived or filtered away
    (event("[Gmail]/All Mail", "\\All", messageSpecialUse="\\Inbox"), True),
    (event(None), False),
])
def test_what_counts_as_the_inbox(given, inbox):
    assert in_inbox(given) is inbox


def test_inbox_new_only_skips_only_message_new_outside_the_inbox():
    target = WebhookTarget(url="https://example.com/", events=("*",), enabled=True, secrets=None,
                           endpoint_disabled=False, inbox_new_only=True)
    elsewhere = event("Projects")
    assert target.skip_reason(elsewhere) == "notInInbox"
    assert target.skip_reason(elsewhere.model_copy(update={"event": "messageUpdated"})) == "noWebhookSecret"
    assert target.skip_reason(event("INBOX")) == "noWebhookSecret"  # past the inbox test, on to the next
    off = WebhookTarget(url="https://example.com/", events=("*",), enabled=True, secrets=None, endpoint_disabled=False)
    assert off.skip_reason(elsewhere) == "noWebhookSecret"


def test_the_emailengine_signature_is_unpadded_base64url_of_the_body_hmac():
    secret, body = "0123456789abcdef0123456789abcdef", b'{"event":"messageNew","x":"\xc3\xbc>>>???"}'
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()

    signature = emailengine_signature(secret, body)

    assert signature == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert len(signature) == 43 and "=" not in signature


def test_signed_headers_add_emailengine_headers_only_with_a_service_secret():
    secret, body = generate_service_secret(), b'{"id":"evt_1"}'
    assert len(secret) == 32 and int(secret, 16) >= 0  # EmailEngine's own form: 16 random bytes as hex

    standard = signed_headers([b"k" * 32], "evt_1", body, timestamp=1_800_000_000)
    both = signed_headers([b"k" * 32], "evt_1", body, timestamp=1_800_000_000, service_secret=secret)

    assert "X-EE-Wh-Signature" not in standard and "X-EE-Wh-Event-Id" not in standard
    assert both["X-EE-Wh-Event-Id"] == "evt_1"
    assert verify_emailengine(secret, {k.lower(): v for k, v in both.items()}, body)
    assert {k: v for k, v in both.items() if k.startswith("webhook-")} == standard
