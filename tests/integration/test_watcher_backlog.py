"""A large backlog after an outage is caught up in bounded passes (real Dovecot, watcher subprocess).

Dovecot only: catching up is the watcher's own paging, the same on every server family
(tests/integration/test_watcher_events.py runs the event scenario on each family).
"""

from __future__ import annotations

import time
from collections import Counter

from chalicelib.store import checkpoints as checkpoint_store
from tests.integration.watcher_support import imap_client, register_account, running_watcher

CATCHUP_BATCH = 25
INBOX_BACKLOG, BULK_BACKLOG = 120, 30


def raw_message(subject: str) -> bytes:
    return f"Subject: {subject}\r\nFrom: a@example.test\r\n\r\nbody of {subject}\r\n".encode()


def message_uids(events, account: str, path: str, kind: str = "messageNew") -> list[int]:
    return [e.data["uid"] for e in events.of(account, kind) if e.path == path]


def test_a_backlog_is_emitted_once_in_uid_order_through_bounded_passes(api, dovecot, make_mail_user, events, prefix):
    # Given: a watched account with two old messages in INBOX and a folder "Bulk", baselined
    user = make_mail_user()
    client = imap_client(dovecot, user)
    client.create_folder("Bulk")
    client.multiappend("INBOX", [raw_message("old 1"), raw_message("old 2")])
    client.append("Bulk", raw_message("old bulk"))
    account = prefix + "backlog"
    register_account(api, dovecot, user, account)
    with running_watcher(events, prefix, prefix + "ns"):
        events.wait_for(lambda ev: events.of(account, "accountInitialized"), what="initialized")

    # When: while no watcher runs, 120 + 30 messages arrive, an old message is flagged and
    # another expunged, and one backlog message is flagged and one expunged before anyone saw them
    client.multiappend("INBOX", [raw_message(f"inbox {n}") for n in range(INBOX_BACKLOG)])
    client.multiappend("Bulk", [raw_message(f"bulk {n}") for n in range(BULK_BACKLOG)])
    client.select_folder("INBOX")
    client.add_flags([1, 50], [b"\\Flagged"])
    client.delete_messages([2, 60])
    client.expunge()
    inbox_uids = sorted(client.search("ALL"))
    client.unselect_folder()
    statuses = {path: client.folder_status(path, [b"UIDNEXT", b"HIGHESTMODSEQ"]) for path in ("INBOX", "Bulk")}
    client.logout()
    expected = {"INBOX": [uid for uid in inbox_uids if uid >= 3], "Bulk": list(range(2, 2 + BULK_BACKLOG))}

    # ... and a watcher restarts with passes of at most 25 new messages
    with running_watcher(events, prefix, prefix + "ns",
                         extra_env={"IMAPLESS_WATCHER_CATCHUP_BATCH": str(CATCHUP_BATCH)}) as watcher:
        total = len(expected["INBOX"]) + len(expected["Bulk"])
        events.wait_for(lambda ev: len(events.of(account, "messageNew")) >= total, timeout=60, what="backlog")
        time.sleep(1.0)  # a duplicate, if any, would come from a repeated pass
        events.poll()
        log = watcher.log.read_text(errors="replace")

    # Then: every backlog message is announced once, in UID order per folder
    assert message_uids(events, account, "INBOX") == expected["INBOX"]
    assert message_uids(events, account, "Bulk") == expected["Bulk"]
    subjects = Counter(e.data["subject"] for e in events.of(account, "messageNew"))
    assert set(subjects.values()) == {1} and "inbox 57" not in subjects  # UID 60 was expunged unseen
    flagged = next(e for e in events.of(account, "messageNew") if e.path == "INBOX" and e.data["uid"] == 50)
    assert flagged.data["flags"] == ["\\Flagged"]
    # ... the old message's flag change and expunge are reported once each
    assert message_uids(events, account, "INBOX", "messageUpdated") == [1]
    assert message_uids(events, account, "INBOX", "messageDeleted") == [2]
    # ... the work was done in bounded passes (118 new in INBOX: 4 partial + 1; 30 in Bulk: 1 + 1)
    assert log.count("partial sync pass") >= 5
    # ... and the stored checkpoints are complete
    stored = checkpoint_store.load_checkpoints(account).mailboxes
    for path, status in statuses.items():
        assert stored[path].uidnext == status[b"UIDNEXT"]
        assert stored[path].highestmodseq == status[b"HIGHESTMODSEQ"]
    assert list(stored["INBOX"].uids) == [1, *expected["INBOX"]]
    assert list(stored["Bulk"].uids) == [1, *expected["Bulk"]]


def test_a_folder_that_appears_with_a_backlog_is_announced_then_listed_in_passes(
        api, dovecot, make_mail_user, events, prefix):
    # Given: a watched, initialized account
    user = make_mail_user()
    account = prefix + "newfolder"
    register_account(api, dovecot, user, account)
    with running_watcher(events, prefix, prefix + "ns"):
        events.wait_for(lambda ev: events.of(account, "accountInitialized"), what="initialized")

    # When: while no watcher runs, a folder is created with 60 messages (a bulk import)
    client = imap_client(dovecot, user)
    client.create_folder("Imported")
    client.multiappend("Imported", [raw_message(f"imported {n}") for n in range(60)])
    status = client.folder_status("Imported", [b"UIDNEXT", b"HIGHESTMODSEQ"])
    client.logout()

    # ... and a watcher restarts with passes of at most 25 new messages
    with running_watcher(events, prefix, prefix + "ns",
                         extra_env={"IMAPLESS_WATCHER_CATCHUP_BATCH": str(CATCHUP_BATCH)}) as watcher:
        events.wait_for(lambda ev: len(message_uids(events, account, "Imported")) >= 60, timeout=60,
                        what="the imported folder's messages")
        time.sleep(1.0)  # a duplicate, if any, would come from a repeated pass
        events.poll()
        log = watcher.log.read_text(errors="replace")

    # Then: the folder is announced once, before its messages, and each message once in UID order
    new_folders = [e for e in events.of(account, "mailboxNew") if e.path == "Imported"]
    assert len(new_folders) == 1
    order = [e.event for e in events.of(account) if e.path == "Imported"]
    assert order[0] == "mailboxNew"
    assert message_uids(events, account, "Imported") == list(range(1, 61))
    # ... in bounded passes (60 new: the announcing snapshot lists 25, then 25 + 10)
    assert log.count("partial sync pass") >= 1
    # ... and the stored checkpoint is complete
    stored = checkpoint_store.load_checkpoints(account).mailboxes["Imported"]
    assert stored.uidnext == status[b"UIDNEXT"] and stored.highestmodseq == status[b"HIGHESTMODSEQ"]
    assert list(stored.uids) == list(range(1, 61))
