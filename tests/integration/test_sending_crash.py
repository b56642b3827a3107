"""A consumer that dies after the SMTP server took a message: the message is not sent again.

The consumer runs in a process of its own and is killed with SIGKILL (what a Lambda
timeout does to it: no exception handler, no cleanup) while the Sent copy's APPEND waits
for the server's answer, which a proxy in front of Dovecot holds back. The queue message
then comes back to a fresh consumer after the send lease; the clock is passed in, so the
test does not wait out the 300 s lease.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from imapclient import IMAPClient

from chalicelib.services import outbox as outbox_service
from chalicelib.store import outbox as outbox_store
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


def consumer(queue_id: str, now: datetime, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", CONSUMER, queue_id, now.isoformat()], cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


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
        self.proxy.hold_append = True
        self.proxy.held_append.clear()
        process = consumer(queue_id, now, self.log)
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
