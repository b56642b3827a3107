"""The mail-server fixtures behave like the servers the application meets in production.

Everything here runs against real Dovecot and Postfix processes: TLS that verifies (and
one that does not), authentication failures, delivery, recipient rejection, a second
Dovecot with another hierarchy separator and localized special-use folders, and teardown
that leaves no process behind.
"""

from __future__ import annotations

import email
import secrets
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.support import fixtures
from tests.support.certs import TestPKI
from tests.support.fixtures import MailUser
from tests.support.mailservers import HOST, HOSTNAME, Dovecot, MailServerError, Postfix, live_processes_in_group

DELIVERY_TIMEOUT_SECONDS = 5.0


# -- helpers --------------------------------------------------------------------------------


def tls_context(pki: TestPKI) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca_file))


def imap_login(server: Dovecot, user: MailUser, pki: TestPKI) -> IMAPClient:
    """A logged-in IMAPS client; use it as a context manager so it always logs out."""
    client = IMAPClient(HOSTNAME, port=server.imaps_port, ssl=True, ssl_context=tls_context(pki), timeout=10)
    try:
        client.login(user.email, user.password)
    except BaseException:
        client.shutdown()
        raise
    return client


def make_message(sender: str, recipient: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"test {secrets.token_hex(4)}"
    message.set_content("Hello from the test suite.\n")
    return message


def wait_for_subjects(client: IMAPClient, count: int, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> list[str]:
    """Subjects in INBOX once it holds ``count`` messages; Postfix delivers asynchronously."""
    deadline = time.monotonic() + timeout
    while client.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] < count:
        if time.monotonic() > deadline:
            pytest.fail(f"INBOX did not reach {count} message(s) within {timeout} s")
        time.sleep(0.05)
    client.select_folder("INBOX", readonly=True)
    uids = client.search("ALL")
    fetched = client.fetch(uids, ["RFC822"])
    return [str(email.message_from_bytes(fetched[uid][b"RFC822"])["Subject"]) for uid in uids]


# -- Dovecot: TLS and login -----------------------------------------------------------------


def test_imap_login_over_starttls_to_localhost_verifies(
    dovecot: Dovecot, mail_user: MailUser, test_pki: TestPKI
) -> None:
    # Given a plain IMAP connection to the name in the certificate
    with IMAPClient(HOSTNAME, port=dovecot.imap_port, ssl=False, timeout=10) as client:
        assert b"STARTTLS" in client.capabilities()

        # When it upgrades with a context that trusts only the test CA, and logs in
        client.starttls(tls_context(test_pki))
        client.login(mail_user.email, mail_user.password)

        # Then the session is authenticated and the INBOX is empty
        assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_imap_login_over_implicit_tls(dovecot: Dovecot, mail_user: MailUser, test_pki: TestPKI) -> None:
    # Given / When a TLS connection from the first byte, and a login
    with imap_login(dovecot, mail_user, test_pki) as client:
        # Then Dovecot offers the extensions the application relies on
        capabilities = set(client.capabilities())
    assert {b"IDLE", b"CONDSTORE", b"QRESYNC", b"SPECIAL-USE", b"MOVE", b"UIDPLUS"} <= capabilities


def test_default_trust_store_is_the_test_ca(dovecot: Dovecot) -> None:
    # Given the session-wide SSL_CERT_FILE, and a context built like the application builds one
    context = ssl.create_default_context()

    # When it connects by name
    with (
        socket.create_connection((HOST, dovecot.imaps_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=HOSTNAME) as tls,
    ):
        # Then the certificate verified, and it names localhost
        assert ("DNS", HOSTNAME) in tls.getpeercert()["subjectAltName"]


@pytest.mark.parametrize(("server_fixture", "port_attribute"), [("dovecot", "imaps_port"), ("postfix", "smtps_port")])
def test_certificate_does_not_verify_for_ip_address(
    server_fixture: str, port_attribute: str, request: pytest.FixtureRequest, test_pki: TestPKI
) -> None:
    # Given a TLS port whose certificate names only "localhost"
    port = getattr(request.getfixturevalue(server_fixture), port_attribute)

    # When a verifying client connects by IP address
    # Then the handshake fails on hostname verification
    with socket.create_connection((HOST, port), timeout=10) as raw, pytest.raises(ssl.SSLCertVerificationError):
        tls_context(test_pki).wrap_socket(raw, server_hostname=HOST)


def test_imap_wrong_password_is_rejected(dovecot: Dovecot, mail_user: MailUser, test_pki: TestPKI) -> None:
    # Given an existing user
    with IMAPClient(HOSTNAME, port=dovecot.imaps_port, ssl_context=tls_context(test_pki), timeout=10) as client:
        # When logging in with a wrong password
        started = time.monotonic()
        with pytest.raises(LoginError):
            client.login(mail_user.email, mail_user.password + "-wrong")

    # Then imapclient raised LoginError, without Dovecot's 2-15 s anti-brute-force penalty
    # (what is left is the ~0.5 s timer on which Dovecot flushes failed logins)
    assert time.monotonic() - started < 1.5


def test_lmtp_delivery_lands_in_inbox(dovecot: Dovecot, mail_user: MailUser, test_pki: TestPKI) -> None:
    # Given a message for the user
    message = make_message("someone@elsewhere.test", mail_user.email)

    # When it is delivered over LMTP
    dovecot.deliver(mail_user.email, message.as_bytes())

    # Then it is in INBOX at once (LMTP answers only after the message is stored)
    with imap_login(dovecot, mail_user, test_pki) as client:
        assert client.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 1
        assert wait_for_subjects(client, 1) == [message["Subject"]]


def test_default_special_use_folders_exist(dovecot: Dovecot, mail_user: MailUser, test_pki: TestPKI) -> None:
    # Given / When a new user lists their folders
    with imap_login(dovecot, mail_user, test_pki) as client:
        folders = {name: set(flags) for flags, _, name in client.list_folders()}

    # Then each special-use folder exists under its default name, with its flag
    for name, flag in (
        ("Sent", b"\\Sent"),
        ("Drafts", b"\\Drafts"),
        ("Trash", b"\\Trash"),
        ("Archive", b"\\Archive"),
        ("Junk", b"\\Junk"),
    ):
        assert flag in folders[name]


# -- Postfix --------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["starttls", "implicit-tls"])
def test_smtp_submission_delivers_to_another_users_inbox(
    transport: str,
    postfix: Postfix,
    dovecot: Dovecot,
    make_mail_user: Callable[[], MailUser],
    test_pki: TestPKI,
) -> None:
    # Given two users created while Postfix is already running
    sender, recipient = make_mail_user(), make_mail_user()
    message = make_message(sender.email, recipient.email)

    # When the sender submits through Postfix with TLS and AUTH
    if transport == "starttls":
        smtp = smtplib.SMTP(HOSTNAME, postfix.smtp_port, timeout=10)
        smtp.starttls(context=tls_context(test_pki))
    else:
        smtp = smtplib.SMTP_SSL(HOSTNAME, postfix.smtps_port, timeout=10, context=tls_context(test_pki))
    with smtp:
        smtp.login(sender.email, sender.password)
        refused = smtp.send_message(message)
    assert refused == {}

    # Then the recipient finds it in INBOX within seconds
    with imap_login(dovecot, recipient, test_pki) as client:
        assert wait_for_subjects(client, 1) == [message["Subject"]]


def test_smtp_wrong_password_gets_535(postfix: Postfix, mail_user: MailUser, test_pki: TestPKI) -> None:
    # Given a TLS connection to Postfix and an existing user
    with smtplib.SMTP_SSL(HOSTNAME, postfix.smtps_port, timeout=10, context=tls_context(test_pki)) as smtp:
        # When authenticating with a wrong password
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            smtp.login(mail_user.email, mail_user.password + "-wrong")

    # Then Postfix answers 535, as providers do
    assert failure.value.smtp_code == 535


def test_smtp_unknown_recipient_gets_550_at_rcpt(postfix: Postfix, mail_user: MailUser, test_pki: TestPKI) -> None:
    with smtplib.SMTP_SSL(HOSTNAME, postfix.smtps_port, timeout=10, context=tls_context(test_pki)) as smtp:
        # Given an authenticated sender
        smtp.login(mail_user.email, mail_user.password)
        assert smtp.mail(mail_user.email)[0] == 250

        # When it names a recipient no mailbox exists for
        code, reply = smtp.rcpt(f"nobody-{secrets.token_hex(4)}@example.test")

    # Then RCPT itself is refused permanently, before any DATA
    assert code == 550, reply


def test_smtp_requires_tls_and_auth(postfix: Postfix, mail_user: MailUser, test_pki: TestPKI) -> None:
    # Given a plain connection to the STARTTLS port
    with smtplib.SMTP(HOSTNAME, postfix.smtp_port, timeout=10) as smtp:
        smtp.ehlo()
        # Then AUTH is not offered before TLS, and mail is refused until STARTTLS
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        assert smtp.mail(mail_user.email)[0] == 530

    # Given a TLS connection without AUTH
    with smtplib.SMTP_SSL(HOSTNAME, postfix.smtps_port, timeout=10, context=tls_context(test_pki)) as smtp:
        assert smtp.mail(mail_user.email)[0] == 250
        # When it names an existing recipient
        code, reply = smtp.rcpt(mail_user.email)

    # Then Postfix refuses to relay for an unauthenticated client
    assert code == 554, reply


# -- more than one instance, lifecycle ------------------------------------------------------


def test_second_dovecot_with_dot_separator_lists_localized_special_use_folders(
    dovecot: Dovecot, test_pki: TestPKI
) -> None:
    # Given a second Dovecot, running next to the session one, with "." and German folder names
    with Dovecot(test_pki, separator=".", special_use={"Gesendet": "\\Sent", "Papierkorb": "\\Trash"}) as localized:
        assert localized.imaps_port != dovecot.imaps_port
        user = MailUser(email="anna@example.test", password="geheim")
        localized.add_user(user.email, user.password)

        # When its user lists the folders
        with imap_login(localized, user, test_pki) as client:
            listing = {name: (set(flags), delimiter) for flags, delimiter, name in client.list_folders()}
        master = localized.master_pid

    # Then the localized names carry the special-use flags, under the "." separator
    assert b"\\Sent" in listing["Gesendet"][0]
    assert b"\\Trash" in listing["Papierkorb"][0]
    assert {delimiter for _, delimiter in listing.values()} == {b"."}
    assert "Sent" not in listing
    # And leaving the context stopped every process of that instance
    assert master is not None
    assert live_processes_in_group(master) == []


def test_second_postfix_delivers_into_its_own_dovecot_and_stops_cleanly(postfix: Postfix, test_pki: TestPKI) -> None:
    # Given a second Dovecot and Postfix pair, next to the session pair
    with Dovecot(test_pki) as other_dovecot, Postfix(other_dovecot, test_pki) as other_postfix:
        assert other_postfix.smtp_port != postfix.smtp_port
        user = MailUser(email="bob@example.test", password="s3cret")
        other_dovecot.add_user(user.email, user.password)
        message = make_message(user.email, user.email)

        # When mail is submitted through the second Postfix
        with smtplib.SMTP(HOSTNAME, other_postfix.smtp_port, timeout=10) as smtp:
            smtp.starttls(context=tls_context(test_pki))
            smtp.login(user.email, user.password)
            smtp.send_message(message)

        # Then it lands in the second Dovecot
        with imap_login(other_dovecot, user, test_pki) as client:
            assert wait_for_subjects(client, 1) == [message["Subject"]]
        masters = [other_dovecot.master_pid, other_postfix.master_pid]

    # And after the context exits, neither instance has a process left
    assert None not in masters
    assert [pid for master in masters if master for pid in live_processes_in_group(master)] == []


def test_failed_start_raises_with_dovecots_reason_and_cleans_up(test_pki: TestPKI) -> None:
    # Given a Dovecot whose config cannot work (a special-use flag Dovecot does not know)
    broken = Dovecot(test_pki, special_use={"Sent": "\\NoSuchFlag"})

    # When it is started
    # Then start raises with Dovecot's own explanation, and removed its temp dir
    with pytest.raises(MailServerError, match="NoSuchFlag"):
        broken.start()
    assert broken.directory is None


def test_missing_binaries_fail_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a machine without Postfix
    monkeypatch.setattr(fixtures, "binaries_missing", lambda: ["postfix"])

    # When a mail-server fixture checks for its binaries
    # Then the test fails (never skips), telling the reader how to get them
    with pytest.raises(pytest.fail.Exception, match="make test"):
        fixtures.require_mail_server_binaries()
