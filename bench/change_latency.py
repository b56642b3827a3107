"""Change latency: from a mail action to its event on the queue, beside a bare IDLE client.

    .venv/bin/python bench/change_latency.py [--samples 30]

Starts its own moto (a process), Dovecot and Postfix (tests/support), one account and the
real watcher process (``python -m workers.watcher`` code path, events to SQS). For each
sample it performs one action and measures, from just before the action:

    ours    until the event is on the queue (its SQS SentTimestamp, so polling adds nothing)
    floor   until a bare imapclient connection, IDLE on the same folder of the same Dovecot,
            receives the server's push (EXISTS / FETCH / EXPUNGE): Dovecot batches IDLE
            notifications for ~0.5 s, so no watcher can be faster than this

Actions: a delivery over SMTP (Postfix -> LMTP -> INBOX), a flag set by another IMAP
client, an expunge, and an APPEND into a non-INBOX folder. Goals: INBOX p50 <= floor + 100 ms,
p95 <= floor + 300 ms; other folder p95 <= 2 s.
"""

from __future__ import annotations

import argparse
import secrets
import ssl
import tempfile
import time
from pathlib import Path

from imapclient import IMAPClient
from watcher_stack import AwsStack, summary
from watcher_stack.floor_client import FloorClient

from tests.integration.watcher_support import EventQueue, WatcherProcess, send_mail
from tests.support.certs import make_test_pki
from tests.support.fixtures import MailUser
from tests.support.mailservers import Dovecot, Postfix

WATCHER_ENVIRONMENT = {"IMAPLESS_WATCHER_SHARDS": "16", "IMAPLESS_LOG_LEVEL": "WARNING"}


class TimedQueue(EventQueue):
    """EventQueue that also keeps when SQS accepted each event."""

    def __init__(self) -> None:
        super().__init__()
        self.sent_at: dict[str, float] = {}

    def poll(self) -> None:
        answer = self.client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                             AttributeNames=["SentTimestamp"])
        from chalicelib.events.model import Event

        for message in answer.get("Messages", []):
            event = Event.from_json(message["Body"])
            self.events.append(event)
            self.sent_at[event.id] = int(message["Attributes"]["SentTimestamp"]) / 1000
            self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


def wait_event(queue: TimedQueue, started: float, kind: str, path: str, timeout: float = 15.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue.poll()
        for event in queue.events:
            at = queue.sent_at[event.id]
            if event.event == kind and event.path == path and at >= started - 0.002:
                queue.events.remove(event)
                return at
        time.sleep(0.01)
    raise TimeoutError(f"no {kind} in {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--notify-text", action="store_true",
                        help="messageNew events carry the decoded text and all headers (notifyText, notifyHeaders)")
    arguments = parser.parse_args()
    samples = arguments.samples
    pki = make_test_pki(Path(tempfile.mkdtemp(prefix="bench-pki-")))
    import os

    os.environ["SSL_CERT_FILE"] = str(pki.ca_file)
    with AwsStack(), Dovecot(pki) as dovecot, Postfix(dovecot, pki) as postfix:
        from watcher_stack import register_accounts

        user = MailUser(f"lat-{secrets.token_hex(4)}@example.test", secrets.token_urlsafe(12))
        sender = MailUser(f"snd-{secrets.token_hex(4)}@example.test", secrets.token_urlsafe(12))
        for u in (user, sender):
            dovecot.add_user(u.email, u.password)
        actor = IMAPClient(dovecot.hostname, port=dovecot.imap_port, ssl=False)
        actor.starttls(ssl.create_default_context())
        actor.login(user.email, user.password)
        actor.create_folder("Work")
        register_accounts(dovecot, {"bench-latency": (user.email, user.password)})
        if arguments.notify_text:
            from chalicelib.store import settings as settings_store

            settings_store.put_values({"notifyText": True, "notifyHeaders": ["*"]})
        queue = TimedQueue()
        watcher = WatcherProcess(queue, "bench-", "bench", extra_env=WATCHER_ENVIRONMENT, fast=False)
        try:
            queue.wait_for(lambda ev: any(e.event == "accountInitialized" for e in ev), timeout=30)
            inbox_floor, work_floor = FloorClient(dovecot, user, "INBOX"), FloorClient(dovecot, user, "Work")
            time.sleep(1.0)
            results: dict[str, tuple[list[float], list[float]]] = {}

            def measure(name: str, action, kind: str, path: str, floor: FloorClient) -> None:
                ours, base = results.setdefault(name, ([], []))
                for _ in range(samples):
                    started = time.time()
                    action()
                    pushed = floor.first_push_after(started)
                    if pushed is None:
                        raise TimeoutError("the bare IDLE client saw nothing")
                    base.append((pushed - started) * 1000)
                    ours.append((wait_event(queue, started, kind, path) - started) * 1000)
                    time.sleep(0.6)  # let Dovecot's notification batch window close

            counter = iter(range(10**6))
            measure("INBOX delivery (SMTP)", lambda: send_mail(postfix, sender, user.email, f"m{next(counter)}"),
                    "messageNew", "INBOX", inbox_floor)
            actor.select_folder("INBOX")
            uids = iter(sorted(actor.search("ALL")))
            measure("INBOX flag change", lambda: actor.add_flags([next(uids)], [b"\\Flagged"]),
                    "messageUpdated", "INBOX", inbox_floor)
            victims = iter(sorted(actor.search("ALL")))

            def expunge() -> None:
                actor.delete_messages([next(victims)])
                actor.expunge()

            measure("INBOX expunge", expunge, "messageDeleted", "INBOX", inbox_floor)
            measure("Work append (non-INBOX)", lambda: actor.append("Work", b"Subject: w\r\n\r\nx\r\n"),
                    "messageNew", "Work", work_floor)
            inbox_floor.close()
            work_floor.close()
        finally:
            watcher.stop()
            queue.delete()

    print(f"\nchange latency, {samples} samples each (ms; floor = bare imapclient IDLE on the same Dovecot)"
          + ("; messageNew with text and headers" if arguments.notify_text else ""))
    print(f"{'action':<26} {'ours p50':>9} {'p95':>7} {'max':>7} | {'floor p50':>9} {'p95':>7} {'max':>7} |"
          f" {'p50-floor':>9} {'p95-floor':>9} {'ratio p50':>9}")
    for name, (ours, base) in results.items():
        o50, o95, omax = summary(ours)
        b50, b95, bmax = summary(base)
        print(f"{name:<26} {o50:>9.0f} {o95:>7.0f} {omax:>7.0f} | {b50:>9.0f} {b95:>7.0f} {bmax:>7.0f} |"
              f" {o50 - b50:>+9.0f} {o95 - b95:>+9.0f} {o50 / b50:>9.2f}")
    print("goals: INBOX p50 <= floor + 100 ms, p95 <= floor + 300 ms; other folders p95 <= 2000 ms")


if __name__ == "__main__":
    main()
