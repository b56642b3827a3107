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


def test_a_consumer_killed_while_storing_the_sent_copy_does_not_send_again(api, plain_dovecot, tmp_path):
    # Given an account whose IMAP goes through a proxy that holds back APPEND answers,
    # and whose SMTP server is a sink that counts messages
    email, password = f"crash-{secrets.token_hex(4)}@example.test", "crash-password"
    plain_dovecot.add_user(email, password)
    with SmtpSink(auth=True) as sink, ImapFilterProxy(plain_dovecot.imap_port, hold_append=True) as proxy:
        response = api.post("/v1/account", {
            "account": "crash-" + secrets.token_hex(4), "email": email, "name": "Crash", "verify": False,
            "imap": {"host": plain_dovecot.hostname, "port": proxy.port, "secure": False,
                     "auth": {"user": email, "pass": password}, "tls": {"allowPlaintextAuth": True}},
            "smtp": {"host": "127.0.0.1", "port": sink.port, "secure": False,
                     "auth": {"user": email, "pass": password}, "tls": {"allowPlaintextAuth": True}}})
        assert response.status == 200, response.body
        account = response.json["account"]
        # and a message in the outbox
        send_at = datetime.now(UTC) + SCHEDULE_AHEAD
        response = api.post(f"/v1/account/{account}/submit", {
            "to": "someone@example.test", "subject": "once", "text": "only once", "sendAt": send_at.isoformat()})
        assert response.status == 202, response.body
        queue_id, message_id = response.json["queueId"], response.json["messageId"]
        due = send_at + timedelta(seconds=5)
        log = tmp_path / "consumers.log"

        # When a consumer sends it and dies while the Sent copy's APPEND awaits its answer
        first = consumer(queue_id, due, log)
        try:
            assert proxy.held_append.wait(APPEND_WAIT_SECONDS), log.read_text()
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert sink.messages == 1
        assert outbox_store.get_entry(queue_id).state == "sending"

        # And the queue message comes back to a fresh consumer once the lease has run out
        proxy.hold_append = False
        second = consumer(queue_id, due + outbox_service.SEND_LEASE + timedelta(seconds=1), log)
        assert second.wait(CONSUMER_SECONDS) == 0, log.read_text()

        # Then the recipient got it once, the Sent folder holds one copy, and the entry is sent
        assert "result: sent" in log.read_text(), log.read_text()
        assert sink.messages == 1
        assert len(sent_copies(plain_dovecot, email, password, message_id)) == 1
        entry = outbox_store.get_entry(queue_id)
        assert entry.state == "sent" and entry.response == "250 queued"
        assert entry.smtp_accepted is None and not entry.warnings
        assert outbox_service.process_message(queue_id) == "sent"
        assert sink.messages == 1
