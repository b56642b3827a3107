"""Helpers for the watcher tests: a private events queue, watcher subprocesses, mail actions."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import boto3
from imapclient import IMAPClient

from chalicelib.events.model import Event
from tests.support.aws import MOTO_ENDPOINT, REGION, ROOT
from tests.support.certs import TestPKI
from tests.support.dovecot import OFFICE365_LIKE_CAPABILITIES
from tests.support.fixtures import MailUser
from tests.support.mailservers import Dovecot

# Short timings so hand-overs and retries happen within a test's patience.
FAST_WATCHER_ENVIRONMENT = {
    "IMAPLESS_WATCHER_SHARDS": "8",
    "IMAPLESS_WATCHER_POOL_SIZE": "4",
    "IMAPLESS_WATCHER_ACCOUNT_SCAN_SECONDS": "0.3",
    "IMAPLESS_WATCHER_LEASE_SECONDS": "3",
    "IMAPLESS_WATCHER_HEARTBEAT_SECONDS": "0.5",
    "IMAPLESS_WATCHER_RECONNECT_MIN_SECONDS": "0.2",
    "IMAPLESS_WATCHER_RECONNECT_MAX_SECONDS": "1",
    "IMAPLESS_WATCHER_STATUS_POLL_SECONDS": "1",
    "IMAPLESS_LOG_LEVEL": "DEBUG",
}


class EventQueue:
    """A FIFO queue of its own in moto; collects events and answers "did X arrive" with a deadline."""

    def __init__(self) -> None:
        self.client = boto3.client("sqs", region_name=REGION, endpoint_url=MOTO_ENDPOINT)
        name = f"watcher-test-{secrets.token_hex(6)}.fifo"
        self.url = self.client.create_queue(QueueName=name, Attributes={
            "FifoQueue": "true", "ContentBasedDeduplication": "false"})["QueueUrl"]
        self.events: list[Event] = []

    def poll(self) -> None:
        while True:
            answer = self.client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                 AttributeNames=["SentTimestamp"])
            messages = answer.get("Messages", [])
            if not messages:
                return
            for message in messages:
                self.events.append(Event.from_json(message["Body"]))
                self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = 15.0,
                 what: str = "events") -> list[Event]:
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if predicate(self.events):
                return self.events
            if time.monotonic() > deadline:
                seen = [(e.event, e.path, e.data.get("uid")) for e in self.events]
                raise AssertionError(f"timed out waiting for {what}; got {seen}")
            time.sleep(0.05)

    def wait_for_event(self, account: str, kind: str, count: int = 1, timeout: float = 15.0) -> list[Event]:
        """Wait until ``account`` has at least ``count`` events of ``kind``; returns those events."""
        what = kind if count == 1 else f"{count} {kind}"
        self.wait_for(lambda _: len(self.of(account, kind)) >= count, timeout=timeout, what=what)
        return self.of(account, kind)

    def settle(self, seconds: float = 1.5) -> None:
        """Give the watcher ``seconds`` to publish what it should not (a duplicate from the next
        sweep, a repeated state event), then collect it, so the test's counts can see it."""
        time.sleep(seconds)
        self.poll()

    def of(self, account: str, kind: str | None = None) -> list[Event]:
        return [e for e in self.events if e.account == account and (kind is None or e.event == kind)]

    def delete(self) -> None:
        with contextlib.suppress(Exception):
            self.client.delete_queue(QueueUrl=self.url)


class WatcherProcess:
    """``python -m tests.integration.watcher_harness`` with the test environment."""

    def __init__(self, queue: EventQueue, prefix: str, namespace: str, extra_env: dict[str, str] | None = None,
                 fast: bool = True, record_aws_calls: bool = False, extra_args: Sequence[str] = ()):
        """``queue``: anything with the ``url`` of the queue to publish to.
        ``fast``: the short test timings (benchmarks measure the production defaults).
        ``record_aws_calls``: the process logs every AWS request it makes (see :meth:`aws_calls`).
        ``extra_args``: more options of ``tests.integration.watcher_harness``."""
        self.log = Path(tempfile.mkstemp(prefix="watcher-", suffix=".log")[1])
        self.aws_call_log = (Path(tempfile.mkstemp(prefix="watcher-aws-", suffix=".log")[1]) if record_aws_calls
                             else None)
        environment = {**os.environ, **(FAST_WATCHER_ENVIRONMENT if fast else {}), **(extra_env or {})}
        recording = ["--aws-call-log", str(self.aws_call_log)] if self.aws_call_log else []
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.watcher_harness", "--queue-url", queue.url,
                 "--account-prefix", prefix, "--namespace", namespace, *recording, *extra_args],
                cwd=ROOT, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
                self.process.kill()
                self.process.wait()
                raise AssertionError("watcher did not stop within 20 s of SIGTERM\n" + self.log_text()) from None
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def log_text(self, limit: int | None = 6000) -> str:
        """The log's last ``limit`` characters (enough for an assertion message), or all of it."""
        text = self.log.read_text(errors="replace")
        return text if limit is None else text[-limit:]

    def aws_calls(self) -> list[str]:
        """The AWS requests made so far, one ``<operation> <table> [<index>]`` string each."""
        assert self.aws_call_log is not None, "started without record_aws_calls"
        return self.aws_call_log.read_text().splitlines()


@contextlib.contextmanager
def running_watcher(queue: EventQueue, prefix: str, namespace: str, **kwargs) -> Iterator[WatcherProcess]:
    watcher = WatcherProcess(queue, prefix, namespace, **kwargs)
    try:
        yield watcher
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n--- watcher log ---\n{watcher.log_text()}") from None
    finally:
        watcher.stop()


def imap_client(server, user) -> IMAPClient:
    client = IMAPClient(server.hostname, port=server.imap_port, ssl=False, timeout=10)
    client.starttls(ssl.create_default_context())
    client.login(user.email, user.password)
    return client


def office365_like_dovecot(pki: TestPKI, **options) -> Iterator[Dovecot]:
    """A Dovecot of its own that announces only what Office 365 does after login (no
    CONDSTORE, QRESYNC or NOTIFY), for a module-scoped fixture to ``yield from``."""
    with Dovecot(pki, capabilities=OFFICE365_LIKE_CAPABILITIES, **options) as server:
        yield server


def user_with_client(server, email: str, password: str) -> tuple[MailUser, IMAPClient]:
    """A new user of ``server`` and an IMAP client logged in as that user (STARTTLS)."""
    server.add_user(email, password)
    user = MailUser(email=email, password=password)
    return user, imap_client(server, user)


def mail_from(sender, recipient: str, subject: str, attachment: bytes | None = None) -> EmailMessage:
    """A short message from ``sender`` (a MailUser), with a PDF attachment if given."""
    message = EmailMessage()
    message["From"] = f"Sender <{sender.email}>"
    message["To"] = recipient
    message["Subject"] = subject
    message["Message-ID"] = f"<{secrets.token_hex(8)}@example.test>"
    message.set_content("Hello from the watcher test.\n")
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="pdf", filename="report.pdf")
    return message


def deliver_mail(server, sender, recipient: str, subject: str, attachment: bytes | None = None) -> None:
    """Deliver straight into ``recipient``'s INBOX the way ``server`` takes local mail (LMTP for
    Dovecot and Cyrus, a Maildir rename for Courier): new mail without Postfix."""
    server.deliver(recipient, mail_from(sender, recipient, subject, attachment).as_bytes(policy=SMTP),
                   sender=sender.email)


def send_mail(postfix, sender, recipient: str, subject: str, attachment: bytes | None = None) -> None:
    message = mail_from(sender, recipient, subject, attachment)
    with smtplib.SMTP(postfix.hostname, postfix.smtp_port, timeout=10) as smtp:
        smtp.starttls(context=ssl.create_default_context())
        smtp.login(sender.email, sender.password)
        smtp.send_message(message)


def register_account(api, server, user, account_id: str, password: str | None = None, verify: bool = True,
                     port: int | None = None) -> None:
    """Register ``user`` of ``server`` (STARTTLS), or through a proxy listening on ``port``."""
    body = {"account": account_id, "email": user.email, "name": "Watched",
            "imap": {"host": server.hostname, "port": port or server.imap_port, "secure": False,
                     "auth": {"user": user.email, "pass": password or user.password}},
            "verify": verify}
    response = api.post("/v1/account", body)
    assert response.status in (200, 201), response.body
