"""One watcher process, one account whose server floods it: only that account suffers.

Two accounts point at the test's own servers, which log anyone in and then announce a
``{900000000}`` literal and stream filler behind it: one during IDLE, one in answer to the
watcher's FETCH. A third account is on the real Dovecot. The watcher must refuse each flood
on its announcement: the flooding accounts report ``syncError`` once (code
``ServerResponseTooLarge``; they logged in, and each good login after it announces nothing),
the Dovecot account keeps getting its ``messageNew`` events, and
the process's memory stays where it was.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from chalicelib.store import accounts as account_store
from tests.integration.watcher_support import EventQueue, register_account, running_watcher, send_mail
from tests.support.line_servers import IMAP_GREETING, LineServer, flooding_imap_responder

ACCOUNT_STATE_EVENTS = frozenset({"authenticationSuccess", "authenticationError", "connectError", "syncError"})

RSS_GROWTH_BOUND_BYTES = 50 * 1024 * 1024


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@contextmanager
def peak_rss(pid: int) -> Iterator[list[int]]:
    """Samples the process's RSS every 20 ms while the block runs; yields ``[peak]``."""
    peak = [rss_bytes(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            try:
                peak[0] = max(peak[0], rss_bytes(pid))
            except (OSError, AssertionError):
                return  # the process is gone; the test says why

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join(timeout=5)


def register_flooded(api, server: LineServer, account: str) -> None:
    response = api.post("/v1/account", {
        "account": account, "email": "victim@example.test", "name": "Flooded",
        "imap": {"host": "127.0.0.1", "port": server.port, "secure": False, "tls": {"allowPlaintextAuth": True},
                 "auth": {"user": "victim@example.test", "pass": "secret"}}})
    assert response.status == 200, response.body


def subjects(events: EventQueue, account: str) -> list[str]:
    return [e.data.get("subject") for e in events.of(account, "messageNew")]


def test_flooding_servers_get_one_sync_error_while_another_account_keeps_its_events(
        api, dovecot, postfix, make_mail_user, events, prefix):
    # Given: a watcher with an account on the real Dovecot, initialized
    user, sender = make_mail_user(), make_mail_user()
    normal = prefix + "normal"
    register_account(api, dovecot, user, normal)
    with ExitStack() as stack:
        servers = {prefix + "idle-flood": stack.enter_context(LineServer(IMAP_GREETING,
                                                                         flooding_imap_responder({"IDLE"}))),
                   prefix + "fetch-flood": stack.enter_context(LineServer(IMAP_GREETING,
                                                                          flooding_imap_responder({"FETCH"})))}
        watcher = stack.enter_context(running_watcher(events, prefix, prefix + "ns"))
        events.wait_for(lambda ev: events.of(normal, "accountInitialized"), timeout=30, what="initialized")
        send_mail(postfix, sender, user.email, "before")
        events.wait_for(lambda ev: "before" in subjects(events, normal), what="first message")
        baseline = rss_bytes(watcher.process.pid)

        with peak_rss(watcher.process.pid) as peak:
            # When: two accounts whose servers flood it (900 MB announced, 256 MB streamed per
            # connection) are added to the same process
            for account, server in servers.items():
                register_flooded(api, server, account)

            # Then: each reports syncError with the stable code ...
            events.wait_for(lambda ev: all(events.of(account, "syncError") for account in servers), timeout=30,
                            what="syncError of both flooded accounts")
            for account in servers:
                error = events.of(account, "syncError")[0]
                assert error.data["serverResponseCode"] == "ServerResponseTooLarge", error.data
                assert "900000000-byte literal" in error.data["response"]
            # ... and keeps being refused on every reconnect, while mail for the other account
            # keeps arriving as events
            for n in range(3):
                subject = f"during flood {n} {secrets.token_hex(3)}"
                send_mail(postfix, sender, user.email, subject)
                events.wait_for(lambda ev, subject=subject: subject in subjects(events, normal), timeout=20,
                                what=subject)
            deadline = time.monotonic() + 20
            while min(server.connections for server in servers.values()) < 3:
                assert time.monotonic() < deadline, {a: s.connections for a, s in servers.items()}
                time.sleep(0.1)

        # And: the process's memory did not follow the floods
        growth = peak[0] - baseline
        sent = {account: server.bytes_sent for account, server in servers.items()}
        assert growth < RSS_GROWTH_BOUND_BYTES, f"RSS grew by {growth} bytes; the servers sent {sent}"
        assert watcher.process.poll() is None
        assert account_store.get_account(normal).state == "connected"
        assert subjects(events, normal).count("before") == 1
        # And: three and more refused connections each, yet only the first login and the one
        # syncError are announced (no authenticationSuccess / error pair at every reconnect)
        for account in servers:
            announced = [e.event for e in events.of(account) if e.event in ACCOUNT_STATE_EVENTS]
            assert announced == ["authenticationSuccess", "syncError"], announced
            assert account_store.get_account(account).state == "syncError"
