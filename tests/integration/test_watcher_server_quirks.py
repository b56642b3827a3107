"""The watcher on servers whose answers differ from Dovecot's in ways the RFCs allow.

A Dovecot without TLS, announcing no NOTIFY/CONDSTORE/QRESYNC (the capabilities of the
servers these quirks come from), is reached through a proxy that rewrites its answers
(:mod:`tests.support.imap_filter_proxy`):

- EXAMINE without ``[UIDNEXT]`` (Courier-IMAP 5.0);
- an IDLE that reports nothing for a long time (Cyrus without idled, the Debian default, and
  Courier without enhanced IDLE only poll every 60 s);
- a FETCH that returns nothing for a UID that ``UID SEARCH`` lists (Exchange, for mail that
  just arrived);
- a HIGHESTMODSEQ that goes down with the same UIDVALIDITY (Dovecot after an index rebuild;
  that test's Dovecot keeps CONDSTORE and QRESYNC).

Either way every change must become an event, INBOX changes within a few STATUS sweeps.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from tests.integration.watcher_support import running_watcher
from tests.support.dovecot import OFFICE365_LIKE_CAPABILITIES
from tests.support.imap_filter_proxy import ImapFilterProxy
from tests.support.mailservers import Dovecot

# Long enough that the IDLE re-issue (with its INBOX sync) cannot be what finds a change.
NO_REISSUE = {"IMAPLESS_WATCHER_IDLE_REISSUE_SECONDS": "120"}


@pytest.fixture(scope="module")
def legacy_dovecot(test_pki) -> Iterator[Dovecot]:
    with Dovecot(test_pki, tls=False, capabilities=OFFICE365_LIKE_CAPABILITIES) as server:
        yield server


@pytest.fixture(scope="module")
def condstore_dovecot(test_pki) -> Iterator[Dovecot]:
    with Dovecot(test_pki, tls=False) as server:
        yield server


def plain_client(server: Dovecot, email: str, password: str) -> IMAPClient:
    client = IMAPClient(server.hostname, port=server.imap_port, ssl=False, timeout=10)
    client.login(email, password)
    return client


def register_through(api, server: Dovecot, proxy: ImapFilterProxy, account: str, email: str, password: str) -> None:
    body = {"account": account, "email": email, "name": "Quirky",
            "imap": {"host": server.hostname, "port": proxy.port, "secure": False,
                     "auth": {"user": email, "pass": password}, "tls": {"allowPlaintextAuth": True}},
            "verify": False}
    response = api.post("/v1/account", body)
    assert response.status in (200, 201), response.body


def test_mail_is_announced_when_examine_reports_no_uidnext(api, legacy_dovecot, events, prefix):
    # Given: an account with mail in INBOX and a folder, on a server whose EXAMINE has no [UIDNEXT]
    email, password = f"{prefix}courier@example.test", "courier-password"
    legacy_dovecot.add_user(email, password)
    client = plain_client(legacy_dovecot, email, password)
    client.create_folder("Archive")
    client.append("INBOX", b"Subject: before\r\n\r\nx\r\n")
    account = prefix + "courier"
    with ImapFilterProxy(legacy_dovecot.imap_port, strip_uidnext=True) as proxy:
        register_through(api, legacy_dovecot, proxy, account, email, password)
        with running_watcher(events, prefix, prefix + "ns"):
            # Then: the account is baselined
            events.wait_for_event(account, "accountInitialized")

            # When: mail arrives in INBOX and in another folder
            client.append("INBOX", b"Subject: fresh\r\n\r\nx\r\n")
            client.append("Archive", b"Subject: archived\r\n\r\nx\r\n")

            # Then: each is announced once, with its UID
            events.wait_for_event(account, "messageNew", count=2)
            events.settle()  # a duplicate, if any, would come from the next sweep
        assert any(b"UIDNEXT" in line for line in proxy.dropped)  # the quirk was in force
    new = sorted((e.path, e.data["uid"], e.data["subject"]) for e in events.of(account, "messageNew"))
    assert new == [("Archive", 1, "archived"), ("INBOX", 2, "fresh")]
    client.logout()


def test_inbox_changes_arrive_within_the_sweep_when_idle_reports_nothing(api, legacy_dovecot, events, prefix):
    # Given: an account on a server whose IDLE never reports (within the test's patience)
    email, password = f"{prefix}cyrus@example.test", "cyrus-password"
    legacy_dovecot.add_user(email, password)
    client = plain_client(legacy_dovecot, email, password)
    account = prefix + "cyrus"
    with ImapFilterProxy(legacy_dovecot.imap_port, mute_idle=True) as proxy:
        register_through(api, legacy_dovecot, proxy, account, email, password)
        with running_watcher(events, prefix, prefix + "ns", extra_env=NO_REISSUE):
            events.wait_for_event(account, "accountInitialized")

            # When: mail arrives in INBOX, twice
            for number in (1, 2):
                client.append("INBOX", f"Subject: mail {number}\r\n\r\nx\r\n".encode())
                # Then: each is announced within a few sweeps (1 s apart here), not at a re-issue
                events.wait_for_event(account, "messageNew", count=number, timeout=8)

            # When: a message is read (without CONDSTORE, STATUS shows it as UNSEEN moving);
            # Then: that too, though IDLE said nothing
            client.select_folder("INBOX")
            client.add_flags([1], [b"\\Seen"])
            events.wait_for_event(account, "messageUpdated", timeout=8)
        assert any(b"EXISTS" in line for line in proxy.dropped)  # IDLE did have something to say
    assert [e.data["subject"] for e in events.of(account, "messageNew")] == ["mail 1", "mail 2"]
    client.logout()


def test_an_account_that_logs_in_but_cannot_sync_says_so_once_until_it_syncs(api, legacy_dovecot, events, prefix):
    # Given: an account whose server lets it in but refuses to open any mailbox
    email, password = f"{prefix}broken@example.test", "broken-password"
    legacy_dovecot.add_user(email, password)
    account = prefix + "broken"
    refusal = "[SERVERBUG] Internal error occurred. Refer to server log for more information."
    with ImapFilterProxy(legacy_dovecot.imap_port, refuse_examine=refusal) as proxy:
        register_through(api, legacy_dovecot, proxy, account, email, password)
        with running_watcher(events, prefix, prefix + "ns"):
            # Then: after a few retries the account is in syncError, with the server's words
            events.wait_for_event(account, "syncError")
            stored = api.get(f"/v1/account/{account}").json
            assert stored["state"] == "syncError"
            assert stored["lastError"]["code"] == "CommandFailed"
            assert stored["lastError"]["serverResponse"] == "NO " + refusal
            assert stored["lastError"]["since"]
            [announced] = events.of(account, "syncError")
            assert announced.data == {"response": "NO " + refusal, "serverResponseCode": "CommandFailed"}

            # And: the retries that follow (1 s apart at most here) announce nothing more
            events.settle(3)
            assert [e.event for e in events.of(account)] == ["authenticationSuccess", "syncError"]

            # When: the server recovers; Then: connected again once it has synced, lastError gone
            proxy.refuse_examine = None
            events.wait_for_event(account, "accountInitialized")
            events.wait_for_event(account, "authenticationSuccess", count=2)  # after the recovery
            stored = api.get(f"/v1/account/{account}").json
            assert stored["state"] == "connected" and stored.get("lastError") is None
    assert [e.event for e in events.of(account)] == ["authenticationSuccess", "syncError", "accountInitialized",
                                                      "authenticationSuccess"]


def test_a_flag_change_is_announced_when_highestmodseq_went_down(api, condstore_dovecot, events, prefix):
    # Given: an account synced to a HIGHESTMODSEQ well above 1 (a message flagged many times)
    email, password = f"{prefix}rebuilt@example.test", "rebuilt-password"
    condstore_dovecot.add_user(email, password)
    client = plain_client(condstore_dovecot, email, password)
    client.append("INBOX", b"Subject: first\r\n\r\nx\r\n")
    client.append("INBOX", b"Subject: second\r\n\r\nx\r\n")
    client.select_folder("INBOX")
    for _ in range(15):
        client.add_flags([1], [b"\\Flagged"])
        client.remove_flags([1], [b"\\Flagged"])
    account = prefix + "rebuilt"
    with ImapFilterProxy(condstore_dovecot.imap_port) as proxy:
        register_through(api, condstore_dovecot, proxy, account, email, password)
        with running_watcher(events, prefix, prefix + "ns"):
            events.wait_for_event(account, "accountInitialized")

            # When: the server's modseqs are renumbered 20 lower (an index rebuild), and a
            # message is read: its new modseq is below the one the watcher synced to
            proxy.modseq_shift = 20
            client.add_flags([2], [b"\\Seen"])

            # Then: the change is announced all the same
            [update] = events.wait_for_event(account, "messageUpdated")
            assert update.data["uid"] == 2 and update.data["changes"]["flags"]["added"] == ["\\Seen"]

            # When: another message changes afterwards; Then: the incremental sync (from the
            # lower value now stored) finds it
            client.add_flags([1], [b"\\Answered"])
            events.wait_for_event(account, "messageUpdated", count=2)
        assert proxy.raised  # the watcher did ask from a modseq in the renumbered range
    assert [e.data["uid"] for e in events.of(account, "messageUpdated")] == [2, 1]
    client.logout()


@pytest.mark.parametrize(("hidden_answers", "partial"), [(2, False), (100, True)])
def test_a_listed_message_a_fetch_does_not_return_is_retried_not_skipped(api, legacy_dovecot, events, prefix,
                                                                         hidden_answers, partial):
    # Given: an account on a server that answers no FETCH for UID 2 for a while (or ever)
    email, password = f"{prefix}lagging{hidden_answers}@example.test", "lagging-password"
    legacy_dovecot.add_user(email, password)
    client = plain_client(legacy_dovecot, email, password)
    client.append("INBOX", b"Subject: before\r\n\r\nx\r\n")
    account = f"{prefix}lagging{hidden_answers}"
    with ImapFilterProxy(legacy_dovecot.imap_port) as proxy:
        register_through(api, legacy_dovecot, proxy, account, email, password)
        with running_watcher(events, prefix, prefix + "ns"):
            events.wait_for_event(account, "accountInitialized")

            # When: two messages arrive, the first of which FETCH does not return
            proxy.hide_fetch = {2: hidden_answers}
            client.append("INBOX", b"Subject: lagging\r\n\r\nx\r\n")
            client.append("INBOX", b"Subject: next\r\n\r\nx\r\n")

            # Then: both are announced, in UID order; the one never returned is marked partial
            events.wait_for_event(account, "messageNew", count=2)
            events.settle()  # a duplicate, if any, would come from the next sweep
        assert any(b"FETCH" in line for line in proxy.dropped)  # the quirk was in force
    lagging, following = events.of(account, "messageNew")
    assert (lagging.data["uid"], following.data["uid"]) == (2, 3)
    assert following.data["subject"] == "next" and "partial" not in following.data
    if partial:
        assert lagging.data["partial"] is True and "subject" not in lagging.data
    else:
        assert lagging.data["subject"] == "lagging" and "partial" not in lagging.data
    client.logout()
