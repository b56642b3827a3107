"""A process that dies after the SMTP server took a message: the message is not sent again.

The process (an outbox consumer, or the API handling ``POST /submit``) runs on its own and
is killed with SIGKILL (what a Lambda timeout does to it: no exception handler, no cleanup)
while the Sent copy's APPEND waits for the server's answer, which a proxy in front of
Dovecot holds back. The queue message then comes back to a fresh consumer after the send
lease; the clock is passed in, so the test does not wait out the 300 s lease. A retried
submit comes after its Idempotency-Key's in-progress window, which the test ends by
moving the record's in-progress expiry into the past instead of waiting 120 s.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from imapclient import IMAPClient

from chalicelib.incarnations import scoped
from chalicelib.services import outbox as outbox_service
from chalicelib.services import sending
from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.store import outbox as outbox_store
from chalicelib.store.idempotency_records import TABLE, partition
from tests.support.imap_filter_proxy import ImapFilterProxy
from tests.support.mailservers import Dovecot
from tests.support.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE_AHEAD = timedelta(minutes=2)
APPEND_WAIT_SECONDS = 30
CONSUMER_SECONDS = 60
# One queue message, handled as Lambda would: the process prints what process_message returned.
CONSUMER = ("import sys; from datetime import datetime; from chalicelib.services import outbox; "
            "print('result:', outbox.process_message(sys.argv[1], now=datetime.fromisoformat(sys.argv[2])), "
            "flush=True)")


@pytest.fixture(scope="module")
def plain_dovecot(test_pki) -> Iterator[Dovecot]:
    # Without TLS, so the proxy sees (and can hold) the APPEND's answer.
    with Dovecot(test_pki, tls=False) as server:
        yield server


# One API request, handled as the API Lambda would (the Chalice app in this process).
API_REQUEST = ("import json, sys; from chalice.test import Client; from app import app\n"
               "with Client(app, stage_name='local') as client:\n"
               "    answer = client.http.post(sys.argv[1], headers=json.loads(sys.argv[2]), body=sys.argv[3])\n"
               "    print('result:', answer.status_code, answer.body.decode(), flush=True)")


def _process(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", *args], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def consumer(queue_id: str, now: datetime, log: Path) -> subprocess.Popen:
    return _process([CONSUMER, queue_id, now.isoformat()], log)


def api_request(path: str, headers: dict[str, str], body: dict, log: Path) -> subprocess.Popen:
    return _process([API_REQUEST, path, json.dumps(headers), json.dumps(body)], log)


def sent_copies(server: Dovecot, email: str, password: str, message_id: str) -> list[int]:
    client = IMAPClient(server.hostname, port=server.imap_port, ssl=False, timeout=10)
    try:
        client.login(email, password)
        client.select_folder("Sent", readonly=True)
        return list(client.search(["HEADER", "Message-ID", message_id]))
    finally:
        client.logout()


@dataclass
class CrashSetup:
    sink: SmtpSink
    proxy: ImapFilterProxy
    server: Dovecot
    account: str
    email: str
    password: str
    log: Path

    def schedule(self, api) -> tuple[str, str, datetime]:
        """Queue a message; returns (queueId, messageId, a time at which it is due)."""
        send_at = datetime.now(UTC) + SCHEDULE_AHEAD
        response = api.post(f"/v1/account/{self.account}/submit", {
            "to": "someone@example.test", "subject": "once", "text": "only once", "sendAt": send_at.isoformat()})
        assert response.status == 202, response.body
        return response.json["queueId"], response.json["messageId"], send_at + timedelta(seconds=5)

    def run_killed_in_append(self, queue_id: str, now: datetime) -> None:
        """A consumer that dies while its Sent copy's APPEND awaits the server's answer."""
        self.kill_in_append(consumer(queue_id, now, self.log))

    def kill_in_append(self, process: subprocess.Popen) -> None:
        """Kill ``process`` (just started) when its Sent copy's APPEND awaits the server's answer."""
        self.proxy.hold_append = True
        self.proxy.held_append.clear()
        try:
            assert self.proxy.held_append.wait(APPEND_WAIT_SECONDS), self.log.read_text()
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def run_to_the_end(self, queue_id: str, now: datetime) -> str:
        self.proxy.hold_append = False
        process = consumer(queue_id, now, self.log)
        assert process.wait(CONSUMER_SECONDS) == 0, self.log.read_text()
        return self.log.read_text().strip().splitlines()[-1]

    def sent_copies(self, message_id: str) -> list[int]:
        return sent_copies(self.server, self.email, self.password, message_id)


@pytest.fixture
def crash(api, plain_dovecot, tmp_path) -> Iterator[CrashSetup]:
    """An account whose IMAP goes through a proxy that can hold back APPEND answers, and whose
    SMTP server is a sink that counts messages."""
    email, password = f"crash-{secrets.token_hex(4)}@example.test", "crash-password"
    plain_dovecot.add_user(email, password)
    with SmtpSink(auth=True) as sink, ImapFilterProxy(plain_dovecot.imap_port) as proxy:
        response = api.post("/v1/account", {
            "account": "crash-" + secrets.token_hex(4), "email": email, "name": "Crash", "verify": False,
            "imap": {"host": plain_dovecot.hostname, "port": proxy.port, "secure": False,
                     "auth": {"user": email, "pass": password}, "tls": {"allowPlaintextAuth": True}},
            "smtp": {"host": "127.0.0.1", "port": sink.port, "secure": False,
                     "auth": {"user": email, "pass": password}, "tls": {"allowPlaintextAuth": True}}})
        assert response.status == 200, response.body
        yield CrashSetup(sink, proxy, plain_dovecot, response.json["account"], email, password,
                         tmp_path / "consumers.log")


def test_a_consumer_killed_while_storing_the_sent_copy_does_not_send_again(api, crash):
    # Given a message in the outbox
    queue_id, message_id, due = crash.schedule(api)

    # When a consumer sends it and dies while the Sent copy's APPEND awaits its answer
    crash.run_killed_in_append(queue_id, due)
    assert crash.sink.messages == 1
    assert outbox_store.get_entry(queue_id).state == "sending"

    # And the queue message comes back to a fresh consumer once the lease has run out
    result = crash.run_to_the_end(queue_id, due + outbox_service.SEND_LEASE + timedelta(seconds=1))

    # Then the recipient got it once, the Sent folder holds one copy, and the entry is sent
    assert result == "result: sent", crash.log.read_text()
    assert crash.sink.messages == 1
    assert len(crash.sent_copies(message_id)) == 1
    entry = outbox_store.get_entry(queue_id)
    assert entry.state == "sent" and entry.response == "250 queued"
    assert entry.smtp_accepted is None and not entry.warnings
    # And a duplicate queue message changes nothing
    assert outbox_service.process_message(queue_id) == "sent"
    assert crash.sink.messages == 1


def test_steps_that_kill_every_worker_are_given_up_and_the_message_is_not_sent_again(api, crash):
    # Given a message whose first consumer died in the Sent copy's APPEND
    queue_id, message_id, due = crash.schedule(api)
    crash.run_killed_in_append(queue_id, due)
    # and whose copy is not there (removed meanwhile), so the next worker appends it again
    client = IMAPClient(crash.server.hostname, port=crash.server.imap_port, ssl=False, timeout=10)
    client.login(crash.email, crash.password)
    client.select_folder("Sent")
    client.delete_messages(client.search(["HEADER", "Message-ID", message_id]))
    client.expunge()
    client.logout()

    # When that worker dies in the APPEND too, and a third one gets the queue message
    later = due + outbox_service.SEND_LEASE + timedelta(seconds=1)
    crash.run_killed_in_append(queue_id, later)
    result = crash.run_to_the_end(queue_id, later + outbox_service.SEND_LEASE + timedelta(seconds=1))

    # Then the entry is sent, with the step it gave up as a warning, and the message went out once
    assert result == "result: sent", crash.log.read_text()
    assert crash.sink.messages == 1
    entry = outbox_store.get_entry(queue_id)
    assert entry.state == "sent"
    assert entry.warnings == ["the message was sent but the Sent copy was given up after 2 workers "
                              "were stopped during it"]
    response = api.get(f"/v1/outbox/{queue_id}")
    assert response.json["warnings"] == entry.warnings and response.json["state"] == "sent"


# -- POST /submit with an Idempotency-Key, the API process killed after SMTP's 250 -----------------


def end_in_progress_windows(account: str) -> None:
    """What IN_PROGRESS_SECONDS passing does to the account's Idempotency-Key records: their
    in-progress expiry lies in the past (Powertools compares it with the wall clock)."""
    scope = scoped(account, account_store.get_account(account).incarnation)
    settings = get_settings()
    dynamodb = boto3.client("dynamodb", region_name=settings.aws_region)
    table = settings.table_name(TABLE)
    items = dynamodb.query(TableName=table, KeyConditionExpression="id = :id",
                           ExpressionAttributeValues={":id": {"S": partition(scope)}})["Items"]
    records = [item for item in items if "in_progress_expiration" in item]
    assert records, items
    for item in records:
        dynamodb.update_item(TableName=table, Key={"id": item["id"], "sk": item["sk"]},
                             UpdateExpression="SET in_progress_expiration = :past",
                             ExpressionAttributeValues={":past": {"N": "1"}})


def test_a_submit_killed_while_storing_the_sent_copy_is_not_sent_again_by_a_retry(api, crash):
    # Given a send with an Idempotency-Key, handled by an API process
    path = f"/v1/account/{crash.account}/submit"
    body = {"to": "someone@example.test", "subject": "once", "text": "only once"}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api.token}",
               "Idempotency-Key": "submit-killed-in-append"}

    # When that process dies while the Sent copy's APPEND awaits its answer (after SMTP's 250)
    crash.kill_in_append(api_request(path, headers, body, crash.log))
    assert crash.sink.messages == 1

    # And the client retries the same request with the same key once the in-progress window is over
    end_in_progress_windows(crash.account)
    crash.proxy.hold_append = False
    retry = api.post(path, body, headers={"Idempotency-Key": "submit-killed-in-append"})

    # Then the retry is answered from the first request: sent, to the same recipients, marked as
    # replayed, with a warning that the steps after sending may not have run; nothing went out again
    assert retry.status == 200, retry.body
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json["accepted"] == ["someone@example.test"] and retry.json["response"] == "250 queued"
    assert retry.json["warnings"] == [sending.STEPS_UNKNOWN_WARNING]
    assert crash.sink.messages == 1
    # the first request's message (its Sent copy, stored although its answer was held) has that Message-ID
    assert len(crash.sent_copies(retry.json["messageId"])) == 1
    # And another retry after the window changes nothing either
    assert api.post(path, body, headers={"Idempotency-Key": "submit-killed-in-append"}).json == retry.json
    assert crash.sink.messages == 1
