"""The watcher on a server without CONDSTORE, QRESYNC and NOTIFY (as Office 365 is).

A Dovecot of its own announces only IMAP4rev1 basics after login, so the watcher must use
its fallbacks: a second connection sweeping the other folders with STATUS, UID-set diffs
for expunges and a flags window for flag changes. Every change must still arrive once.
"""

from __future__ import annotations

import pytest

from tests.integration.watcher_support import imap_client, register_account, running_watcher
from tests.support.mailservers import Dovecot

# Office 365's post-login list, plus MOVE (which it also supports): no CONDSTORE, QRESYNC, NOTIFY.
OFFICE365_LIKE_CAPABILITIES = "IMAP4 IMAP4rev1 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+ MOVE"


@pytest.fixture(scope="module")
def plain_dovecot(test_pki):
    with Dovecot(test_pki, capabilities=OFFICE365_LIKE_CAPABILITIES) as server:
        yield server


def test_changes_without_condstore_qresync_or_notify(api, plain_dovecot, events, prefix):
    # Given: an account on the server without the extensions, with mail in INBOX and a folder
    user_email, password = f"{prefix}plain@example.test", "fallback-password"
    plain_dovecot.add_user(user_email, password)
    user = type("User", (), {"email": user_email, "password": password})
    client = imap_client(plain_dovecot, user)
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
