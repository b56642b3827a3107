"""The delivery log (GET /v1/webhooks/deliveries) and replays (POST /v1/webhooks/replay...)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from botocore.exceptions import ClientError

from tests.support.webhook_receiver import Reply, WebhookReceiver, verify_signature


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def delivered(webhooks, *events) -> None:
    webhooks.run_until(lambda: all((d := webhooks.delivery(e.id)) is not None and d.status != "pending"
                                   for e in events))


def test_the_log_lists_deliveries_newest_first_filtered_and_paged(webhooks, receiver, api):
    # Given three delivered events of one account and one that failed for good
    webhooks.configure_with_secret(receiver.url())
    started = datetime.now(UTC) - timedelta(seconds=1)
    ok = [webhooks.event("acc-log", "messageNew", n=n) for n in range(3)]
    webhooks.publish(*ok)
    delivered(webhooks, *ok)
    receiver.reply_with(Reply(410))
    gone = webhooks.event("acc-log-other", "messageDeleted")
    webhooks.publish(gone)
    delivered(webhooks, gone)

    # When the log is listed for the account, two per page
    first = api.get(f"/v1/webhooks/deliveries?account=acc-log&pageSize=2&since={iso(started)}")
    assert first.status == 200, first.body
    second = api.get(f"/v1/webhooks/deliveries?account=acc-log&pageSize=2&since={iso(started)}"
                     f"&cursor={first.json['nextCursor']}")

    # Then the pages hold the account's events, newest first, with what happened to them
    listed = first.json["deliveries"] + second.json["deliveries"]
    assert [d["id"] for d in listed] == [e.id for e in reversed(ok)]
    assert second.json.get("nextCursor") is None
    assert {(d["status"], d["attempts"], d["lastStatusCode"]) for d in listed} == {("delivered", 1, 200)}

    # When filtered by status across accounts
    failed = api.get(f"/v1/webhooks/deliveries?status=failed&since={iso(started)}").json["deliveries"]
    assert [(d["id"], d["event"], d["reason"], d["lastStatusCode"]) for d in failed] == \
        [(gone.id, "messageDeleted", "endpointGone", 410)]

    # When paged without an account (the day-partitioned walk)
    seen, cursor = [], None
    while True:
        page = api.get(f"/v1/webhooks/deliveries?pageSize=1&since={iso(started)}"
                       + (f"&cursor={cursor}" if cursor else "")).json
        seen += [d["id"] for d in page["deliveries"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert seen[:4] == [gone.id, *[e.id for e in reversed(ok)]]


def test_bad_log_queries_are_refused(webhooks, api):
    assert api.get("/v1/webhooks/deliveries?status=lost").json["code"] == "ValidationError"
    response = api.get("/v1/webhooks/deliveries?cursor=bm90IG91cnM")
    assert (response.status, response.json["code"]) == (422, "InvalidCursor")
    assert "query.cursor" in response.json["details"]
    response = api.get("/v1/webhooks/deliveries?since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z")
    assert (response.status, response.json["details"]) == (422, {"query.until": "before since"})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


TODAY = datetime.now(UTC).strftime("%Y-%m-%d").encode()


@pytest.mark.parametrize("crafted", [
    b'{"day": "' + TODAY + b'", "key": {"eventId": {"S": "x"}}}',
    b'{"key": {"eventId": {"S": "x"}, "sortKey": {"N": "nope"}}}',
    b'{"key": {"unknown": {"S": "x"}}}',
    b'{"day": 5, "key": "x"}',
    b"[1, 2, 3]",
    b"\x01" + b"\x00" * 40,
])
def test_a_crafted_cursor_is_422_invalid_cursor(webhooks, api, crafted):
    # Given a cursor the server never issued: valid base64url around contents of the caller's choosing
    for query in ("", "account=acc-crafted&"):
        # When the log is paged with it
        response = api.get(f"/v1/webhooks/deliveries?{query}cursor={b64url(crafted)}")
        # Then it is refused as a cursor, not a server error
        assert (response.status, response.json["code"]) == (422, "InvalidCursor"), response.body
    response = api.post("/v1/webhooks/replay", {"since": iso(datetime.now(UTC) - timedelta(days=1)),
                                                "cursor": b64url(crafted)})
    assert (response.status, response.json["code"]) == (422, "InvalidCursor"), response.body


def test_only_an_unaltered_cursor_of_the_same_query_continues_a_listing(webhooks, receiver, api):
    # Given a log with more events than one page
    webhooks.configure_with_secret(receiver.url())
    since = iso(datetime.now(UTC) - timedelta(seconds=1))
    events = [webhooks.event("acc-cursor", "messageNew", n=n) for n in range(3)]
    webhooks.publish(*events)
    delivered(webhooks, *events)
    listing = f"/v1/webhooks/deliveries?account=acc-cursor&pageSize=1&since={since}"
    cursor = api.get(listing).json["nextCursor"]
    assert api.get(f"{listing}&cursor={cursor}").status == 200

    # When the cursor is altered by one character, or used for another query
    altered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    for response in (api.get(f"{listing}&cursor={altered}"),
                     api.get(f"/v1/webhooks/deliveries?account=acc-other&pageSize=1&since={since}&cursor={cursor}"),
                     api.get(f"/v1/webhooks/deliveries?pageSize=1&since={since}&cursor={cursor}")):
        # Then it is refused
        assert (response.status, response.json["code"]) == (422, "InvalidCursor"), response.body


def test_a_token_bound_to_an_account_sees_only_its_deliveries(webhooks, api):
    api.post("/v1/account", {"account": "acc-bound", "email": "b@example.test", "verify": False,
                             "imap": {"host": "127.0.0.1", "port": 1143, "auth": {"user": "u", "pass": "p"}}})
    try:
        token = api.post("/v1/tokens", {"description": "bound", "scopes": ["api"],
                                        "account": "acc-bound"}).json["token"]
        assert api.get("/v1/webhooks/deliveries?account=someone-else", token=token).status == 403
        webhooks.publish(webhooks.event("acc-bound"), webhooks.event("acc-not-bound"))
        webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0))
        listed = api.get("/v1/webhooks/deliveries", token=token).json["deliveries"]
        assert {d["account"] for d in listed} == {"acc-bound"}
    finally:
        api.delete("/v1/account/acc-bound")


def test_replay_resends_the_same_events_with_the_same_ids_and_bodies(webhooks, receiver, api):
    # Given two delivered events
    secret = webhooks.configure_with_secret(receiver.url())
    since = datetime.now(UTC) - timedelta(seconds=1)
    events = [webhooks.event("acc-replay", "messageNew", n=n) for n in range(2)]
    webhooks.publish(*events)
    delivered(webhooks, *events)
    originals = receiver.requests

    # When everything since then is replayed
    response = api.post("/v1/webhooks/replay", {"since": iso(since), "account": "acc-replay"})
    assert response.status == 200, response.body
    assert response.json["replayed"] == 2 and response.json["replayId"].startswith("rpl_")
    webhooks.run_until(lambda: len(receiver.requests) >= 4)

    # Then the receiver got the same ids and bytes again, in order, freshly signed
    replays = receiver.requests[2:]
    assert [(r.webhook_id, r.body) for r in replays] == [(r.webhook_id, r.body) for r in originals]
    assert all(verify_signature(secret, r.headers, r.body) for r in replays)
    logged = webhooks.delivery(events[0].id)
    assert (logged.status, logged.attempts) == ("delivered", 2)
    assert api.get("/v1/webhooks/deliveries?account=acc-replay").json["deliveries"][0]["replay"] is True

    # When one event is replayed by id
    assert api.post(f"/v1/webhooks/replay/{events[1].id}").json["replayed"] == 1
    webhooks.run_until(lambda: len(receiver.requests) >= 5)
    assert receiver.requests[4].webhook_id == events[1].id
    webhooks.run_for(1.5)
    assert len(receiver.requests) == 5  # each replay delivered once


def test_replay_can_pick_only_failed_events(webhooks, receiver, api):
    # Given one delivered and one dead-lettered event
    webhooks.configure_with_secret(receiver.url())
    since = datetime.now(UTC) - timedelta(seconds=1)
    good, bad = webhooks.event("acc-pick", "messageNew"), webhooks.event("acc-pick-2", "messageNew")
    webhooks.publish(good)
    delivered(webhooks, good)
    receiver.default_reply = Reply(500)
    webhooks.publish(bad)
    webhooks.run_until(lambda: (d := webhooks.delivery(bad.id)) is not None and d.status == "failed", timeout=20)
    webhooks.take_dead_letters()
    count = len(receiver.requests)

    # When the receiver is back and failed events are replayed
    receiver.default_reply = Reply(200)
    response = api.post("/v1/webhooks/replay", {"since": iso(since), "status": "failed"})

    # Then only the failed one is sent again, and it is delivered now
    assert response.json["replayed"] == 1
    webhooks.run_until(lambda: webhooks.delivery(bad.id).status == "delivered")
    assert [r.webhook_id for r in receiver.requests[count:]] == [bad.id]


def test_replaying_an_unknown_event_is_a_404(webhooks, api):
    response = api.post("/v1/webhooks/replay/evt_doesnotexist")
    assert (response.status, response.json["code"]) == (404, "EventNotFound")
    response = api.post("/v1/webhooks/replay", {"until": "2030-01-01T00:00:00Z"})
    assert (response.status, list(response.json["details"])) == (400, ["since"])


@pytest.mark.parametrize(("field", "moment"), [
    ("until", datetime.now(UTC) + timedelta(days=30)),
    ("since", datetime.now(UTC) - timedelta(days=60)),
])
def test_a_range_beyond_the_logs_retention_is_refused(webhooks, api, field, moment):
    # When the log or a replay is asked for a range reaching beyond the 14 days the log keeps
    other = {"since": iso(datetime.now(UTC) - timedelta(days=1))} if field == "until" else {}
    listing = api.get(f"/v1/webhooks/deliveries?{field}={iso(moment)}")
    replay = api.post("/v1/webhooks/replay", {**other, field: iso(moment)})
    # Then both answer 422 naming the field, before reading a single partition
    assert (listing.status, listing.json["code"], list(listing.json["details"])) == \
        (422, "ValidationError", [f"query.{field}"])
    assert (replay.status, replay.json["code"], list(replay.json["details"])) == (422, "ValidationError", [field])


def test_a_far_future_until_is_answered_at_once(webhooks, api):
    started = datetime.now(UTC)
    response = api.get("/v1/webhooks/deliveries?until=9999-01-01T00:00:00Z")
    assert response.status == 422
    assert datetime.now(UTC) - started < timedelta(seconds=2)


def test_a_replay_resumes_with_its_cursor_and_a_retried_step_sends_nothing_twice(webhooks, receiver, api,
                                                                                  monkeypatch):
    from chalicelib.services import webhook_recovery

    # Given three delivered events, and replays limited to two events per request
    webhooks.configure_with_secret(receiver.url())
    since = iso(datetime.now(UTC) - timedelta(seconds=1))
    events = [webhooks.event("acc-resume", "messageNew", n=n) for n in range(3)]
    webhooks.publish(*events)
    delivered(webhooks, *events)
    monkeypatch.setattr(webhook_recovery, "REPLAY_LIMIT", 2)
    request = {"since": since, "account": "acc-resume"}

    # When the replay is started, continued with its cursor, and the continuation is sent again (a retry)
    first = api.post("/v1/webhooks/replay", request).json
    second = api.post("/v1/webhooks/replay", {**request, "cursor": first["nextCursor"]}).json
    retried = api.post("/v1/webhooks/replay", {**request, "cursor": first["nextCursor"]}).json
    webhooks.run_until(lambda: len(receiver.requests) >= 6)
    webhooks.run_for(1.5)

    # Then the steps are one run, the retry queues nothing, and each event is sent again exactly once
    assert (first["replayed"], second["replayed"], retried["replayed"]) == (2, 1, 0)
    assert first["replayId"] == second["replayId"] == retried["replayId"]
    assert second.get("nextCursor") is None
    assert sorted(r.webhook_id for r in receiver.requests[3:]) == sorted(e.id for e in events)

    # And a cursor of this replay does not continue a replay of another range
    other = api.post("/v1/webhooks/replay", {"since": since, "account": "acc-other", "cursor": first["nextCursor"]})
    assert (other.status, other.json["code"]) == (422, "InvalidCursor")


def test_a_replay_out_of_time_stops_and_returns_a_cursor(webhooks, receiver, api, monkeypatch):
    from chalicelib.schemas.webhooks import ReplayRequest
    from chalicelib.services import webhook_recovery

    # Given two logged events and a replay whose time budget is spent after the first page
    webhooks.configure_with_secret(receiver.url())
    since = datetime.now(UTC) - timedelta(seconds=1)
    events = [webhooks.event("acc-budget", "messageNew", n=n) for n in range(2)]
    webhooks.publish(*events)
    delivered(webhooks, *events)
    ticks = iter(range(100))
    request = ReplayRequest(since=since, account="acc-budget")

    # When it runs with pages of one event
    monkeypatch.setattr(webhook_recovery, "REPLAY_PAGE", 1)
    first = webhook_recovery.replay(request, clock=lambda: next(ticks), budget_seconds=1)
    rest = webhook_recovery.replay(request.model_copy(update={"cursor": first.nextCursor}),
                                   clock=lambda: 0, budget_seconds=1)

    # Then it stopped after the first event with a cursor, and the cursor finished the rest
    assert (first.replayed, first.nextCursor is not None) == (1, True)
    assert (rest.replayed, rest.replayId, rest.nextCursor) == (1, first.replayId, None)


def test_a_retried_first_replay_request_with_an_idempotency_key_starts_no_second_run(webhooks, receiver, api):
    # Given a delivered event
    webhooks.configure_with_secret(receiver.url())
    since = iso(datetime.now(UTC) - timedelta(seconds=1))
    event = webhooks.event("acc-replay-key", "messageNew")
    webhooks.publish(event)
    delivered(webhooks, event)
    request = {"since": since, "account": "acc-replay-key"}
    key = {"Idempotency-Key": "replay-" + event.id}

    # When the replay request is sent twice with the same Idempotency-Key (a client retry)
    first = api.post("/v1/webhooks/replay", request, headers=key)
    again = api.post("/v1/webhooks/replay", request, headers=key)
    webhooks.run_until(lambda: len(receiver.requests) >= 2)
    webhooks.run_for(1.5)

    # Then the second answer is the first one, and the event is sent again once
    assert first.status == again.status == 200
    assert again.json == first.json and again.headers.get("Idempotent-Replayed") == "true"
    assert [r.webhook_id for r in receiver.requests] == [event.id, event.id]


def test_a_replay_whose_answer_cannot_be_stored_is_answered_and_a_retry_starts_no_second_run(
        webhooks, receiver, api, monkeypatch):
    # Given a delivered event, and a store that refuses every write of a result
    webhooks.configure_with_secret(receiver.url())
    since = iso(datetime.now(UTC) - timedelta(seconds=1))
    event = webhooks.event("acc-replay-unstored", "messageNew")
    webhooks.publish(event)
    delivered(webhooks, event)

    def throttled(self, data_record):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                          "UpdateItem")

    monkeypatch.setattr(DynamoDBPersistenceLayer, "_update_record", throttled)
    request, key = {"since": since, "account": "acc-replay-unstored"}, {"Idempotency-Key": "unstored-" + event.id}

    # When the replay request is sent, then retried with the same key
    first = api.post("/v1/webhooks/replay", request, headers=key)
    again = api.post("/v1/webhooks/replay", request, headers=key)
    webhooks.run_until(lambda: len(receiver.requests) >= 2)
    webhooks.run_for(1.5)

    # Then the first is answered with its run, the retry is told the key is busy, and the event went out once more
    assert first.status == 200 and first.json["replayed"] == 1, first.body
    assert again.status == 409 and again.json["code"] == "IdempotencyKeyInUse"
    assert [r.webhook_id for r in receiver.requests] == [event.id, event.id]
