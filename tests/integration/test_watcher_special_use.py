"""Folder roles on a server without SPECIAL-USE: the mail API and the watcher agree.

A Dovecot of its own announces no SPECIAL-USE and flags no folder, as many hosted servers
do; a folder the user named "Sent" is still Sent. ``GET /mailboxes`` and every event in
that folder must say ``\\Sent`` alike (one resolver: LIST flags, XLIST, localized names).
"""

from __future__ import annotations

import pytest

from tests.integration.watcher_support import (
    office365_like_dovecot,
    register_account,
    running_watcher,
    user_with_client,
)


@pytest.fixture(scope="module")
def unflagged_dovecot(test_pki):
    yield from office365_like_dovecot(test_pki, special_use={})


def test_message_new_in_a_folder_named_sent_carries_the_role_the_api_lists(api, unflagged_dovecot, events, prefix):
    # Given: an account on a server without SPECIAL-USE, with a folder named "Sent"
    user, client = user_with_client(unflagged_dovecot, f"{prefix}roles@example.test", "roles-password")
    assert b"SPECIAL-USE" not in client.capabilities()
    client.create_folder("Sent")
    assert all(b"\\Sent" not in flags for flags, _, _ in client.list_folders())
    account = prefix + "roles"
    register_account(api, unflagged_dovecot, user, account)

    # Then: the mail API names it Sent, by its name
    listed = {m["path"]: m for m in api.get(f"/v1/account/{account}/mailboxes").json["mailboxes"]}
    assert (listed["Sent"]["specialUse"], listed["Sent"]["specialUseSource"]) == ("\\Sent", "name")

    with running_watcher(events, prefix, prefix + "ns"):
        events.wait_for(lambda ev: events.of(account, "accountInitialized"), what="accountInitialized")

        # When: a message lands in Sent (a mail client saving what it sent)
        client.append("Sent", b"Subject: sent by me\r\n\r\nx\r\n", flags=[b"\\Seen"])

        # Then: its messageNew carries the same role
        events.wait_for(lambda ev: events.of(account, "messageNew"), what="messageNew in Sent")
        [new] = events.of(account, "messageNew")
        assert (new.path, new.data["subject"], new.specialUse) == ("Sent", "sent by me", "\\Sent")
    client.logout()
