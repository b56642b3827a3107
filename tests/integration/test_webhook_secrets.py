"""Every endpoint signs with its own secrets: an account's override never with the global
secret, the global endpoint never with an override's; rotation with an overlap during
which both signatures are sent. Real receivers on loopback, the consumer on the moto queue.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.support.webhook_receiver import ReceivedRequest, WebhookReceiver, verify_signature

OVERLAP_SECONDS = "3"


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def own_receiver():
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def account(api):
    created: list[str] = []

    def register(account_id: str) -> str:
        response = api.post("/v1/account", {
            "account": account_id, "email": f"{account_id}@example.test", "verify": False,
            "imap": {"host": "127.0.0.1", "port": 1143, "auth": {"user": account_id, "pass": "secret"}}})
        assert response.status == 200, response.body
        created.append(account_id)
        return account_id

    yield register
    for account_id in created:
        api.delete(f"/v1/account/{account_id}")


def signatures(request: ReceivedRequest) -> list[str]:
    return request.headers["webhook-signature"].split()


def deliver(webhooks, receiver_: WebhookReceiver, *events) -> list[ReceivedRequest]:
    before = len(receiver_.requests)
    webhooks.publish(*events)
    webhooks.run_until(lambda: len(receiver_.requests) >= before + len(events))
    return receiver_.requests[before:]


def test_an_override_is_signed_with_its_own_secret_shown_once_and_never_with_the_global_one(
        webhooks, receiver, own_receiver, account, api):
    # Given a global endpoint with its secret, and two accounts
    global_secret = webhooks.configure_with_secret(receiver.url())
    own, other = account("acc-own-secret"), account("acc-global-secret")

    # When one account gets a URL of its own
    response = api.put(f"/v1/account/{own}", {"webhooks": own_receiver.url("/own")})

    # Then the response carries the override's own whsec_ secret, once
    assert response.status == 200, response.body
    own_secret = response.json["webhookSecret"]
    assert own_secret.startswith("whsec_") and own_secret != global_secret
    assert response.json["webhookSecretSet"] is True
    shown = api.get(f"/v1/account/{own}")
    assert shown.json["webhookSecretSet"] is True and "whsec_" not in shown.body.decode()
    again = api.put(f"/v1/account/{own}", {"webhookEvents": ["messageNew"]})
    assert "webhookSecret" not in again.json

    # When events of both accounts are delivered
    [own_request] = deliver(webhooks, own_receiver, webhooks.event(own))
    [global_request] = deliver(webhooks, receiver, webhooks.event(other))

    # Then the override's requests verify with its secret and not with the global one,
    # and the global endpoint's requests not with the override's
    assert len(signatures(own_request)) == 1
    assert verify_signature(own_secret, own_request.headers, own_request.body)
    assert not verify_signature(global_secret, own_request.headers, own_request.body)
    assert verify_signature(global_secret, global_request.headers, global_request.body)
    assert not verify_signature(own_secret, global_request.headers, global_request.body)

    # ... and so does the test endpoint for that account
    assert api.post("/v1/webhooks/test", {"account": own}).json["success"] is True
    test_request = own_receiver.requests[-1]
    assert verify_signature(own_secret, test_request.headers, test_request.body)
    assert not verify_signature(global_secret, test_request.headers, test_request.body)


def test_removing_the_override_removes_its_secret_and_a_new_url_gets_a_new_one(webhooks, own_receiver, account,
                                                                                  api):
    webhooks.configure_with_secret(own_receiver.url("/global"))
    own = account("acc-new-secret")
    first = api.put(f"/v1/account/{own}", {"webhooks": own_receiver.url("/own")}).json["webhookSecret"]

    removed = api.put(f"/v1/account/{own}", {"webhooks": None})
    assert removed.json["webhookSecretSet"] is False and "webhookSecret" not in removed.json

    second = api.put(f"/v1/account/{own}", {"webhooks": own_receiver.url("/own")}).json["webhookSecret"]
    assert second.startswith("whsec_") and second != first


def test_a_rotated_override_secret_is_sent_alongside_the_old_one_until_the_overlap_ends(
        webhooks, own_receiver, account, api, monkeypatch):
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("IMAPLESS_WEBHOOK_SECRET_OVERLAP_SECONDS", OVERLAP_SECONDS)
    reset_settings()
    webhooks.configure_with_secret(own_receiver.url("/global"))
    own = account("acc-rotate")
    old_secret = api.put(f"/v1/account/{own}", {"webhooks": own_receiver.url("/own")}).json["webhookSecret"]

    # When the override's secret is rotated
    rotated = api.post(f"/v1/account/{own}/webhooks/secret/rotate")

    # Then the new secret is shown once, with the end of the overlap
    assert rotated.status == 200, rotated.body
    new_secret = rotated.json["webhookSecret"]
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    overlap_ends = datetime.fromisoformat(rotated.json["previousSecretValidUntil"])
    assert "whsec_" not in api.get(f"/v1/account/{own}").body.decode()

    # ... during the overlap every request carries both signatures, each verifying
    [during] = deliver(webhooks, own_receiver, webhooks.event(own))
    assert len(signatures(during)) == 2
    assert verify_signature(new_secret, during.headers, during.body)
    assert verify_signature(old_secret, during.headers, during.body)

    # ... and after it only the new one
    time.sleep(max(0.0, overlap_ends.timestamp() - time.time()) + 0.1)
    [after] = deliver(webhooks, own_receiver, webhooks.event(own))
    assert len(signatures(after)) == 1
    assert verify_signature(new_secret, after.headers, after.body)
    assert not verify_signature(old_secret, after.headers, after.body)


def test_the_global_secret_rotates_with_the_same_overlap(webhooks, receiver, api, monkeypatch):
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("IMAPLESS_WEBHOOK_SECRET_OVERLAP_SECONDS", OVERLAP_SECONDS)
    reset_settings()
    old_secret = webhooks.configure_with_secret(receiver.url())

    rotated = api.post("/v1/webhooks/secret/rotate")

    assert rotated.status == 200, rotated.body
    new_secret = rotated.json["webhookSecret"]
    assert "whsec_" not in api.get("/v1/settings").body.decode()
    [during] = deliver(webhooks, receiver, webhooks.event("acc-global-rotate"))
    assert len(signatures(during)) == 2
    assert verify_signature(new_secret, during.headers, during.body)
    assert verify_signature(old_secret, during.headers, during.body)
    time.sleep(max(0.0, datetime.fromisoformat(rotated.json["previousSecretValidUntil"]).timestamp()
                   - time.time()) + 0.1)
    [after] = deliver(webhooks, receiver, webhooks.event("acc-global-rotate"))
    assert signatures(after) == [s for s in signatures(after) if verify_signature(new_secret, after.headers,
                                                                                   after.body)]
    assert len(signatures(after)) == 1 and not verify_signature(old_secret, after.headers, after.body)


def test_an_account_without_its_own_url_has_no_secret_to_rotate(webhooks, account, api):
    own = account("acc-no-override")
    response = api.post(f"/v1/account/{own}/webhooks/secret/rotate")
    assert (response.status, response.json["code"]) == (409, "WebhookNotConfigured")
    assert api.post("/v1/account/acc-missing/webhooks/secret/rotate").status == 404
