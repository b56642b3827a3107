"""EmailEngine's webhook settings: ``POST /v1/webhooks``, ``inboxNewOnly`` (with events the
watcher made from real Dovecot mail) and the optional ``X-EE-Wh-Signature``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from tests.integration.watcher_support import deliver_mail, imap_client, register_account, running_watcher
from tests.support.webhook_receiver import WebhookReceiver, verify_signature


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def ee_signature(service_secret: str, body: bytes) -> str:
    """EmailEngine's computation, written from its worker: createHmac('sha256', serviceSecret)
    over the body, digest('base64url') (Node drops the padding)."""
    digest = hmac.new(service_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


# -- POST/GET /v1/webhooks --------------------------------------------------------------------


def test_post_webhooks_sets_the_url_and_events_and_enables_delivery(webhooks, api, receiver):
    # Given webhooks switched off
    api.post("/v1/settings", {"webhooksEnabled": False})

    # When the EmailEngine-style alias sets a URL and an event filter
    response = api.post("/v1/webhooks", {"url": receiver.url(),
                                         "events": ["messageNew", "messageUpdated", "messageDeleted"]})

    # Then the settings say so, delivery is on, and GET returns the same without a secret
    assert response.status == 200, response.body
    settings = api.get("/v1/settings").json
    assert (settings["webhooks"], settings["webhooksEnabled"]) == (receiver.url(), True)
    assert settings["webhookEvents"] == ["messageNew", "messageUpdated", "messageDeleted"]
    shown = api.get("/v1/webhooks")
    assert shown.status == 200
    assert shown.json == {"url": receiver.url(), "events": ["messageNew", "messageUpdated", "messageDeleted"],
                          "enabled": True, "webhookSecretSet": True}
    assert "whsec_" not in shown.body.decode()

    # ... and the events are delivered accordingly
    wanted, unwanted = webhooks.event("acc-alias", "messageNew"), webhooks.event("acc-alias", "mailboxNew")
    webhooks.publish(unwanted, wanted)
    webhooks.run_until(lambda: webhooks.delivery(wanted.id) is not None and webhooks.delivery(unwanted.id) is not None)
    assert [r.webhook_id for r in receiver.requests] == [wanted.id]
    assert webhooks.delivery(unwanted.id).reason == "eventNotSubscribed"


def test_post_webhooks_without_events_keeps_the_filter(webhooks, api, receiver):
    api.post("/v1/settings", {"webhookEvents": ["messageDeleted"]})

    response = api.post("/v1/webhooks", {"url": receiver.url()})

    assert response.status == 200, response.body
    assert (response.json["events"], response.json["enabled"]) == (["messageDeleted"], True)


@pytest.mark.parametrize(("body", "settings_body"), [
    ({"url": "http://169.254.169.254/latest/meta-data"}, {"webhooks": "http://169.254.169.254/latest/meta-data"}),
    ({"url": "ftp://example.com/hook"}, {"webhooks": "ftp://example.com/hook"}),
    ({"url": "https://example.com/hook", "events": ["bogus"]}, {"webhookEvents": ["bogus"]}),
])
def test_post_webhooks_is_refused_like_the_settings(webhooks, api, body, settings_body):
    before = api.get("/v1/settings").json

    response = api.post("/v1/webhooks", body)

    # Then the same status and code as POST /v1/settings, and nothing changed
    expected = api.post("/v1/settings", settings_body)
    assert expected.status in (400, 422)
    assert (response.status, response.json["code"]) == (expected.status, expected.json["code"]), response.body
    named = "url" if "webhooks" in settings_body else "events"
    assert [field.split(".")[0] for field in response.json["details"]] == [named]
    assert api.get("/v1/settings").json == before


def test_post_webhooks_needs_a_url(webhooks, api):
    response = api.post("/v1/webhooks", {"events": ["messageNew"]})

    assert response.status in (400, 422) and "url" in response.json["details"]


def test_the_first_post_webhooks_shows_the_generated_secret_once(webhooks, api, receiver):
    from chalicelib.store.settings import SettingItem
    from chalicelib.webhooks.configuration import SECRET_KEY

    SettingItem(SECRET_KEY).delete()

    first = api.post("/v1/webhooks", {"url": receiver.url()})
    again = api.post("/v1/webhooks", {"url": receiver.url()})

    assert first.json["webhookSecret"].startswith("whsec_")
    assert "webhookSecret" not in again.json and again.json["webhookSecretSet"] is True


# -- inboxNewOnly -------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_inbox_new_only_sends_message_new_for_inbox_mail_only(webhooks, api, receiver, mail_server,
                                                             make_mail_user, events, prefix):
    # Given an account on real Dovecot with a second folder, and the watcher's events of
    # mail delivered into INBOX and saved into that folder
    user, sender = make_mail_user(), make_mail_user()
    client = imap_client(mail_server, user)
    client.create_folder("Projects")
    account = prefix + "inbox"
    register_account(api, mail_server, user, account)
    with running_watcher(events, prefix, prefix + "ns"):
        events.wait_for(lambda ev: events.of(account, "accountInitialized"), what="accountInitialized")
        deliver_mail(mail_server, sender, user.email, "into the inbox")
        client.append("Projects", b"Subject: into projects\r\n\r\nx\r\n")
        events.wait_for(lambda ev: len(events.of(account, "messageNew")) == 2, what="two messageNew")
        client.select_folder("Projects")
        client.add_flags(client.search(["ALL"]), [b"\\Flagged"])
        events.wait_for(lambda ev: events.of(account, "messageUpdated"), what="messageUpdated in Projects")
    client.logout()
    new = {e.path: e for e in events.of(account, "messageNew")}
    assert set(new) == {"INBOX", "Projects"}
    [updated] = events.of(account, "messageUpdated")

    # When webhooks are on with inboxNewOnly and those events are delivered
    webhooks.configure(receiver.url())
    assert api.post("/v1/settings", {"inboxNewOnly": True}).status == 200
    assert api.get("/v1/settings").json["inboxNewOnly"] is True
    webhooks.publish(new["INBOX"], new["Projects"], updated)
    webhooks.run_until(lambda: all(webhooks.delivery(e.id) is not None for e in (*new.values(), updated)))

    # Then the new message in Projects is not sent (logged as skipped, replayable); the one
    # in INBOX is, and so is the other folder's messageUpdated (the setting is about messageNew)
    assert sorted(r.webhook_id for r in receiver.requests) == sorted([new["INBOX"].id, updated.id])
    skipped = webhooks.delivery(new["Projects"].id)
    assert (skipped.status, skipped.reason) == ("skipped", "notInInbox")


def test_without_inbox_new_only_every_folders_message_new_is_sent(webhooks, api, receiver):
    webhooks.configure(receiver.url())
    elsewhere = webhooks.event("acc-folders", "messageNew").model_copy(update={"path": "Projects"})

    webhooks.publish(elsewhere)
    webhooks.run_until(lambda: webhooks.delivery(elsewhere.id) is not None)

    assert [r.webhook_id for r in receiver.requests] == [elsewhere.id]


# -- X-EE-Wh-Signature ---------------------------------------------------------------------------


def test_the_emailengine_signature_is_sent_only_when_chosen(webhooks, api, receiver):
    # Given the default signature style
    secret = webhooks.configure_with_secret(receiver.url())
    plain = webhooks.event("acc-ee-sig", "messageNew", subject="standard only")
    webhooks.publish(plain)
    webhooks.run_until(lambda: len(receiver.requests) >= 1)
    assert "x-ee-wh-signature" not in receiver.requests[0].headers
    assert "x-ee-wh-event-id" not in receiver.requests[0].headers

    # When EmailEngine's style is chosen (a serviceSecret is generated and shown once)
    chosen = api.post("/v1/settings", {"webhooksSignature": "emailengine"})
    assert chosen.status == 200, chosen.body
    service_secret = chosen.json["serviceSecret"]
    assert len(service_secret) == 32
    again = api.post("/v1/settings", {"webhooksSignature": "emailengine"})
    assert "serviceSecret" not in again.json
    shown = api.get("/v1/settings")
    assert (shown.json["webhooksSignature"], shown.json["serviceSecretSet"]) == ("emailengine", True)
    assert service_secret not in shown.body.decode()
    event = webhooks.event("acc-ee-sig", "messageNew", subject="Grüße, both styles")
    webhooks.publish(event)
    webhooks.run_until(lambda: len(receiver.requests) >= 2)

    # Then the request carries both signatures, and each verifies
    request = receiver.requests[1]
    assert request.webhook_id == event.id
    assert verify_signature(secret, request.headers, request.body)
    assert request.headers["x-ee-wh-event-id"] == event.id
    assert request.headers["x-ee-wh-signature"] == ee_signature(service_secret, request.body)
    assert "=" not in request.headers["x-ee-wh-signature"]
    assert request.headers["x-ee-wh-signature"] != ee_signature(service_secret, request.body + b" ")


def test_a_posted_service_secret_signs_and_is_never_echoed(webhooks, api, receiver):
    # Given the service secret an EmailEngine deployment used (receivers already have it)
    service_secret = "an existing EmailEngine serviceSecret 42"
    webhooks.configure(receiver.url())
    response = api.post("/v1/settings", {"webhooksSignature": "emailengine", "serviceSecret": service_secret})
    assert response.status == 200, response.body
    assert service_secret not in response.body.decode()
    assert "serviceSecret" in response.json["updated"]

    # When an event is delivered, also through the test endpoint
    event = webhooks.event("acc-ee-own", "messageDeleted")
    webhooks.publish(event)
    webhooks.run_until(lambda: len(receiver.requests) >= 1)
    assert api.post("/v1/webhooks/test", {}).json["success"] is True

    # Then EmailEngine receivers verify both with that secret
    for request in receiver.wait_for(2):
        assert request.headers["x-ee-wh-signature"] == ee_signature(service_secret, request.body)
        assert request.headers["x-ee-wh-event-id"] == json.loads(request.body)["id"]


@pytest.mark.parametrize("bad", ["short", " padded service secret ", "x" * 257])
def test_a_bad_service_secret_is_refused_without_echoing_it(webhooks, api, bad):
    response = api.post("/v1/settings", {"serviceSecret": bad})

    assert response.status in (400, 422) and response.json["code"] == "ValidationError"
    assert "serviceSecret" in response.json["details"]
    assert bad.strip() not in response.body.decode()


def test_an_unknown_signature_style_is_refused(webhooks, api):
    response = api.post("/v1/settings", {"webhooksSignature": "hmac"})

    assert (response.status, response.json["code"]) == (400, "ValidationError")
