"""An account-bound token changes only its own account's webhooks: 403 on every global
operation and on other accounts, its own operations work, and re-saving its override never
re-enables an endpoint that a 410 disabled for everybody else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.webhook_receiver import Reply, WebhookReceiver, verify_signature

OWN, OTHER = "acc-bound-own", "acc-bound-other"


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def bound_token(webhooks, api):
    """Two accounts, and a token with the 'api' scope bound to the first."""
    for account in (OWN, OTHER):
        response = api.post("/v1/account", {
            "account": account, "email": f"{account}@example.test", "verify": False,
            "imap": {"host": "127.0.0.1", "port": 1143, "auth": {"user": account, "pass": "secret"}}})
        assert response.status == 200, response.body
    token = api.post("/v1/tokens", {"description": "bound", "scopes": ["api"], "account": OWN}).json["token"]
    yield token
    for account in (OWN, OTHER):
        api.delete(f"/v1/account/{account}")


def test_a_bound_token_is_refused_every_global_operation_and_every_other_account(webhooks, receiver, api,
                                                                                  bound_token):
    webhooks.configure_with_secret(receiver.url())
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    refused = [
        ("GET", "/v1/settings", None),
        ("POST", "/v1/settings", {"webhooksEnabled": True}),
        ("POST", "/v1/settings", {"webhooks": receiver.url("/mine")}),
        ("POST", "/v1/webhooks/secret/rotate", None),
        ("POST", "/v1/webhooks/replay", {"since": since, "account": OTHER}),
        ("POST", "/v1/webhooks/test", {"account": OTHER}),
        ("GET", f"/v1/webhooks/deliveries?account={OTHER}", None),
        ("GET", f"/v1/account/{OTHER}", None),
        ("PUT", f"/v1/account/{OTHER}", {"webhooks": receiver.url("/hijack")}),
        ("POST", f"/v1/account/{OTHER}/webhooks/secret/rotate", None),
    ]
    for method, path, body in refused:
        response = api.request(method, path, body, token=bound_token)
        assert (response.status, response.json["code"]) == (403, "Forbidden"), (method, path, response.body)
    # ... and none of it changed anything
    assert api.get(f"/v1/account/{OTHER}").json.get("webhooks") is None
    assert api.get("/v1/settings").json["webhooks"] == receiver.url()

    # An event of another account cannot be replayed with it either (as if unknown)
    other_event = webhooks.event(OTHER)
    webhooks.publish(other_event)
    webhooks.run_until(lambda: webhooks.delivery(other_event.id) is not None)
    response = api.post(f"/v1/webhooks/replay/{other_event.id}", token=bound_token)
    assert (response.status, response.json["code"]) == (404, "EventNotFound")


def test_a_bound_token_manages_its_own_override_and_replays_its_own_events(webhooks, receiver, api, bound_token):
    webhooks.configure_with_secret(receiver.url())
    with WebhookReceiver() as own_receiver:
        # When the bound token sets its account's URL, reads it back and rotates its secret
        response = api.put(f"/v1/account/{OWN}", {"webhooks": own_receiver.url("/own")}, token=bound_token)
        assert response.status == 200, response.body
        assert response.json["webhookSecret"].startswith("whsec_")
        assert api.get(f"/v1/account/{OWN}", token=bound_token).json["webhookSecretSet"] is True
        rotated = api.post(f"/v1/account/{OWN}/webhooks/secret/rotate", token=bound_token)
        assert rotated.status == 200, rotated.body
        secret = rotated.json["webhookSecret"]

        # ... tests its endpoint (without naming the account: a bound token means its own)
        tested = api.post("/v1/webhooks/test", {}, token=bound_token)
        assert tested.status == 200 and tested.json["success"] is True, tested.body

        # ... and replays its events, alone or by range (only its own account's come back)
        since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
        own, other = webhooks.event(OWN), webhooks.event(OTHER)
        webhooks.publish(own, other)
        webhooks.run_until(lambda: len(own_receiver.requests) >= 2 and len(receiver.requests) >= 1)
        assert api.post(f"/v1/webhooks/replay/{own.id}", token=bound_token).status == 200
        ranged = api.post("/v1/webhooks/replay", {"since": since}, token=bound_token)
        assert ranged.status == 200 and ranged.json["replayed"] == 1, ranged.body
        webhooks.run_until(lambda: len(own_receiver.requests) >= 4)
        webhooks.run_for(1.0)

        # Then its endpoint got its event three times, signed with its secret; the other
        # account's event was delivered once and never replayed
        deliveries = [r for r in own_receiver.requests if r.webhook_id == own.id]
        assert len(deliveries) == 3
        assert all(verify_signature(secret, r.headers, r.body) for r in deliveries)
        assert [r.webhook_id for r in receiver.requests] == [other.id]
        listed = api.get("/v1/webhooks/deliveries", token=bound_token).json["deliveries"]
        assert {d["account"] for d in listed} == {OWN}


def test_saving_an_override_with_a_url_gone_for_everybody_re_enables_it_for_that_account_only(
        webhooks, receiver, api, bound_token):
    # Given the global endpoint disabled after it answered 410 Gone
    webhooks.configure_with_secret(receiver.url())
    receiver.reply_with(Reply(410))
    gone = webhooks.event(OTHER)
    webhooks.publish(gone)
    webhooks.run_until(lambda: (d := webhooks.delivery(gone.id)) is not None and d.status == "failed")
    assert [(d["url"], d.get("account")) for d in api.get("/v1/settings").json["disabledWebhookEndpoints"]] == \
        [(receiver.url(), None)]

    # When a token bound to one account saves that same URL as its account's override
    response = api.put(f"/v1/account/{OWN}", {"webhooks": receiver.url()}, token=bound_token)
    assert response.status == 200, response.body
    own_secret = response.json["webhookSecret"]

    # Then the global endpoint is still disabled for every other account
    assert [(d["url"], d.get("account")) for d in api.get("/v1/settings").json["disabledWebhookEndpoints"]] == \
        [(receiver.url(), None)]
    others, own = webhooks.event(OTHER), webhooks.event(OWN)
    webhooks.publish(others, own)
    webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0) and webhooks.delivery(others.id) is not None)
    assert (webhooks.delivery(others.id).status, webhooks.delivery(others.id).reason) == \
        ("skipped", "endpointDisabled")
    # ... while the account's own endpoint (its own secret) gets the account's events
    assert [r.webhook_id for r in receiver.requests] == [gone.id, own.id]
    assert verify_signature(own_secret, receiver.requests[1].headers, receiver.requests[1].body)

    # When its own endpoint answers 410 in turn, only that endpoint is disabled
    receiver.reply_with(Reply(410))
    own_gone = webhooks.event(OWN)
    webhooks.publish(own_gone)
    webhooks.run_until(lambda: (d := webhooks.delivery(own_gone.id)) is not None and d.status == "failed")
    assert sorted((d["url"], d.get("account") or "") for d in api.get("/v1/settings").json[
        "disabledWebhookEndpoints"]) == [(receiver.url(), ""), (receiver.url(), OWN)]
