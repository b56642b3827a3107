"""Which requests to the local emulator count as a possible DynamoDB change (local/dynamodb_changes.py)."""

from __future__ import annotations

from typing import Any

import pytest

from local.dynamodb_changes import DynamoDBChangeCounter, may_change_dynamodb


def request(target: str | None = None, path: str = "/") -> dict[str, Any]:
    environ: dict[str, Any] = {"PATH_INFO": path}
    if target is not None:
        environ["HTTP_X_AMZ_TARGET"] = target
    return environ


@pytest.mark.parametrize(("target", "path", "counts"), [
    ("DynamoDB_20120810.PutItem", "/", True),
    ("DynamoDB_20120810.UpdateItem", "/", True),
    ("DynamoDB_20120810.DeleteItem", "/", True),
    ("DynamoDB_20120810.BatchWriteItem", "/", True),
    ("DynamoDB_20120810.TransactWriteItems", "/", True),
    ("DynamoDB_20120810.CreateTable", "/", True),
    ("DynamoDB_20120810.UpdateTimeToLive", "/", True),
    ("DynamoDB_20120810.ExecuteStatement", "/", True),  # PartiQL may write: counted, never guessed
    ("DynamoDB_20120810.SomethingNewTomorrow", "/", True),  # unknown operations count
    ("DynamoDB_20120810.GetItem", "/", False),
    ("DynamoDB_20120810.Query", "/", False),
    ("DynamoDB_20120810.Scan", "/", False),
    ("DynamoDB_20120810.ListTables", "/", False),
    ("DynamoDB_20120810.DescribeTable", "/", False),
    ("DynamoDB_20120810.DescribeTimeToLive", "/", False),
    ("DynamoDB_20120810.BatchGetItem", "/", False),
    ("DynamoDBStreams_20120810.GetRecords", "/", False),
    ("AmazonSQS.SendMessage", "/", False),
    ("TrentService.Decrypt", "/", False),
    (None, "/imapless-bucket/key", False),  # S3 (REST, no target)
    (None, "/moto-api/reset", True),  # empties every backend
])
def test_only_requests_that_may_change_dynamodb_count(target, path, counts):
    assert may_change_dynamodb(request(target, path)) is counts


def test_the_count_grows_after_the_request_was_handled_even_when_it_failed():
    # Given an app that records the count it sees while handling, then fails
    seen: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(counter.count)
        raise RuntimeError("moto failed")

    counter = DynamoDBChangeCounter(app)
    # When a write is handled
    with pytest.raises(RuntimeError):
        counter(request("DynamoDB_20120810.PutItem"), lambda *args: None)
    # Then the count moved after, not before, the handling; and a read does not move it
    assert (seen, counter.count) == ([0], 1)
    with pytest.raises(RuntimeError):
        counter(request("DynamoDB_20120810.GetItem"), lambda *args: None)
    assert counter.count == 1
