"""GET /v1/stats against moto: accounts by state, queue depths, watcher leases; and the API metrics."""

from __future__ import annotations

import json
import uuid

import pytest

from chalicelib.events import queue
from chalicelib.settings import reset_settings
from chalicelib.store import leases
from deploy.finalize_template import queue_short_names
from local.resources import load_template
from tests.infrastructure.conftest import ROOT
from tests.integration.test_api_auth_and_errors import new_account


@pytest.fixture
def stack_queues(monkeypatch):
    """IMAPLESS_QUEUES as the packaged template sets it: every queue of template.yaml."""
    names = sorted(queue_short_names(load_template(ROOT / "template.yaml")).values())
    monkeypatch.setenv("IMAPLESS_QUEUES", ",".join(names))
    reset_settings()
    yield names
    monkeypatch.undo()
    reset_settings()


def remove_from_queue(short_name: str, body: str) -> None:
    """Take the test's own message back out, so no later consumer of the queue meets it."""
    sqs, url = queue.get_sqs_client(), queue.queue_url(short_name)
    for _ in range(20):
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        for message in received:
            if message["Body"] == body:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    raise AssertionError("the probe message never came back from the queue")


def test_stats_count_accounts_queues_and_watcher_leases(api, stack_queues):
    # Given two new accounts, a message waiting in the outbox queue and a live watcher holding 3 shards
    before = api.get("/v1/stats").json
    for _ in range(2):
        new_account(api, f"stats-{uuid.uuid4().hex[:8]}")
    probe = json.dumps({"statsProbe": uuid.uuid4().hex})
    queue.get_sqs_client().send_message(QueueUrl=queue.queue_url("outbox"), MessageBody=probe)
    worker = f"w-stats-{uuid.uuid4().hex[:6]}"
    leases.heartbeat(worker, "watcher", 30, leases.now_ms())
    for shard in range(3):
        assert leases.acquire_shard(leases.shard_key("watcher", 200 + shard), worker, None)
    try:
        # When an admin asks for the stats
        response = api.get("/v1/stats")
        # Then every part is measured
        assert response.status == 200, response.body
        stats = response.json
        assert stats["accounts"].get("new", 0) == before["accounts"].get("new", 0) + 2
        assert set(stats["queues"]) == set(stack_queues)
        assert stats["queues"]["outbox"]["visible"] + stats["queues"]["outbox"]["delayed"] >= 1
        mine, = [w for w in stats["watchers"] if w["worker"] == worker]
        assert mine["shards"] == 3
        assert stats["shards"]["total"] == 256 and stats["shards"]["held"] >= 3
        assert stats["webhooks"]["failedLast24h"] >= 0 and stats["notes"] == []
    finally:
        remove_from_queue("outbox", probe)
        for shard in range(3):
            leases.release_shard(leases.shard_key("watcher", 200 + shard), worker)
        leases.remove_worker(worker)


def test_stats_without_the_queue_list_say_so_instead_of_failing(api):
    stats = api.get("/v1/stats").json
    assert stats["queues"] == {}
    assert any("IMAPLESS_QUEUES" in note for note in stats["notes"])


def test_stats_are_for_admins_only(api):
    created = api.post("/v1/tokens", {"description": "api scope", "scopes": ["api"]})
    assert created.status == 200, created.body
    response = api.get("/v1/stats", token=created.json["token"])
    assert response.status == 403
    assert response.json["code"] == "Forbidden"


def test_each_request_emits_its_latency_by_route_template(api, capsys):
    # When a request with a path parameter is served
    api.get("/v1/account/no-such-account")
    # Then one EMF line carries the latency under the route template, not the raw path
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    latency = [line for line in lines if "ApiLatency" in line]
    assert latency, lines
    assert latency[-1]["route"] == "/v1/account/{account}"
    assert latency[-1]["method"] == "GET" and "ApiServerErrors" not in latency[-1]  # a 404 is no server error
    assert latency[-1]["ApiLatency"][0] > 0
