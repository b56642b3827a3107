"""Mailbox roles from LIST flags, XLIST flags and localized names."""

from __future__ import annotations

import pytest

from chalicelib.imap.special_use import ListedMailbox, SpecialUse, assign_special_uses, role_from_name


def mailbox(path: str, *flags: str, delimiter: str = "/") -> ListedMailbox:
    return ListedMailbox(path, delimiter, flags=tuple(flags))


@pytest.mark.parametrize(("path", "delimiter", "role"), [
    ("Sent Items", "/", "\\Sent"),
    ("Gesendete Elemente", "/", "\\Sent"),
    ("Éléments envoyés", "/", "\\Sent"),
    ("Deleted Items", "/", "\\Trash"),
    ("Papierkorb", ".", "\\Trash"),
    ("INBOX.Trash", ".", "\\Trash"),
    ("[Gmail]/All Mail", "/", "\\All"),
    ("[Google Mail]/Starred", "/", "\\Flagged"),
    ("[Gmail]/Bin", "/", "\\Trash"),
    ("Junk-E-Mail", "/", "\\Junk"),
    ("Черновики", "/", "\\Drafts"),
    ("送信済みアイテム", "/", "\\Sent"),
    ("Projects/Sent", "/", None),
    ("All Mail", "/", None),
    ("Kunden.Archiv.2024", ".", None),
])
def test_role_from_name(path, delimiter, role):
    assert role_from_name(path, delimiter) == role


def test_server_flags_win_and_names_fill_the_gaps_once():
    roles = assign_special_uses([
        mailbox("INBOX"),
        mailbox("Sent", "\\HasNoChildren", "\\Sent"),
        mailbox("Sent Items"),             # a second "Sent": the server already named one
        mailbox("Deleted Items"),          # no Trash flag anywhere: the name decides
        mailbox("INBOX/Trash"),            # a longer path loses to the top-level name
        mailbox("Archive", "\\Noselect"),  # a hierarchy level cannot hold mail
    ])
    assert roles == {
        "INBOX": SpecialUse("\\Inbox", "name"),
        "Sent": SpecialUse("\\Sent", "extension"),
        "Deleted Items": SpecialUse("\\Trash", "name"),
    }


def test_xlist_flags_map_to_rfc_6154_roles():
    roles = assign_special_uses([mailbox("[Gmail]/All Mail", "\\AllMail"), mailbox("[Gmail]/Spam", "\\Spam"),
                                 mailbox("Inbox", "\\Inbox")], xlist=True)
    assert roles["[Gmail]/All Mail"] == SpecialUse("\\All", "xlist")
    assert roles["[Gmail]/Spam"] == SpecialUse("\\Junk", "xlist")
    assert roles["Inbox"] == SpecialUse("\\Inbox", "name")
