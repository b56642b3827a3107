"""The watcher on a server without CONDSTORE, QRESYNC and NOTIFY (as Office 365 is).

A Dovecot of its own announces only IMAP4rev1 basics after login, so the watcher must use
its fallbacks: a second connection sweeping the other folders with STATUS, UID-set diffs
for expunges and a flags window for flag changes. Every change must still arrive once.

Dovecot only, on purpose: a Dovecot that hides CONDSTORE/QRESYNC/NOTIFY isolates the fallbacks;
Cyrus and Courier exercise them for real in test_watcher_events.py.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.watcher_support import (
    office365_like_dovecot,
    register_account,
    running_watcher,
    user_with_client,
)


@pytest.fixture(scope="module")
def plain_dovecot(test_pki):
    yield from office365_like_dovecot(test_pki)


def test_changes_without_condstore_qresync_or_notify(api, plain_dovecot, events, prefix):
    # Given: an account on the server without the extensions, with mail in INBOX and a folder
    user, client = user_with_client(plain_dovecot, f"{prefix}plain@example.test", "fallback-password")
    assert b"CONDSTORE" not in client.capabilities() and b"NOTIFY" not in client.capabilities()
    client.create_folder("Archive")
    client.append("INBOX", b"Subject: kept\r\n\r\nx\r\n")
    client.append("INBOX", b"Subject: to delete\r\n\r\nx\r\n")
    account = prefix + "plain"
    register_account(api, plain_dovecot, user, account)

    with running_watcher(events, prefix, prefix + "ns") as watcher:
        events.wait_for(lambda ev: events.of(account, "accountInitialized"), what="accountInitialized")
        assert events.of(account, "messageNew") == []

        # When: mail is appended to a folder other than INBOX; Then: the STATUS sweep finds it
        client.append("Archive", b"Subject: archived\r\n\r\nx\r\n")
        events.wait_for(lambda ev: events.of(account, "messageNew"), what="messageNew in Archive")
        new = events.of(account, "messageNew")
        assert [(e.path, e.data["subject"]) for e in new] == [("Archive", "archived")]

        # When: a flag changes in INBOX; Then: exactly that change, found without CHANGEDSINCE
        client.select_folder("INBOX")
        client.add_flags([1], [b"\\Flagged"])
        events.wait_for(lambda ev: events.of(account, "messageUpdated"), what="messageUpdated")
        update = events.of(account, "messageUpdated")[0]
        assert (update.path, update.data["uid"]) == ("INBOX", 1)
        assert update.data["changes"]["flags"]["added"] == ["\\Flagged"]

        # When: a message is expunged; Then: messageDeleted by UID-set diff
        client.delete_messages([2])
        client.expunge()
        events.wait_for(lambda ev: events.of(account, "messageDeleted"), what="messageDeleted")
        assert [(e.path, e.data["uid"]) for e in events.of(account, "messageDeleted")] == [("INBOX", 2)]

        # And: the other folders were watched by the sweep, and nothing came twice
        assert "sweep=True" in watcher.log_text()
        events.wait_for(lambda ev: True, timeout=0)
        ids = [e.id for e in events.of(account)]
        assert len(ids) == len(set(ids))
    client.logout()


def sweeps(watcher) -> list[dict]:
    """The watcher's "swept" log lines: which folders each STATUS sweep synced, and whether
    it was a flags re-check."""
    lines = [json.loads(line) for line in watcher.log_text(limit=None).splitlines() if '"swept"' in line]
    return [{"synced": line["synced"], "recheck": line["flags_recheck"]} for line in lines]


def wait_for_sweep(watcher, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    seen = len(sweeps(watcher))
    while time.monotonic() < deadline:
        fresh = sweeps(watcher)[seen:]
        if any(condition(sweep) for sweep in fresh):
            return
        time.sleep(0.05)
    raise AssertionError(f"no such sweep within {timeout} s: {sweeps(watcher)}")


def first_sync_of(watcher, path: str, after: int, timeout: float = 5.0) -> dict:
    """The first sweep after the ``after``-th that synced ``path`` (its line is written when the
    whole sweep is done, after the events it published)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [sweep for sweep in sweeps(watcher)[after:] if path in sweep["synced"]]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no sweep synced {path} within {timeout} s: {sweeps(watcher)}")
        time.sleep(0.05)


def test_without_condstore_a_sweep_syncs_only_folders_that_moved(api, plain_dovecot, events, prefix):
    # Given: an account with two messages in Archive, and a flags re-check every 3 s
    user, client = user_with_client(plain_dovecot, f"{prefix}sweep@example.test", "fallback-password")
    client.create_folder("Archive")
    client.append("Archive", b"Subject: one\r\n\r\nx\r\n")
    client.append("Archive", b"Subject: two\r\n\r\nx\r\n")
    account = prefix + "sweep"
    register_account(api, plain_dovecot, user, account)
    with running_watcher(events, prefix, prefix + "ns",
                         extra_env={"IMAPLESS_WATCHER_FLAGS_RECHECK_SECONDS": "3"}) as watcher:
        events.wait_for(lambda ev: events.of(account, "accountInitialized"), what="accountInitialized")
        time.sleep(6.0)  # sweeps every 1 s (test timing), some of them re-checks

        # Then: sweeps between re-checks sync nothing when nothing moved
        quiet = [s for s in sweeps(watcher)[1:] if not s["recheck"]]
        assert len(quiet) >= 2 and all(s["synced"] == [] for s in quiet), sweeps(watcher)
        assert any(s["recheck"] and "Archive" in s["synced"] for s in sweeps(watcher)[1:])

        # When: a message in Archive is read just after a re-check; Then: the next sweep (not a
        # re-check) sees UNSEEN move and syncs the folder
        wait_for_sweep(watcher, lambda sweep: sweep["recheck"])
        client.select_folder("Archive")
        before = len(sweeps(watcher))
        client.add_flags([1], [b"\\Seen"])
        events.wait_for(lambda ev: events.of(account, "messageUpdated"), what="messageUpdated (\\Seen)")
        [read] = events.of(account, "messageUpdated")
        assert (read.path, read.data["uid"], read.data["changes"]["flags"]["added"]) == ("Archive", 1, ["\\Seen"])
        assert not first_sync_of(watcher, "Archive", before)["recheck"]

        # When: a message is flagged (STATUS cannot show it); Then: a re-check finds it
        before = len(sweeps(watcher))
        client.add_flags([2], [b"\\Flagged"])
        events.wait_for(lambda ev: len(events.of(account, "messageUpdated")) == 2, timeout=10,
                        what="messageUpdated (\\Flagged)")
        flagged = events.of(account, "messageUpdated")[1]
        assert (flagged.data["uid"], flagged.data["changes"]["flags"]["added"]) == (2, ["\\Flagged"])
        assert first_sync_of(watcher, "Archive", before)["recheck"]
    client.logout()
