"""The watcher across restarts, outages, process death and bad credentials (real servers, subprocesses).

Dovecot only: outages and process death are the watcher's and the transport's behaviour
(Dovecot's restart hook stands in for any server); test_watcher_events.py covers the families.
"""

from __future__ import annotations

import signal
import time
from collections import Counter

from chalicelib.store import checkpoints as checkpoint_store
from chalicelib.store import leases as lease_store
from chalicelib.sync.reset_guard import RESETS_ALLOWED
from tests.integration.mail_api_support import ControlledProxy
from tests.integration.watcher_support import (
    EventQueue,
    WatcherProcess,
    deliver_mail,
    imap_client,
    register_account,
    running_watcher,
    send_mail,
)
from tests.support.mailservers import Dovecot
from workers.watch.shards import shard_of

SHARDS = 8


def count_of(events: EventQueue, account: str, kind: str) -> int:
    return len(events.of(account, kind))


def subjects(events: EventQueue, account: str) -> Counter:
    return Counter(e.data.get("subject") for e in events.of(account, "messageNew"))


def test_changes_made_while_stopped_are_emitted_exactly_once_after_restart(
        api, dovecot, postfix, make_mail_user, events, prefix):
    # Given: a watched account with two messages
    user, sender = make_mail_user(), make_mail_user()
    send_mail(postfix, sender, user.email, "first")
    send_mail(postfix, sender, user.email, "second")
    account = prefix + "restart"
    register_account(api, dovecot, user, account)
    with running_watcher(events, prefix, prefix + "ns"):
        events.wait_for(lambda ev: count_of(events, account, "accountInitialized"), what="initialized")
        send_mail(postfix, sender, user.email, "while running")
        events.wait_for(lambda ev: subjects(events, account)["while running"], what="live message")
    before = len(events.of(account))

    # When: mail arrives, a flag changes and a message is expunged while no watcher runs
    send_mail(postfix, sender, user.email, "while stopped")
    client = imap_client(dovecot, user)
    client.select_folder("INBOX")
    client.add_flags([1], [b"\\Flagged"])
    client.delete_messages([2])
    client.expunge()
    # ... and a folder is re-created under the same name (a new UIDVALIDITY)
    client.unselect_folder()
    client.delete_folder("Archive")
    client.create_folder("Archive")
    client.append("Archive", b"Subject: in the new archive\r\n\r\nx\r\n")
    client.logout()

    # Then: a new watcher emits each of those changes once, and nothing from before again
    with running_watcher(events, prefix, prefix + "ns"):
        events.wait_for(lambda ev: subjects(events, account)["while stopped"]
                        and count_of(events, account, "messageUpdated") and count_of(events, account, "messageDeleted")
                        and count_of(events, account, "mailboxReset"), what="catch-up events")
        time.sleep(1.5)  # a duplicate, if any, would come from a second sync pass
        events.poll()
    after = [(e.event, e.path, e.data.get("uid")) for e in events.of(account)[before:]]
    assert sorted(after) == sorted([("messageNew", "INBOX", 4), ("messageUpdated", "INBOX", 1),
                                    ("messageDeleted", "INBOX", 2), ("mailboxReset", "Archive", None),
                                    ("messageNew", "Archive", 1)])
    reset = events.of(account, "mailboxReset")[0]
    assert reset.data["uidValidity"] != reset.data["prevUidValidity"]  # and no flood of new/deleted for Archive
    # ... only the message that arrived in the re-created Archive, right after its reset
    assert after.index(("messageNew", "Archive", 1)) == after.index(("mailboxReset", "Archive", None)) + 1
    assert subjects(events, account) == Counter({"while running": 1, "while stopped": 1, "in the new archive": 1})

    # When: the account is deleted; Then: its checkpoints go with it
    assert checkpoint_store.load_checkpoints(account).mailboxes
    assert api.delete(f"/v1/account/{account}").status in (200, 204)
    assert checkpoint_store.load_checkpoints(account).mailboxes == {}


def test_dovecot_restarted_under_the_watcher_misses_nothing(api, test_pki, make_mail_user, events, prefix,
                                                            fault_table):
    # Given: an account on a Dovecot of its own, watched
    started = time.monotonic()
    with Dovecot(test_pki) as server:
        user = make_mail_user()
        server.add_user(user.email, user.password)
        account = prefix + "outage"
        register_account(api, server, user, account)
        with running_watcher(events, prefix, prefix + "ns"):
            events.wait_for(lambda ev: count_of(events, account, "accountInitialized"), what="initialized")

            # When: a message arrives just before Dovecot goes down (inside its 0.5 s push delay)
            # and another one right after it is back, before the watcher reconnected
            server.deliver(user.email, b"Subject: before outage\r\n\r\nx\r\n")
            server.restart(while_stopped=lambda: time.sleep(1.0))
            server.deliver(user.email, b"Subject: after outage\r\n\r\nx\r\n")

            # Then: it reconnects and each message is announced exactly once
            events.wait_for(lambda ev: subjects(events, account)["before outage"]
                            and subjects(events, account)["after outage"], timeout=20, what="both messages")
            time.sleep(1.0)
            events.poll()
            # One row of the fault suite's table (tests/integration/test_fault_suite.py), counted by
            # message: each subject is one message, so a message announced twice, under any id, counts.
            fault_table.record("Dovecot restarted under the watcher", "Dovecot → watcher → SQS (by message)",
                               ["before outage", "after outage"],
                               [e.data.get("subject") for e in events.of(account, "messageNew")],
                               time.monotonic() - started)
            assert subjects(events, account) == Counter({"before outage": 1, "after outage": 1})
            assert count_of(events, account, "connectError") <= 1


def test_two_watchers_share_accounts_and_one_killed_loses_nothing(
        api, dovecot, postfix, make_mail_user, events, prefix):
    # Given: six accounts and two watcher processes that have split the shards
    sender = make_mail_user()
    users = {f"{prefix}share{n}": make_mail_user() for n in range(6)}
    for account, user in users.items():
        register_account(api, dovecot, user, account)
    namespace = prefix + "ns"
    first = WatcherProcess(events, prefix, namespace)
    second = WatcherProcess(events, prefix, namespace)
    try:
        events.wait_for(lambda ev: all(count_of(events, a, "accountInitialized") for a in users), timeout=30,
                        what="all initialized")

        def owners_by_account() -> dict[str, str]:
            owners = lease_store.shard_owners(namespace)
            return {a: owners.get(lease_store.shard_key(namespace, shard_of(a, SHARDS)), "") for a in users}

        deadline = time.monotonic() + 20
        def split() -> bool:
            owners = lease_store.shard_owners(namespace)
            return len(set(owners.values())) == 2 and len(owners) == SHARDS

        while not split():
            assert time.monotonic() < deadline, f"shards never split: {lease_store.shard_owners(namespace)}"
            time.sleep(0.2)
        # Every account is watched by exactly one of them (a probe message each, announced once)
        for account, user in users.items():
            send_mail(postfix, sender, user.email, f"probe {account}")
        events.wait_for(lambda ev: all(subjects(events, a)[f"probe {a}"] == 1 for a in users), timeout=20,
                        what="probes")

        # When: the process owning the most accounts is killed, and mail arrives for everyone
        by_owner = Counter(owners_by_account().values())
        victim_worker = by_owner.most_common(1)[0][0]
        victim = first if victim_worker.startswith(f"w-{first.process.pid}-") else second
        survivor = second if victim is first else first
        moved = [a for a, owner in owners_by_account().items() if owner == victim_worker]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        for account, user in users.items():
            send_mail(postfix, sender, user.email, f"after kill {account}")

        # Then: the survivor takes over within the lease time and every message is announced once
        started = time.monotonic()
        events.wait_for(lambda ev: all(subjects(events, a)[f"after kill {a}"] for a in users), timeout=30,
                        what="messages after kill")
        assert time.monotonic() - started < 30
        time.sleep(1.0)
        events.poll()
        assert moved and all(subjects(events, a)[f"after kill {a}"] == 1 for a in users)
        assert survivor.process.poll() is None
        assert set(lease_store.shard_owners(namespace).values()) == {
            next(w for w in lease_store.shard_owners(namespace).values())}
    finally:
        try:
            first.stop()
        finally:
            second.stop()


def test_wrong_password_gives_one_authentication_error_not_one_per_retry(api, dovecot, make_mail_user, events,
                                                                          prefix):
    # Given: a running watcher
    user = make_mail_user()
    account = prefix + "badpass"
    with running_watcher(events, prefix, prefix + "ns"):
        time.sleep(0.5)
        # When: an account with a wrong password is registered (verification skipped)
        registered = time.monotonic()
        register_account(api, dovecot, user, account, password="wrong-" + user.password, verify=False)
        # Then: it is picked up within 5 s and reported once, however often the watcher retries
        events.wait_for(lambda ev: count_of(events, account, "authenticationError"), timeout=10,
                        what="authenticationError")
        assert time.monotonic() - registered < 5
        time.sleep(3.0)  # several retries at the test's 0.2-1 s backoff
        events.poll()
        assert [e.event for e in events.of(account)] == ["authenticationError"]
        error = events.of(account)[0]
        assert error.data["serverResponseCode"] == "AuthenticationFailed"
        assert user.password not in error.to_json()
        assert api.get(f"/v1/account/{account}").json["state"] == "authenticationError"

        # When: the password is corrected; Then: one authenticationSuccess, then initialized
        assert api.put(f"/v1/account/{account}", {"imap": {"auth": {"pass": user.password}}}).status == 200
        events.wait_for(lambda ev: count_of(events, account, "accountInitialized"), timeout=10, what="recovery")
        assert [e.event for e in events.of(account)] == ["authenticationError", "authenticationSuccess",
                                                         "accountInitialized"]


def checkpoint_writes(watcher: WatcherProcess) -> list[str]:
    return [call for call in watcher.aws_calls() if "checkpoint" in call and not call.startswith(("Get", "Query"))]


def test_idle_reissued_many_times_keeps_its_connection_and_its_latency(
        api, dovecot, postfix, make_mail_user, events, prefix):
    # Given: a watched account whose IDLE is re-issued every second (production: 270 s)
    user, sender = make_mail_user(), make_mail_user()
    account = prefix + "reissue"
    register_account(api, dovecot, user, account)
    with running_watcher(events, prefix, prefix + "ns", record_aws_calls=True,
                         extra_env={"IMAPLESS_WATCHER_IDLE_REISSUE_SECONDS": "1"}) as watcher:
        events.wait_for(lambda ev: count_of(events, account, "accountInitialized"), what="initialized")
        logins = dovecot.logins(user.email)
        time.sleep(0.5)  # the initialized event is published before its checkpoints are written
        writes_before = checkpoint_writes(watcher)

        # When: six re-issues have gone by, and then mail arrives
        deadline = time.monotonic() + 15
        while watcher.log_text(limit=None).count("reissue=True") < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert watcher.log_text(limit=None).count("reissue=True") >= 6
        assert checkpoint_writes(watcher) == writes_before  # a re-issue that finds nothing writes nothing
        sent = time.monotonic()
        send_mail(postfix, sender, user.email, "after re-issues")
        events.wait_for(lambda ev: subjects(events, account)["after re-issues"], what="messageNew", timeout=5)

        # Then: it came over the same connection (no reconnect, no second login), in about a
        # second (Dovecot's push ~0.5 s), and no re-issue stalled the connection
        assert time.monotonic() - sent < 3
        assert dovecot.logins(user.email) == logins
        assert "watch interrupted" not in watcher.log_text(limit=None)


def test_a_connection_silently_dropped_on_the_way_is_replaced_and_nothing_is_missed(
        api, dovecot, make_mail_user, events, prefix):
    # Given: an account watched through a path that can forget the flow (a NAT gateway), with
    # IDLE re-issued every 2 s and a 3 s command deadline
    user = make_mail_user()
    account = prefix + "nat"
    path = ControlledProxy(dovecot.imap_port)
    try:
        register_account(api, dovecot, user, account, port=path.port)
        with running_watcher(events, prefix, prefix + "ns", extra_env={
                "IMAPLESS_WATCHER_IDLE_REISSUE_SECONDS": "2", "IMAPLESS_COMMAND_TIMEOUT_SECONDS": "3"}) as watcher:
            events.wait_for(lambda ev: count_of(events, account, "accountInitialized"), what="initialized")
            connections = path.connections

            # When: the path silently drops the connection (no FIN, no RST) and mail arrives
            path.blackhole()
            dovecot.deliver(user.email, b"Subject: while the path was dead\r\n\r\nx\r\n")

            # Then: the re-issue finds no answer within the deadline, the watcher reconnects on
            # a new path and catches the message up, once
            events.wait_for(lambda ev: subjects(events, account)["while the path was dead"], timeout=20,
                            what="messageNew after the reconnect")
            assert path.connections > connections
            assert "connection lost: TimeoutError" in watcher.log_text(limit=None)
            time.sleep(1.0)
            events.poll()
            assert subjects(events, account)["while the path was dead"] == 1
    finally:
        path.close()


def test_mail_that_arrived_across_a_uidvalidity_change_is_announced_once(api, dovecot, make_mail_user, events,
                                                                         prefix):
    # Given: a watched account whose INBOX has mail with and without a Message-ID, and one
    # message that arrived while the watcher ran
    user, sender = make_mail_user(), make_mail_user()
    deliver_mail(dovecot, sender, user.email, "known")
    dovecot.deliver(user.email, b"Subject: known without id\r\n\r\nx\r\n")
    account = prefix + "reset"
    register_account(api, dovecot, user, account)
    with running_watcher(events, prefix, prefix + "ns"):
        events.wait_for(lambda ev: count_of(events, account, "accountInitialized"), what="initialized")
        deliver_mail(dovecot, sender, user.email, "live")
        events.wait_for(lambda ev: subjects(events, account)["live"], what="live message")
    before = len(events.of(account))

    # When: mail arrives while no watcher runs (one without a Message-ID: INTERNALDATE decides,
    # in whole seconds, so it comes a second after the last sync) and the server then changes
    # the folder's UIDVALIDITY (every UID is new)
    time.sleep(1.1)
    deliver_mail(dovecot, sender, user.email, "while stopped")
    dovecot.deliver(user.email, b"Subject: while stopped without id\r\n\r\nx\r\n")
    old = int(dovecot.doveadm("-f", "flow", "mailbox", "status", "-u", user.email, "uidvalidity", "INBOX")
              .split("=")[1])
    dovecot.doveadm("mailbox", "update", "-u", user.email, "--uid-validity", str(old + 1000), "INBOX")

    # Then: a new watcher says the folder was reset, then announces exactly the mail that
    # arrived meanwhile, under the new UIDVALIDITY; the known messages stay silent
    with running_watcher(events, prefix, prefix + "ns"):
        events.wait_for(lambda ev: subjects(events, account)["while stopped"]
                        and subjects(events, account)["while stopped without id"], what="arrivals")
        time.sleep(1.5)  # a duplicate, if any, would come from a second sync pass
        events.poll()
    after = events.of(account)[before:]
    assert [(e.event, e.path) for e in after] == [("mailboxReset", "INBOX"), ("messageNew", "INBOX"),
                                                  ("messageNew", "INBOX")]
    assert after[0].data["uidValidity"] == str(old + 1000)
    assert subjects(events, account) == Counter({"live": 1, "while stopped": 1, "while stopped without id": 1})
    assert [e.data["uid"] for e in after[1:]] == [4, 5]  # Dovecot keeps the UIDs; the ids change


def test_a_uidvalidity_that_changes_every_session_ends_in_sync_error(api, dovecot, make_mail_user, events, prefix):
    # Given: a watched account
    user, sender = make_mail_user(), make_mail_user()
    deliver_mail(dovecot, sender, user.email, "known")
    account = prefix + "unstable"
    register_account(api, dovecot, user, account)
    with running_watcher(events, prefix, prefix + "ns"):
        events.wait_for(lambda ev: count_of(events, account, "accountInitialized"), what="initialized")
        old = int(dovecot.doveadm("-f", "flow", "mailbox", "status", "-u", user.email, "uidvalidity", "INBOX")
                  .split("=")[1])

        # When: the server gives INBOX a new UIDVALIDITY for every new session
        for session in range(1, RESETS_ALLOWED + 2):
            dovecot.doveadm("mailbox", "update", "-u", user.email, "--uid-validity", str(old + session), "INBOX")
            dovecot.kick(user.email)
            if session <= RESETS_ALLOWED:  # Then: the first few are resets like any other
                events.wait_for(lambda ev, n=session: count_of(events, account, "mailboxReset") == n,
                                what=f"reset {session}")

        # Then: the next one is refused: the account is in syncError with a code of its own
        events.wait_for(lambda ev: count_of(events, account, "syncError"), what="syncError")
        error = events.of(account, "syncError")[0]
        assert error.data["serverResponseCode"] == "UidValidityUnstable"
        stored = api.get(f"/v1/account/{account}").json
        assert stored["state"] == "syncError"
        assert stored["lastError"]["code"] == "UidValidityUnstable"
        time.sleep(1.5)  # retried meanwhile (backoff of at most 1 s here): still refused, silently
        events.poll()
    assert count_of(events, account, "mailboxReset") == RESETS_ALLOWED
    assert count_of(events, account, "syncError") == 1
    assert not count_of(events, account, "messageNew")
