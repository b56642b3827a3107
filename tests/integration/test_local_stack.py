"""The local stack: template resources in moto, and DynamoDB surviving restarts and SIGKILL.

The emulator runs as a child process (``python -m local.emulator``): moto's state is
process-global, so only a new process is a real restart, and only a child process can
really be SIGKILLed.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local.emulator import AwsEmulator
from local.resources import create_resources

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": None}
EMULATOR_START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client(service: str, endpoint_url: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, region_name=REGION, **CREDENTIALS)


# -- create_resources against a moto server -------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_create_resources_makes_the_template_tables_and_queues_with_the_dlq_redrive(moto_endpoint: str) -> None:
    # Given a stack name nobody else in this process uses (moto's state is process-wide)
    stack = f"t{uuid.uuid4().hex[:10]}"

    # When the template's resources are created
    created = create_resources(ROOT / "template.yaml", stack, endpoint_url=moto_endpoint, region=REGION)

    # Then every table exists with the template's key
    dynamodb = client("dynamodb", moto_endpoint)
    assert {"AccountsTable", "TokensTable", "SettingsTable"} <= set(created)
    tokens = dynamodb.describe_table(TableName=f"{stack}-tokens")["Table"]
    assert tokens["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert tokens["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert all(resource.created for resource in created.values())
    # And the events queue is FIFO and redrives to the dead-letter queue after 50 receives
    sqs = client("sqs", moto_endpoint)
    events_url = sqs.get_queue_url(QueueName=f"{stack}-events.fifo")["QueueUrl"]
    assert created["EventsQueue"].url == events_url
    attributes = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true"
    assert attributes["VisibilityTimeout"] == "900"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:123456789012:{stack}-events-dlq.fifo",
        "maxReceiveCount": 50,
    }

    # When it runs again, Then nothing is created and nothing fails
    again = create_resources(ROOT / "template.yaml", stack, endpoint_url=moto_endpoint, region=REGION)
    assert not any(resource.created for resource in again.values())
    assert again["EventsQueue"].url == events_url


def test_create_resources_creates_buckets_and_time_to_live(moto_endpoint: str, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n"
        "  Sessions:\n"
        "    Type: AWS::DynamoDB::Table\n"
        "    Properties:\n"
        '      TableName: !Sub "${AWS::StackName}-sessions"\n'
        "      BillingMode: PAY_PER_REQUEST\n"
        "      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]\n"
        "      KeySchema: [{AttributeName: id, KeyType: HASH}]\n"
        "      TimeToLiveSpecification: {AttributeName: expires, Enabled: true}\n"
        "  Files:\n"
        "    Type: AWS::S3::Bucket\n"
        '    Properties: {BucketName: !Sub "${AWS::StackName}-files"}\n')
    stack = f"t{uuid.uuid4().hex[:10]}"

    create_resources(template, stack, endpoint_url=moto_endpoint, region=REGION)

    ttl = client("dynamodb", moto_endpoint).describe_time_to_live(TableName=f"{stack}-sessions")
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires"
    client("s3", moto_endpoint).head_bucket(Bucket=f"{stack}-files")


# -- the emulator's snapshot ----------------------------------------------------------------


class EmulatorProcess:
    def __init__(self, process: subprocess.Popen[str], endpoint_url: str) -> None:
        self.process = process
        self.endpoint_url = endpoint_url

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=15)


def start_emulator(data_dir: Path, save_interval_seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "local.emulator", "--data-dir", str(data_dir), "--port", str(free_port()),
         "--save-interval", str(save_interval_seconds)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def running_emulator(data_dir: Path, save_interval_seconds: float = 60.0) -> Iterator[EmulatorProcess]:
    """A fresh emulator process on ``data_dir``; always gone after the block."""
    process = start_emulator(data_dir, save_interval_seconds)
    try:
        line = read_line(process, EMULATOR_START_TIMEOUT_SECONDS)
        assert line.startswith("ready "), f"emulator did not start: {line!r} {process.stderr.read()!r}"
        yield EmulatorProcess(process, line.split()[1])
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=15)


def read_line(process: subprocess.Popen[str], timeout_seconds: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_seconds):
            return ""
    return process.stdout.readline()


def every_attribute_type(key: str) -> dict[str, Any]:
    return {
        "pk": {"S": key},
        "sk": {"N": "1.50"},
        "blob": {"B": bytes(range(256))},
        "empty_blob": {"B": b""},
        "text": {"S": "grüße \u2603 \"quoted\" \n"},
        "empty_text": {"S": ""},
        "big": {"N": "-12345678901234567890.000000000000000001"},
        "yes": {"BOOL": True},
        "no": {"BOOL": False},
        "nothing": {"NULL": True},
        "strings": {"SS": ["a", "b"]},
        "numbers": {"NS": ["1", "2.5", "-3"]},
        "blobs": {"BS": [b"\x00", b"\xff\xfe"]},
        "nested": {"M": {
            "list": {"L": [{"S": "x"}, {"N": "7"}, {"B": b"\x01"}, {"NULL": True},
                           {"L": []}, {"M": {"deep": {"BS": [b"z"]}}}]},
            "empty_map": {"M": {}},
        }},
    }


def create_table_with_index(dynamodb: Any, name: str) -> None:
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "text", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{"IndexName": "by-text", "KeySchema": [{"AttributeName": "text", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])
    dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={"AttributeName": "exp", "Enabled": True})


def scan_sorted(dynamodb: Any, name: str) -> list[dict[str, Any]]:
    return sorted(dynamodb.scan(TableName=name)["Items"], key=lambda item: item["pk"]["S"])


def test_snapshot_round_trip_keeps_tables_and_every_attribute_type(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # Given items of every attribute type, written just before a clean stop (the periodic
    # save is an hour away, so only the shutdown save can keep them)
    with running_emulator(data_dir, save_interval_seconds=3600) as emulator:
        dynamodb = client("dynamodb", emulator.endpoint_url)
        create_table_with_index(dynamodb, "things")
        written = [every_attribute_type(f"item-{n}") for n in range(30)]  # more than one batch write
        for item in written:
            dynamodb.put_item(TableName="things", Item=item)
        assert emulator.stop() == 0

    # Then the snapshot is private
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "dynamodb.json").stat().st_mode) == 0o600

    # When a fresh emulator starts on the same data dir
    with running_emulator(data_dir) as emulator:
        dynamodb = client("dynamodb", emulator.endpoint_url)
        # Then the table has its keys, index and TTL back, and the items are identical
        table = dynamodb.describe_table(TableName="things")["Table"]
        assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                      {"AttributeName": "sk", "KeyType": "RANGE"}]
        assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["by-text"]
        ttl = dynamodb.describe_time_to_live(TableName="things")["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "exp"
        assert scan_sorted(dynamodb, "things") == sorted(written, key=lambda item: item["pk"]["S"])
        # And the index works on restored items
        found = dynamodb.query(TableName="things", IndexName="by-text", KeyConditionExpression="#t = :t",
                               ExpressionAttributeNames={"#t": "text"},
                               ExpressionAttributeValues={":t": written[0]["text"]})
        assert found["Count"] == 30


def test_sigkill_keeps_what_was_written_before_the_save_interval(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    save_interval_seconds = 0.3
    # Given an emulator that saves every 0.3 s and items written more than an interval ago
    with running_emulator(data_dir, save_interval_seconds) as emulator:
        dynamodb = client("dynamodb", emulator.endpoint_url)
        create_table_with_index(dynamodb, "things")
        written = [every_attribute_type(f"item-{n}") for n in range(3)]
        for item in written:
            dynamodb.put_item(TableName="things", Item=item)
        dynamodb.delete_item(TableName="things", Key={"pk": written[2]["pk"], "sk": written[2]["sk"]})
        time.sleep(save_interval_seconds * 4)
        # When it is SIGKILLed: no shutdown save
        emulator.kill()

    # Then a fresh emulator has them (and not the deleted one), and no temp file is left
    with running_emulator(data_dir) as emulator:
        dynamodb = client("dynamodb", emulator.endpoint_url)
        assert scan_sorted(dynamodb, "things") == written[:2]
    assert sorted(path.name for path in data_dir.iterdir()) == ["dynamodb.json"]


def test_an_unreadable_snapshot_stops_the_start_and_is_left_untouched(tmp_path: Path) -> None:
    # Given a damaged snapshot
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    snapshot = data_dir / "dynamodb.json"
    snapshot.write_text('{"format": 1, "tables": [')

    # When the emulator starts, Then it refuses, says why, and keeps the file as it was
    process = start_emulator(data_dir, 0.1)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "not valid JSON" in stderr
    assert snapshot.read_text() == '{"format": 1, "tables": ['
    assert os.listdir(data_dir) == ["dynamodb.json"]


# -- the snapshot thread: scans only after a change ------------------------------------------


def wait_until(condition: Any, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_an_idle_emulator_never_scans_and_a_write_is_saved_within_the_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process (to count the scans) on a region of its own: moto's backends are process-global.
    region, interval = "eu-west-3", 0.1
    emulator = AwsEmulator(tmp_path / "data", port=free_port(), region=region, save_interval_seconds=interval)
    emulator.start()
    try:
        emulator.restore()
        dynamodb = boto3.client("dynamodb", endpoint_url=emulator.endpoint_url, region_name=region, **CREDENTIALS)
        create_table_with_index(dynamodb, "idle-things")
        assert wait_until(lambda: (tmp_path / "data" / "dynamodb.json").exists(), 30 * interval)
        scans: list[float] = []
        scan_tables = emulator._scan_tables
        monkeypatch.setattr(emulator, "_scan_tables", lambda: scans.append(time.monotonic()) or scan_tables())
        # Given a system that only reads for 10 intervals (what the API and the watcher do when idle)
        started = time.monotonic()
        while time.monotonic() - started < 10 * interval:
            dynamodb.list_tables()
            dynamodb.describe_table(TableName="idle-things")
            dynamodb.scan(TableName="idle-things")
            dynamodb.get_item(TableName="idle-things", Key={"pk": {"S": "nobody"}, "sk": {"N": "1"}})
            time.sleep(interval / 4)
        # Then the snapshot thread never scanned
        assert scans == []
        # When one item is written
        item = every_attribute_type("written-while-idle")
        dynamodb.put_item(TableName="idle-things", Item=item)
        # Then it is in the file within the interval (plus the scan and slack for a loaded machine)
        assert wait_until(lambda: "written-while-idle" in (tmp_path / "data" / "dynamodb.json").read_text(),
                          20 * interval)
        assert scans
        # And the thread goes quiet again: no scan without a new change
        time.sleep(3 * interval)
        settled = len(scans)
        time.sleep(5 * interval)
        assert len(scans) == settled
    finally:
        emulator.stop()
