"""The fault suite: one fault at a time, and every event still arrives exactly once, counted by id.

Real components throughout: Dovecot, the watcher and the webhook dispatcher as subprocesses
(``tests.integration.watcher_harness``, ``python -m local.dispatcher``), moto, and the
webhook receiver of tests/support. Each test records one row of the fault table
(tests/support/fault_table.py: sent, received, duplicates, lost by event id; written to
``fault-table.md`` in pytest's base temp directory) and asserts on that row.

    fault                                      where it is injected
    watcher SIGKILLed after publish,           the harness's --pause-after-publish holds the
      before its checkpoint commit             publishing thread right after SQS accepted a batch
    webhook receiver down for "hours"          the receiver stopped through four retry slots of a
                                               compressed schedule, then back on the same port
    AWS (moto) unreachable for 30 s            moto's listener and connections closed, then a new
                                               server on the same port (moto's state is global)
    Dovecot restarted under the watcher        test_watcher_resilience.py (records its row too)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from tests.integration.watcher_support import WatcherProcess, deliver_mail, register_account, running_watcher
from tests.support.aws import MOTO
from tests.support.dispatcher import dispatcher_process
from tests.support.fault_table import FaultTable
from tests.support.webhook_receiver import ReceivedRequest, WebhookReceiver

SETTLE_SECONDS = 2.0  # how long a duplicate, if any, gets to arrive after the last expected event
DELIVERY_TIMEOUT_SECONDS = 40.0


def body_of(request: ReceivedRequest) -> dict:
    return json.loads(request.body)


def arrived_for(receiver: WebhookReceiver, account: str, kind: str | None = None) -> list[str]:
    """The webhook ids the receiver saw for ``account`` (of ``kind``), in arrival order, repeats included."""
    return [r.webhook_id or "" for r in receiver.requests
            if body_of(r)["account"] == account and (kind is None or body_of(r)["event"] == kind)]


def subjects_for(receiver: WebhookReceiver, account: str) -> list[str]:
    return [body_of(r)["data"].get("subject", "") for r in receiver.requests
            if body_of(r)["account"] == account and body_of(r)["event"] == "messageNew"]


def published(log: Path, account: str, kind: str | None = None) -> list[str]:
    """The event ids the watcher's SQS sink accepted for ``account`` (``--publish-log``), repeats included."""
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines() if line != "paused"]
    return [parts[0] for parts in lines if parts[1] == account and (kind is None or parts[2] == kind)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def watcher_arguments(log: Path, *more: str) -> list[str]:
    return ["--publish-log", str(log), *more]


def test_watcher_killed_between_publish_and_checkpoint_delivers_every_event_once(
        api, dovecot, make_mail_user, webhooks, prefix, fault_table: FaultTable, tmp_path):
    started = time.monotonic()
    user, sender = make_mail_user(), make_mail_user()
    account = prefix + "kill"
    events_queue = SimpleNamespace(url=webhooks.queue_url)  # the watcher publishes where the dispatcher reads
    log = tmp_path / "published.log"
    with WebhookReceiver() as receiver, dispatcher_process(tmp_path / "dispatcher.log"):
        webhooks.configure(receiver.url())
        register_account(api, dovecot, user, account)

        # Given: a watcher that will stop dead right after SQS accepts its first batch of new mail
        first = WatcherProcess(events_queue, prefix, prefix + "ns",
                               extra_args=watcher_arguments(log, "--pause-after-publish", "messageNew"))
        try:
            receiver.wait_for(1, timeout=20, where=lambda r: body_of(r)["account"] == account)  # initialized
            # When: three messages arrive, the batch holding them is published, and the watcher is
            # SIGKILLed before it commits the checkpoint that covers them
            for n in range(3):
                deliver_mail(dovecot, sender, user.email, f"batch {n}")
            wait_until(lambda: "paused" in log.read_text(), 20, "the watcher to publish new mail")
        finally:
            first.kill()
        in_window = published(log, account, "messageNew")
        assert in_window
        # ... and two more arrive while no watcher runs
        for n in range(2):
            deliver_mail(dovecot, sender, user.email, f"while dead {n}")

        # Then: a new watcher (same lease namespace) publishes the uncommitted batch again, under
        # the same ids, and the receiver gets each of the five messages exactly once
        with running_watcher(events_queue, prefix, prefix + "ns", extra_args=watcher_arguments(log)):
            wait_until(lambda: len(set(published(log, account, "messageNew"))) >= 5
                       and set(published(log, account)) <= set(arrived_for(receiver, account)),
                       DELIVERY_TIMEOUT_SECONDS, "every published event at the receiver")
            time.sleep(SETTLE_SECONDS)
        republished = [i for i in in_window if published(log, account, "messageNew").count(i) > 1]
        row = fault_table.record("watcher SIGKILL between publish and checkpoint commit",
                                 "watcher → SQS → dispatcher → receiver", published(log, account),
                                 arrived_for(receiver, account), time.monotonic() - started)
    assert republished == in_window  # the fault was real: the killed batch went out twice
    assert sorted(subjects_for(receiver, account)) == ["batch 0", "batch 1", "batch 2", "while dead 0", "while dead 1"]
    assert (row.duplicates, row.lost) == (0, 0) and row.received == row.sent


# The production schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h) with one second
# standing for up to hours: an outage through its first four slots is 2 h 35 min in production.
COMPRESSED_SCHEDULE = "1,1,2,4,6,8,10,12,14"
OUTAGE_SLOTS_SECONDS = 9  # past the fourth slot (1 + 1 + 2 + 4 = 8 s after an event was queued)


def test_webhook_receiver_down_for_hours_gets_every_event_once_in_order(webhooks, fault_table: FaultTable,
                                                                          tmp_path):
    started = time.monotonic()
    accounts = [f"fault-outage-{n}-{started:.0f}" for n in range(3)]
    before = [webhooks.event(account, n=n) for n in range(2) for account in accounts]
    during = [webhooks.event(account, n=n) for n in range(2, 6) for account in accounts]
    receiver = WebhookReceiver().start()
    port = receiver.port
    try:
        with dispatcher_process(tmp_path / "dispatcher.log",
                                extra_env={"IMAPLESS_WEBHOOK_RETRY_SCHEDULE": COMPRESSED_SCHEDULE}):
            webhooks.configure(receiver.url())
            # Given: events flowing to a receiver
            webhooks.publish(*before)
            receiver.wait_for(len(before), timeout=20)

            # When: the receiver goes away (connections refused) and events keep coming, for
            # longer than the first four slots of the retry schedule
            receiver.stop()
            webhooks.publish(*during)
            time.sleep(OUTAGE_SLOTS_SECONDS)
            assert {webhooks.delivery(during[0].id).status, webhooks.delivery(during[1].id).status} == {"pending"}

            # Then: back on the same address, it gets every event once, each account's in order
            restarted = WebhookReceiver(port=port).start()
            try:
                restarted.wait_for(len(during), timeout=DELIVERY_TIMEOUT_SECONDS)
                time.sleep(SETTLE_SECONDS)
                arrivals = [r.webhook_id or "" for r in receiver.requests + restarted.requests]
                order_by_account = {account: [i for i in arrivals if i in {e.id for e in before + during
                                                                            if e.account == account}]
                                    for account in accounts}
            finally:
                restarted.stop()
    finally:
        receiver.stop()
    row = fault_table.record("webhook receiver down through 4 retry slots (2 h 35 min in production)",
                             "SQS → dispatcher → receiver", [e.id for e in before + during], arrivals,
                             time.monotonic() - started)
    assert (row.duplicates, row.lost) == (0, 0) and row.received == row.sent
    for account in accounts:
        assert order_by_account[account] == [e.id for e in before + during if e.account == account]


AWS_OUTAGE_SECONDS = 30  # 10 of the test watcher's 3 s leases: it fences (stops every account) meanwhile
API_ANSWER_SECONDS = 10  # an API request during the outage answers within this, never hangs
RECOVERY_SECONDS = 20  # from AWS back to every event at the receiver
# Accounts re-scanned only on a watchlist change or every 10 min: recovery may not wait for a periodic scan.
SLOW_ACCOUNT_SCANS = {"IMAPLESS_WATCHER_FULL_SCAN_SECONDS": "600"}


def test_aws_unreachable_for_30_seconds_answers_503_and_loses_nothing(
        api, dovecot, make_mail_user, webhooks, prefix, fault_table: FaultTable, tmp_path):
    started = time.monotonic()
    user, sender = make_mail_user(), make_mail_user()
    account = prefix + "aws"
    events_queue = SimpleNamespace(url=webhooks.queue_url)
    log = tmp_path / "published.log"
    with WebhookReceiver() as receiver, dispatcher_process(tmp_path / "dispatcher.log") as dispatcher:
        webhooks.configure(receiver.url())
        register_account(api, dovecot, user, account)
        with running_watcher(events_queue, prefix, prefix + "ns", extra_args=watcher_arguments(log),
                             extra_env=SLOW_ACCOUNT_SCANS) as watcher:
            # Given: a watched account whose events reach the receiver
            wait_until(lambda: arrived_for(receiver, account, "accountInitialized"), 20, "the account initialized")
            deliver_mail(dovecot, sender, user.email, "before")
            wait_until(lambda: "before" in subjects_for(receiver, account), 20, "the first message")

            # When: AWS is unreachable for 30 s, and mail arrives meanwhile
            with MOTO.unreachable():
                outage_started = time.monotonic()
                deliver_mail(dovecot, sender, user.email, "during 1")
                asked = time.monotonic()
                answer = api.get(f"/v1/account/{account}")
                answered_in = time.monotonic() - asked
                deliver_mail(dovecot, sender, user.email, "during 2")
                time.sleep(max(0.0, AWS_OUTAGE_SECONDS - (time.monotonic() - outage_started)))

            # Then: the API said 503 with a stable code, quickly ...
            assert (answer.status, answer.json["code"]) == (503, "ServiceUnavailable"), answer.body
            assert answered_in < API_ANSWER_SECONDS
            # ... and once AWS is back, the watcher and the dispatcher carry on by themselves, soon:
            # every event the watcher published reaches the receiver exactly once
            deliver_mail(dovecot, sender, user.email, "after")
            wait_until(lambda: sorted(subjects_for(receiver, account)) == ["after", "before", "during 1", "during 2"]
                       and set(published(log, account)) <= set(arrived_for(receiver, account)),
                       RECOVERY_SECONDS, "every message at the receiver")
            time.sleep(SETTLE_SECONDS)
            assert watcher.process.poll() is None and dispatcher.poll() is None
        row = fault_table.record(f"AWS (moto) unreachable for {AWS_OUTAGE_SECONDS} s",
                                 "watcher → SQS → dispatcher → receiver", published(log, account),
                                 arrived_for(receiver, account), time.monotonic() - started)
    assert (row.duplicates, row.lost) == (0, 0) and row.received == row.sent
    assert api.get(f"/v1/account/{account}").status == 200
