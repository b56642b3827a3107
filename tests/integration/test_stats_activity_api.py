"""GET /v1/stats/activity against moto: real deliveries through the consumer to a loopback
receiver, counted per bucket; the cap; a bound token sees its own account only."""

from __future__ import annotations

import uuid

import pytest

from tests.support.webhook_receiver import Reply, WebhookReceiver


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def new_account(api, account: str) -> None:
    response = api.post("/v1/account", {
        "account": account, "email": f"{account}@example.test", "verify": False,
        "imap": {"host": "127.0.0.1", "port": 1143, "auth": {"user": account, "pass": "secret"}}})
    assert response.status == 200, response.body


def counts(activity: dict, part: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for bucket in activity["buckets"]:
        for key, value in bucket[part].items():
            total[key] = total.get(key, 0) + value
    return total


def test_delivered_and_failed_events_are_counted_by_type_status_and_latency(webhooks, receiver, api, monkeypatch):
    # Given one retry 1 s later, and an account whose events go to a receiver that refuses one event
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("IMAPLESS_WEBHOOK_RETRY_SCHEDULE", "1")
    reset_settings()
    account = f"act-{uuid.uuid4().hex[:8]}"
    new_account(api, account)
    webhooks.configure_with_secret(receiver.url())
    new = [webhooks.event(account, "messageNew") for _ in range(3)]
    deleted = webhooks.event(account, "messageDeleted")
    receiver.responder = lambda request: (Reply(status=500, body=b"nope") if request.webhook_id == deleted.id
                                          else Reply())
    try:
        # When they are delivered
        webhooks.publish(*new, deleted)
        webhooks.run_until(lambda: getattr(webhooks.delivery(deleted.id), "status", None) == "failed"
                           and len(receiver.requests) >= 4 and webhooks.queue_counts() == (0, 0))

        # Then the account's activity counts them in the last hour's buckets
        response = api.get(f"/v1/stats/activity?window=1h&account={account}")
        assert response.status == 200, response.body
        activity = response.json
        assert len(activity["buckets"]) == 60 and activity["bucketSeconds"] == 60
        assert counts(activity, "events") == {"messageNew": 3, "messageDeleted": 1}
        assert counts(activity, "deliveries") == {"delivered": 3, "failed": 1}
        assert activity["totalEvents"] == 4 and activity["capped"] is False
        latency = activity["latencyMs"]
        assert latency["samples"] == 4 and 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
        assert activity["accounts"] == {"new": 1}

        # ... and the delivery log shows each POST with its duration and the receiver's answer
        logged = api.get(f"/v1/webhooks/deliveries?account={account}&status=failed").json["deliveries"]
        assert [d["id"] for d in logged] == [deleted.id]
        assert logged[0]["reason"] == "retriesExhausted" and logged[0]["lastStatusCode"] == 500
        attempts = logged[0]["attemptLog"]
        # (one POST or two: a first attempt that comes after the one 1 s retry slot is also the last)
        assert len(attempts) in (1, 2) and len(attempts) == logged[0]["attempts"]
        assert {a["statusCode"] for a in attempts} == {500} and {a["answer"] for a in attempts} == {"nope"}
        assert all(a["durationMs"] > 0 for a in attempts) and logged[0]["lastDurationMs"] > 0

        # ... and the 24 h window counts the same events in 15-minute buckets
        day = api.get(f"/v1/stats/activity?window=24h&account={account}").json
        assert len(day["buckets"]) == 96 and counts(day, "events") == counts(activity, "events")
    finally:
        api.delete(f"/v1/account/{account}")


def test_a_window_with_more_events_than_the_cap_is_counted_from_its_newest_part(webhooks, receiver, api):
    # Given five delivered events of one account
    from chalicelib.services.activity import collect_activity

    account = f"act-cap-{uuid.uuid4().hex[:8]}"
    webhooks.configure_with_secret(receiver.url())
    events = [webhooks.event(account, "messageNew") for _ in range(5)]
    webhooks.publish(*events)
    webhooks.run_until(lambda: len(receiver.requests) >= 5 and webhooks.queue_counts() == (0, 0))

    # When the activity is read with a cap of three events
    capped = collect_activity("1h", account=account, limit=3)
    whole = collect_activity("1h", account=account, limit=5)

    # Then three are counted, the newest, and the answer says so
    assert (capped.totalEvents, capped.capped) == (3, True)
    assert capped.coveredSince == sorted(event.date for event in events)[-3]
    assert any("more than 3" in note for note in capped.notes)
    # ... while a cap the window fits in counts all of them, exactly full is not capped
    assert (whole.totalEvents, whole.capped, whole.coveredSince) == (5, False, whole.since)


def test_a_bound_token_sees_only_its_own_account(webhooks, receiver, api):
    own, other = f"act-own-{uuid.uuid4().hex[:6]}", f"act-other-{uuid.uuid4().hex[:6]}"
    for account in (own, other):
        new_account(api, account)
    token = api.post("/v1/tokens", {"description": "bound", "scopes": ["api"], "account": own}).json["token"]
    webhooks.configure_with_secret(receiver.url())
    try:
        webhooks.publish(webhooks.event(own, "messageNew"), *[webhooks.event(other, "messageNew") for _ in range(2)])
        webhooks.run_until(lambda: len(receiver.requests) >= 3 and webhooks.queue_counts() == (0, 0))

        mine = api.get("/v1/stats/activity", token=token)
        assert mine.status == 200, mine.body
        assert mine.json["totalEvents"] == 1 and mine.json["accounts"] == {"new": 1}
        refused = api.get(f"/v1/stats/activity?account={other}", token=token)
        assert (refused.status, refused.json["code"]) == (403, "Forbidden")
        assert api.get("/v1/stats/activity?window=7d").status == 400
        everything = api.get("/v1/stats/activity").json  # an unbound token: every account
        assert everything["totalEvents"] >= 3 and sum(everything["accounts"].values()) >= 2
    finally:
        for account in (own, other):
            api.delete(f"/v1/account/{account}")
