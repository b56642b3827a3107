"""The Cyrus and Courier fixtures behave like the servers they stand in for.

Each family's server, over both TLS ports, with a delivered message, its folder names and
the IDLE behaviour the watcher tests rely on: Cyrus with idled and Courier with enhanced
IDLE push at once; Cyrus without idled and Courier without enhanced IDLE (Debian's defaults)
say nothing within seconds. A stopped instance leaves no process behind.
"""

from __future__ import annotations

import ssl
import time

import pytest
from imapclient import IMAPClient

from tests.support.courier import Courier
from tests.support.cyrus import Cyrus
from tests.support.daemons import live_processes_in_group, live_processes_in_session
from tests.support.fixtures import ImapFamily, MailUser

pytestmark = pytest.mark.imap_families()
QUIET_SECONDS = 2.0


def login(family: ImapFamily, user: MailUser, *, implicit_tls: bool) -> IMAPClient:
    server = family.server
    if implicit_tls:
        client = IMAPClient(server.hostname, port=server.imaps_port, ssl=True, timeout=10)
    else:
        client = IMAPClient(server.hostname, port=server.imap_port, ssl=False, timeout=10)
        client.starttls(ssl.create_default_context())
    client.login(user.email, user.password)
    return client


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "imaps"])
def test_delivered_mail_is_in_inbox_over_either_tls_port(imap_family, mail_server, mail_user, implicit_tls):
    mail_server.deliver(mail_user.email, b"Subject: hello\r\n\r\nbody\r\n")
    with login(imap_family, mail_user, implicit_tls=implicit_tls) as client:
        client.select_folder("INBOX", readonly=True)
        [uid] = client.search("ALL")
        assert client.fetch([uid], ["ENVELOPE"])[uid][b"ENVELOPE"].subject == b"hello"


def test_role_folders_exist_under_the_familys_names(imap_family, mail_user):
    with login(imap_family, mail_user, implicit_tls=True) as client:
        names = {name for _, _, name in client.list_folders()}
    assert {imap_family.folder(role) for role in ("Sent", "Drafts", "Trash", "Archive", "Junk")} <= names


def test_idle_pushes_or_stays_quiet_as_the_family_does(imap_family, mail_server, mail_user):
    # Given a client in IDLE on INBOX
    with login(imap_family, mail_user, implicit_tls=False) as client:
        client.select_folder("INBOX")
        client.idle()
        try:
            # When mail arrives
            started = time.monotonic()
            mail_server.deliver(mail_user.email, b"Subject: pushed?\r\n\r\nx\r\n")
            responses = client.idle_check(timeout=QUIET_SECONDS)
            elapsed = time.monotonic() - started
        finally:
            client.idle_done()
    # Then a pushing server says EXISTS at once; a polling one says nothing for now
    exists = [r for r in responses if isinstance(r, tuple) and r[1:2] == (b"EXISTS",)]
    if imap_family.pushes_idle:
        assert exists and elapsed < QUIET_SECONDS, responses
    else:
        assert exists == [], responses


def test_courier_enhanced_idle_pushes(courier_enhanced, make_courier_user):
    user = make_courier_user(courier_enhanced)
    client = IMAPClient(courier_enhanced.hostname, port=courier_enhanced.imaps_port, ssl=True, timeout=10)
    with client:
        client.login(user.email, user.password)
        client.select_folder("INBOX")
        client.idle()
        courier_enhanced.deliver(user.email, b"Subject: pushed\r\n\r\nx\r\n")
        responses = client.idle_check(timeout=QUIET_SECONDS)
        client.idle_done()
    assert any(isinstance(r, tuple) and r[1:2] == (b"EXISTS",) for r in responses), responses


@pytest.fixture
def make_courier_user():
    import secrets

    def make(server: Courier) -> MailUser:
        user = MailUser(f"u-{secrets.token_hex(6)}@example.test", secrets.token_urlsafe(16))
        server.add_user(user.email, user.password)
        return user

    return make


@pytest.mark.parametrize("server_class", [Cyrus, Courier])
def test_a_stopped_server_leaves_no_process(server_class, test_pki):
    # Given a private instance with a logged-in client
    server = server_class(test_pki).start()
    server.add_user("u-stop@example.test", "secret")
    leader = server.master_pid
    client = IMAPClient(server.hostname, port=server.imaps_port, ssl=True, timeout=10)
    client.login("u-stop@example.test", "secret")
    # When it is stopped
    server.stop()
    # Then nothing of it runs (Courier's couriertcpd leaves the process group, not the session)
    assert live_processes_in_group(leader) == [] and live_processes_in_session(leader) == []
    assert server.directory is None
    client.shutdown()
