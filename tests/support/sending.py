"""Pytest plugin and helpers for the sending tests.

Helpers: a sender account with IMAP and SMTP submission, a user's mailbox read directly over
IMAPS (what arrived, flags, the Sent copy), and the outbox consumer played the way Lambda's
SQS event source plays it. Fixtures: ``sent_events`` (a FIFO queue of the test's own that
the sending code publishes to, so no other test's events mix in) and ``sending_settings``
(changes sending settings for one test and restores them, pools included).
"""

from __future__ import annotations

import base64
import email
import json
import secrets
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy

import boto3
import pytest
from imapclient import IMAPClient

from chalicelib.events.model import Event
from chalicelib.events.publisher import SqsEventSink
from chalicelib.message_ids import MessageRef, encode_message_id
from chalicelib.services import outbox as outbox_service
from chalicelib.services import send_attempts
from chalicelib.settings import reset_settings
from chalicelib.smtp.pool import reset_pool
from tests.support.aws import MOTO_ENDPOINT, REGION
from tests.support.fixtures import MailUser
from tests.support.mailservers import HOSTNAME, Dovecot, Postfix
from tests.support.messages import build_message

DELIVERY_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.02


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def register_sender(api, dovecot: Dovecot, postfix: Postfix, user: MailUser, *, name: str = "Ann Sender",
                    smtp_secure: bool = False) -> str:
    """Register ``user`` with IMAP (STARTTLS) and SMTP submission; return the account id."""
    response = api.post("/v1/account", {
        "account": "snd-" + secrets.token_hex(6), "email": user.email, "name": name,
        "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False,
                 "auth": {"user": user.email, "pass": user.password}},
        "smtp": {"host": postfix.hostname, "port": postfix.smtps_port if smtp_secure else postfix.smtp_port,
                 "secure": smtp_secure, "auth": {"user": user.email, "pass": user.password}}})
    assert response.status == 200, response.body
    return response.json["account"]


@dataclass
class Mailbox:
    """A user's mailbox reached directly over IMAPS, to check what the API did."""

    dovecot: Dovecot
    user: MailUser

    def client(self) -> IMAPClient:
        context = ssl.create_default_context(cafile=str(self.dovecot.pki.ca_file))
        client = IMAPClient(HOSTNAME, port=self.dovecot.imaps_port, ssl=True, ssl_context=context, timeout=10)
        client.login(self.user.email, self.user.password)
        return client

    def uids(self, folder: str, criteria: list) -> list[int]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            return list(client.search(criteria))

    def wait_for(self, message_id: str, folder: str = "INBOX", *, count: int = 1,
                 timeout: float = DELIVERY_TIMEOUT_SECONDS) -> list[int]:
        """UIDs of the messages with this Message-ID once ``count`` of them are there."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            while True:
                found = list(client.search(["HEADER", "Message-ID", message_id]))
                if len(found) >= count:
                    return found
                if time.monotonic() > deadline:
                    raise AssertionError(f"{message_id} not in {folder} of {self.user.email} within {timeout} s")
                time.sleep(POLL_SECONDS)
                client.noop()

    def raw(self, uid: int, folder: str = "INBOX") -> bytes:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            return client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]

    def flags(self, uid: int, folder: str = "INBOX") -> set[str]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            return {f.decode() for f in client.get_flags([uid])[uid]}

    def append(self, folder: str, raw: bytes, flags: tuple = ()) -> str:
        """APPEND and return the API message id of the new message."""
        with self.client() as client:
            answer = client.append(folder, raw, flags=flags)
            uid = int(answer.split(b"]")[0].split()[-1])
            uid_validity = client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"]
        return encode_message_id(MessageRef(folder, uid_validity, uid))

    def received(self, message_id: str, folder: str = "INBOX") -> tuple[bytes, EmailMessage]:
        raw = self.raw(self.wait_for(message_id, folder)[0], folder)
        return raw, email.message_from_bytes(raw, policy=default_policy)


def make_message(*, sender: str, to: str, subject: str, body: str = "Hello.\n", message_id: str | None = None,
                 references: str | None = None, cc: str | None = None, reply_to: str | None = None,
                 html: str | None = None, attachments: tuple[tuple[str, str, bytes], ...] = ()) -> tuple[bytes, str]:
    """A message to reply to or forward, and its Message-ID."""
    message_id = message_id or f"<orig-{secrets.token_hex(6)}@example.test>"
    raw = build_message(sender=sender, to=to, subject=subject, body=body, date="Tue, 03 Nov 2026 10:00:00 +0000",
                        message_id=message_id, html=html, attachments=attachments, cc=cc, reply_to=reply_to,
                        references=references)
    return raw, message_id


def attachments_of(message: EmailMessage) -> dict[str, bytes]:
    return {part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()}


# -- events ------------------------------------------------------------------------------------


class EventQueue:
    """A FIFO queue of its own that the sending code publishes to during one test."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION, endpoint_url=MOTO_ENDPOINT)
        name = f"test-send-events-{secrets.token_hex(4)}.fifo"
        self.url = self.sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
        self.seen: list[Event] = []

    def events(self, kind: str | None = None) -> list[Event]:
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = answer.get("Messages") or []
            if not messages:
                break
            for message in messages:
                self.seen.append(Event.from_json(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return [e for e in self.seen if kind is None or e.event == kind]


@pytest.fixture
def sent_events(monkeypatch: pytest.MonkeyPatch, aws_resources) -> Iterator[EventQueue]:
    queue = EventQueue()
    monkeypatch.setattr(send_attempts, "get_event_sink", lambda: SqsEventSink(queue_url=queue.url))
    yield queue
    queue.sqs.delete_queue(QueueUrl=queue.url)


@pytest.fixture
def sending_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Change sending settings for one test (environment + cached settings), restored after."""

    def change(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        reset_settings()
        reset_pool()

    yield change
    monkeypatch.undo()
    reset_settings()
    reset_pool()


# -- the outbox consumer -----------------------------------------------------------------------


def run_outbox_until(condition: Callable[[], bool], timeout: float = 20.0) -> list[str]:
    """Play Lambda's event source: receive outbox messages, call the handler, delete them."""
    sqs = outbox_service.get_sqs_client()
    url = outbox_service.outbox_queue_url()
    results: list[str] = []
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"outbox condition not reached within {timeout} s (handled: {results})")
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = answer.get("Messages") or []
        if not messages:
            continue
        event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]}
                             for m in messages]}
        response = outbox_service.handle_outbox_batch(event)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for message in messages:
            results.append(json.loads(message["Body"])["queueId"])
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return results
