"""The watcher's IDLE reading on a real Dovecot: stale readiness, pushes, and a server that hangs up.

The multiplexer hands a connection to a task when its socket was readable; by then the
bytes may be gone (read by the task's own command). ``drain_idle`` must answer at once in
that case, and must still notice a connection the server has closed. Both over STARTTLS and
over a plaintext connection (where an empty read means "nothing yet" and "closed" alike).

Dovecot only: the multiplexer's reads of a socket do not depend on the server family.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from chalicelib.imap.watch import ConnectionLostError, WatchConnection
from chalicelib.imap.watch_snapshot import take_snapshot
from chalicelib.security.transport import MailServer, TlsOptions
from tests.support.mailservers import Dovecot


@pytest.fixture(scope="module")
def cleartext_dovecot(test_pki) -> Iterator[Dovecot]:
    with Dovecot(test_pki, tls=False) as server:
        yield server


@pytest.fixture(params=["starttls", "plaintext"])
def server(request, dovecot, cleartext_dovecot) -> tuple[Dovecot, TlsOptions]:
    if request.param == "starttls":
        return dovecot, TlsOptions()
    return cleartext_dovecot, TlsOptions(allow_plaintext_auth=True)


@pytest.fixture
def idling(server) -> Iterator[tuple[Dovecot, str, WatchConnection]]:
    """A logged-in connection in IDLE on INBOX, its Dovecot and user."""
    dovecot, tls = server
    email, password = f"wc-{time.monotonic_ns()}@example.test", "secret-pw-1"
    dovecot.add_user(email, password)
    connection = WatchConnection.open(MailServer(dovecot.hostname, dovecot.imap_port, False, email, tls), password)
    take_snapshot(connection, "INBOX", None, flags_window=100)
    assert connection.selected == "INBOX"
    assert connection.start_idle() is False
    yield dovecot, email, connection
    connection.close()


def test_stale_readiness_returns_at_once_and_the_connection_stays_usable(idling):
    # Given: a connection whose IDLE a timer ended and restarted (the server's answers read)
    dovecot, email, connection = idling
    connection.stop_idle()
    connection.start_idle()

    # When: the task handed a "readable" from before that runs
    started = time.monotonic()
    hints = connection.drain_idle()

    # Then: no hint, no wait for the read deadline, and the next push is still heard
    assert not hints
    assert time.monotonic() - started < 0.5
    dovecot.deliver(email, b"Subject: after a stale wake-up\r\n\r\nx\r\n")
    deadline = time.monotonic() + 10
    while not (hints := connection.drain_idle()).selected_changed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hints.selected_changed


def test_a_connection_the_server_closed_is_reported_lost_not_idle(idling):
    # Given: an idling connection; When: the server disconnects the user
    dovecot, email, connection = idling
    dovecot.kick(email)
    time.sleep(0.5)

    # Then: draining it says the connection is gone, at once or after the server's BYE; never
    # "nothing here" (the task would hand the socket back and the multiplexer spin on it)
    with pytest.raises(ConnectionLostError):
        for _ in range(2):
            assert connection.drain_idle().bye
