"""The watcher against real Dovecot + Postfix: every event type from a real action.

One watcher process (a subprocess, as in production) watches the accounts these tests
register; events land on a queue of the test's own.
"""

from __future__ import annotations

from tests.integration.watcher_support import (
    imap_client,
    register_account,
    running_watcher,
    send_mail,
)


def initialized(account: str):
    return lambda events: any(e.account == account and e.event == "accountInitialized" for e in events)


def test_every_message_and_mailbox_event_from_real_actions(api, dovecot, postfix, make_mail_user, events, prefix):
    # Given: an account with existing mail and folders, registered before the watcher starts
    user, sender = make_mail_user(), make_mail_user()
    send_mail(postfix, sender, user.email, "old message")
    client = imap_client(dovecot, user)
    client.create_folder("Projects")
    client.append("Projects", b"Subject: old in projects\r\n\r\nx\r\n")
    account = prefix + "events"
    register_account(api, dovecot, user, account)

    with running_watcher(events, prefix, prefix + "ns") as watcher:
        # Then: the existing mail is a baseline: success + initialized, no messageNew/mailboxNew
        events.wait_for(initialized(account), what="accountInitialized\n" + watcher.log_text())
        assert [e.event for e in events.of(account)] == ["authenticationSuccess", "accountInitialized"]

        # When: mail arrives over SMTP, with an attachment
        send_mail(postfix, sender, user.email, "fresh news", attachment=b"%PDF-1.4 test")
        events.wait_for(lambda ev: len(events.of(account, "messageNew")) == 1, what="messageNew")
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
        events.wait_for(lambda ev: events.of(account, "messageUpdated"), what="messageUpdated")
        update = events.of(account, "messageUpdated")[0]
        assert update.data["changes"]["flags"]["added"] == ["$Important", "\\Seen"]
        assert update.data["changes"]["flags"]["deleted"] == []
        client.remove_flags([uid], [b"$Important"])
        events.wait_for(lambda ev: len(events.of(account, "messageUpdated")) == 2, what="second update")
        assert events.of(account, "messageUpdated")[1].data["changes"]["flags"] == {
            "added": [], "deleted": ["$Important"], "value": ["\\Seen"]}

        # When: a folder is created; Then: mailboxNew
        client.create_folder("Receipts")
        events.wait_for(lambda ev: events.of(account, "mailboxNew"), what="mailboxNew")
        assert events.of(account, "mailboxNew")[0].data == {"path": "Receipts", "name": "Receipts"}

        # When: the message is moved to it; Then: deleted in INBOX, new in Receipts
        client.move([uid], "Receipts")
        events.wait_for(lambda ev: events.of(account, "messageDeleted")
                        and len(events.of(account, "messageNew")) == 2, what="move")
        deleted = events.of(account, "messageDeleted")[0]
        assert (deleted.path, deleted.data["uid"]) == ("INBOX", uid)
        moved = events.of(account, "messageNew")[1]
        assert moved.path == "Receipts" and moved.data["subject"] == "fresh news"
        assert moved.data["flags"] == ["\\Seen"]

        # When: changes in a non-INBOX folder (flag, expunge); Then: events for that folder
        client.select_folder("Projects")
        client.add_flags([1], [b"\\Flagged"])
        events.wait_for(lambda ev: any(e.path == "Projects" for e in events.of(account, "messageUpdated")),
                        what="update in Projects")
        client.delete_messages([1])
        client.expunge()
        events.wait_for(lambda ev: any(e.path == "Projects" for e in events.of(account, "messageDeleted")),
                        what="expunge in Projects")

        # When: a folder is deleted; Then: mailboxDeleted
        client.unselect_folder()
        client.delete_folder("Projects")
        events.wait_for(lambda ev: events.of(account, "mailboxDeleted"), what="mailboxDeleted")
        assert events.of(account, "mailboxDeleted")[0].data == {"path": "Projects", "name": "Projects"}

        client.logout()

    # Then: no event was emitted twice
    ids = [e.id for e in events.of(account)]
    assert len(ids) == len(set(ids))
