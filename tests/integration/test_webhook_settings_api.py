"""GET/POST /v1/settings, the write-only secret, URL rules, and POST /v1/webhooks/test."""

from __future__ import annotations

import pytest

from chalicelib.settings import reset_settings
from tests.support.webhook_receiver import Reply, WebhookReceiver, verify_signature

SETTING_KEYS = {"webhooks", "webhooksEnabled", "webhookEvents", "inboxNewOnly", "webhookSecretSet", "webhooksSignature",
                "serviceSecretSet", "notifyText", "notifyTextSize", "notifyHeaders", "disabledWebhookEndpoints"}


@pytest.fixture
def no_secret(webhooks):
    """Start from a deployment where no secret was ever configured."""
    from chalicelib.store.settings import SettingItem
    from chalicelib.webhooks.configuration import SECRET_KEY

    SettingItem(SECRET_KEY).delete()
    return webhooks


def test_get_returns_every_setting_and_ignores_which_keys_were_asked_for(webhooks, api):
    # Given some settings
    api.post("/v1/settings", {"notifyText": True, "notifyTextSize": 2048, "notifyHeaders": ["List-ID"]})

    # When an EmailEngine client asks for one key
    response = api.get("/v1/settings?notifyText=true")

    # Then every setting comes back (defaults for the unset ones) and no secret
    assert response.status == 200
    assert set(response.json) == SETTING_KEYS
    assert response.json["notifyText"] is True and response.json["notifyTextSize"] == 2048
    assert response.json["notifyHeaders"] == ["List-ID"]
    assert response.json["webhookEvents"] == ["*"]
    assert "whsec_" not in response.body.decode()
    api.post("/v1/settings", {"notifyText": None, "notifyTextSize": None, "notifyHeaders": None})


def test_the_secret_is_generated_once_shown_once_and_kept_by_later_posts(no_secret, api):
    with WebhookReceiver() as receiver:
        # When webhooks are configured for the first time without a secret
        first = api.post("/v1/settings", {"webhooks": receiver.url(), "webhooksEnabled": True})

        # Then a whsec_ secret is generated and shown in that response only
        assert first.status == 200, first.body
        secret = first.json["webhookSecret"]
        assert secret.startswith("whsec_")
        assert sorted(first.json["updated"]) == ["webhooks", "webhooksEnabled"]
        assert first.json["settings"]["webhookSecretSet"] is True
        assert "webhookSecret" not in api.get("/v1/settings").json

        # When settings are posted again without a secret
        second = api.post("/v1/settings", {"webhookEvents": ["messageNew"]})

        # Then the secret is not shown again, and it still signs the requests
        assert "webhookSecret" not in second.json
        result = api.post("/v1/webhooks/test", {}).json
        assert result["success"] is True and result["statusCode"] == 200
        request = receiver.requests[0]
        assert verify_signature(secret, request.headers, request.body)


def test_a_posted_secret_replaces_the_current_one(webhooks, api):
    with WebhookReceiver() as receiver:
        # Given webhooks with one secret
        old_secret = webhooks.configure_with_secret(receiver.url())

        # When another valid secret is posted
        new_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        response = api.post("/v1/settings", {"webhookSecret": new_secret})

        # Then it is acknowledged without being echoed, and signs from now on
        assert response.status == 200 and "webhookSecret" in response.json["updated"]
        assert new_secret not in response.body.decode()
        api.post("/v1/webhooks/test", {})
        request = receiver.requests[0]
        assert verify_signature(new_secret, request.headers, request.body)
        assert not verify_signature(old_secret, request.headers, request.body)


# 400: the body contradicts the document (enum, type, range, unknown field); 422: a rule of the
# model's own validators (secret and URL syntax) or the address policy.
@pytest.mark.parametrize(("body", "field", "status", "code"), [
    ({"webhookSecret": "not-a-whsec"}, "webhookSecret", 422, "ValidationError"),
    ({"webhookSecret": "whsec_c2hvcnQ="}, "webhookSecret", 422, "ValidationError"),  # 5 bytes
    ({"webhooks": "ftp://example.com/hook"}, "webhooks", 422, "ValidationError"),
    ({"webhooks": "https://example.com/hook#frag"}, "webhooks", 422, "ValidationError"),
    ({"webhookEvents": ["messageNew", "noSuchEvent"]}, "webhookEvents.1", 400, "ValidationError"),
    ({"webhooksEnabled": "maybe"}, "webhooksEnabled", 400, "ValidationError"),
    ({"notifyTextSize": -1}, "notifyTextSize", 400, "ValidationError"),
    ({"webhook": "https://example.com"}, "webhook", 400, "ValidationError"),
    ({"webhooks": "http://169.254.169.254/latest/meta-data"}, "webhooks", 422, "HostNotAllowed"),
    ({"webhooks": "http://[fd00:ec2::254]/"}, "webhooks", 422, "HostNotAllowed"),
    ({"webhooks": "http://nothing.invalid/hook"}, "webhooks", 422, "HostNotFound"),
])
def test_bad_settings_are_refused_with_the_field_at_fault(webhooks, api, body, field, status, code):
    response = api.post("/v1/settings", body)
    assert response.status == status, response.body
    assert response.json["code"] == code
    assert field in response.json["details"]
    if field == "webhookSecret":  # a refused secret is not echoed either
        assert body["webhookSecret"] not in response.body.decode()


def test_loopback_urls_need_private_networks_allowed(webhooks, api, monkeypatch):
    # Given a deployment that does not allow private networks
    monkeypatch.setenv("IMAPLESS_ALLOW_PRIVATE_NETWORKS", "false")
    reset_settings()
    try:
        # When a loopback URL is saved, globally or on an account
        response = api.post("/v1/settings", {"webhooks": "http://127.0.0.1:8080/hook"})
        # Then it is refused
        assert (response.status, response.json["code"]) == (422, "HostNotAllowed")
        assert "IMAPLESS_ALLOW_PRIVATE_NETWORKS" in response.json["details"]["webhooks"]
    finally:
        monkeypatch.setenv("IMAPLESS_ALLOW_PRIVATE_NETWORKS", "true")
        reset_settings()


def test_an_account_override_is_validated_like_the_global_url(webhooks, api):
    api.post("/v1/account", {"account": "acc-bad-hook", "email": "bad@example.test", "verify": False,
                             "imap": {"host": "127.0.0.1", "port": 1143, "auth": {"user": "u", "pass": "p"}}})
    try:
        response = api.put("/v1/account/acc-bad-hook", {"webhooks": "http://169.254.169.254/"})
        assert (response.status, response.json["code"]) == (422, "HostNotAllowed")
        assert api.get("/v1/account/acc-bad-hook").json.get("webhooks") is None
        response = api.put("/v1/account/acc-bad-hook", {"webhookEvents": ["bogus"]})
        assert (response.status, response.json["code"]) == (400, "ValidationError")
    finally:
        api.delete("/v1/account/acc-bad-hook")


def test_global_webhook_operations_need_an_admin_token(webhooks, api):
    # Given an unbound token with the 'api' scope only
    token = api.post("/v1/tokens", {"description": "api only", "scopes": ["api"]}).json["token"]
    # Then every operation on the global endpoint or spanning accounts is refused
    for method, path, body in (("GET", "/v1/settings", None), ("POST", "/v1/settings", {}),
                               ("POST", "/v1/webhooks/secret/rotate", None),
                               ("POST", "/v1/webhooks/replay", {"since": "2030-01-01T00:00:00Z"}),
                               ("POST", "/v1/webhooks/test", {})):
        response = api.request(method, path, body, token=token)
        assert response.status == 403, (method, path, response.body)
    assert api.get("/v1/settings", token=None).status == 401


def test_the_test_endpoint_reports_the_receivers_answer(webhooks, api, test_pki):
    with WebhookReceiver() as receiver:
        webhooks.configure_with_secret(receiver.url())
        receiver.reply_with(Reply(500, body=b"receiver exploded"))

        # When the receiver fails
        failed = api.post("/v1/webhooks/test", {}).json
        # Then the answer is reported, and the request was a signed "test" event
        assert (failed["success"], failed["statusCode"], failed["response"]) == (False, 500, "receiver exploded")
        assert b'"event":"test"' in receiver.requests[0].body
        assert receiver.requests[0].webhook_id == failed["eventId"]

    # When nothing listens
    refused = api.post("/v1/webhooks/test", {}).json
    assert (refused["success"], refused["code"]) == (False, "ConnectionRefused")

    # When the certificate does not match the host (TLS checks the URL's host name)
    with WebhookReceiver(pki=test_pki) as tls_receiver:
        webhooks.configure(tls_receiver.url(host="127.0.0.1"))
        mismatch = api.post("/v1/webhooks/test", {}).json
        assert (mismatch["success"], mismatch["code"]) == (False, "TLSError")
        assert tls_receiver.requests == []


def test_the_test_endpoint_without_a_url_says_so(webhooks, api):
    api.post("/v1/settings", {"webhooks": None})
    response = api.post("/v1/webhooks/test", {})
    assert (response.status, response.json["code"]) == (409, "WebhookNotConfigured")
