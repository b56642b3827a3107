"""The watcher against every IMAP server family: every event type from a real action.

One watcher process (a subprocess, as in production) watches the accounts these tests
register; events land on a queue of the test's own. The same scenario runs on Dovecot
(pushes through IDLE and NOTIFY), Cyrus with idled (pushes through IDLE, no NOTIFY), Cyrus
without idled (IDLE polls every 60 s, as Debian ships it) and Courier (IDLE polls every 60 s,
no MOVE/CONDSTORE/SPECIAL-USE, SELECT without [UIDNEXT]). Folders are named the way each
family names them ("Projects" or "INBOX.Projects").

Every wait is bounded by ``CHANGE_SECONDS``: on a server that does not push, a change must
still arrive within the watcher's sweep period (10 s in production, 1 s here) plus
slack, never on the server's own 60 s poll, so a watcher that relies on IDLE alone fails
here in seconds, not minutes.
"""

from __future__ import annotations

import pytest

from tests.integration.watcher_support import deliver_mail, imap_client, register_account, running_watcher

pytestmark = pytest.mark.imap_families()
# The first wait includes the watcher's start and the account's first sync.
START_SECONDS = 12.0
CHANGE_SECONDS = 6.0


def initialized(account: str):
    return lambda events: any(e.account == account and e.event == "accountInitialized" for e in events)


def move(client, uid: int, destination: str, family) -> None:
    """MOVE where the server has it; Courier has not, so a client copies, flags and expunges."""
    if family.move:
        client.move([uid], destination)
    else:
        client.copy([uid], destination)
        client.delete_messages([uid])
        client.expunge([uid])  # UID EXPUNGE (UIDPLUS): only this message


@pytest.mark.timeout(90)
def test_every_message_and_mailbox_event_from_real_actions(api, imap_family, mail_server, make_mail_user, events,
                                                           prefix):
    # Given: an account with existing mail and folders, registered before the watcher starts
    user, sender = make_mail_user(), make_mail_user()
    projects, receipts = imap_family.folder("Projects"), imap_family.folder("Receipts")
    deliver_mail(mail_server, sender, user.email, "old message")
    client = imap_client(mail_server, user)
    client.create_folder(projects)
    client.append(projects, b"Subject: old in projects\r\n\r\nx\r\n")
    account = prefix + "events"
    register_account(api, mail_server, user, account)

    with running_watcher(events, prefix, prefix + "ns") as watcher:
        # Then: the existing mail is a baseline: success + initialized, no messageNew/mailboxNew
        events.wait_for(initialized(account), timeout=START_SECONDS, what="accountInitialized\n" + watcher.log_text())
        assert [e.event for e in events.of(account)] == ["authenticationSuccess", "accountInitialized"]

        # When: mail arrives in INBOX, with an attachment
        deliver_mail(mail_server, sender, user.email, "fresh news", attachment=b"%PDF-1.4 test")
        events.wait_for(lambda ev: len(events.of(account, "messageNew")) == 1, timeout=CHANGE_SECONDS,
                        what="messageNew in INBOX")
        message = events.of(account, "messageNew")[0]
        # Then: the event carries the listing fields
        assert message.path == "INBOX" and message.specialUse == "\\Inbox"
        assert message.data["subject"] == "fresh news"
        assert message.data["from"] == {"name": "Sender", "address": sender.email}
        assert message.data["to"] == [{"address": user.email}]
        assert message.data["unseen"] is True and message.data["flags"] == []
        assert message.data["size"] > 0 and message.data["messageId"].endswith("@example.test>")
        assert [a["filename"] for a in message.data["attachments"]] == ["report.pdf"]
        assert message.data["text"]["encodedSize"]["plain"] > 0
        uid = message.data["uid"]

        # When: a second client flags it; Then: exactly the added flags
        client.select_folder("INBOX")
        client.add_flags([uid], [b"\\Seen", b"$Important"])
        events.wait_for(lambda ev: events.of(account, "messageUpdated"), timeout=CHANGE_SECONDS,
                        what="messageUpdated")
        update = events.of(account, "messageUpdated")[0]
        assert update.data["changes"]["flags"]["added"] == ["$Important", "\\Seen"]
        assert update.data["changes"]["flags"]["deleted"] == []
        client.remove_flags([uid], [b"$Important"])
        events.wait_for(lambda ev: len(events.of(account, "messageUpdated")) == 2, timeout=CHANGE_SECONDS,
                        what="second update")
        assert events.of(account, "messageUpdated")[1].data["changes"]["flags"] == {
            "added": [], "deleted": ["$Important"], "value": ["\\Seen"]}

        # When: a folder is created; Then: mailboxNew
        client.create_folder(receipts)
        events.wait_for(lambda ev: events.of(account, "mailboxNew"), timeout=CHANGE_SECONDS, what="mailboxNew")
        assert events.of(account, "mailboxNew")[0].data == {"path": receipts, "name": "Receipts"}

        # When: the message is moved to it; Then: deleted in INBOX, new in Receipts
        move(client, uid, receipts, imap_family)
        events.wait_for(lambda ev: events.of(account, "messageDeleted")
                        and len(events.of(account, "messageNew")) == 2, timeout=CHANGE_SECONDS, what="move")
        deleted = events.of(account, "messageDeleted")[0]
        assert (deleted.path, deleted.data["uid"]) == ("INBOX", uid)
        moved = events.of(account, "messageNew")[1]
        assert moved.path == receipts and moved.data["subject"] == "fresh news"
        assert moved.data["flags"] == ["\\Seen"]

        # When: changes in a non-INBOX folder (flag, expunge); Then: events for that folder
        client.select_folder(projects)
        client.add_flags([1], [b"\\Flagged"])
        events.wait_for(lambda ev: any(e.path == projects for e in events.of(account, "messageUpdated")),
                        timeout=CHANGE_SECONDS, what="update in Projects")
        client.delete_messages([1])
        client.expunge()
        events.wait_for(lambda ev: any(e.path == projects for e in events.of(account, "messageDeleted")),
                        timeout=CHANGE_SECONDS, what="expunge in Projects")

        # When: a folder is deleted; Then: mailboxDeleted
        client.unselect_folder()
        client.delete_folder(projects)
        events.wait_for(lambda ev: events.of(account, "mailboxDeleted"), timeout=CHANGE_SECONDS,
                        what="mailboxDeleted")
        assert events.of(account, "mailboxDeleted")[0].data == {"path": projects, "name": "Projects"}

        client.logout()

    # Then: no event was emitted twice
    ids = [e.id for e in events.of(account)]
    assert len(ids) == len(set(ids))
