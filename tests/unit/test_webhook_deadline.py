"""The attempt deadline's watchdog: a blocked read ends at the deadline, not at its own timeout."""

from __future__ import annotations

import socket
import time

from chalicelib.webhooks.deadline import Deadline, close_watched


def test_a_blocked_read_returns_when_the_deadline_passes():
    # Given a connection whose peer never sends, read with a generous per-read timeout
    ours, peer = socket.socketpair()
    with ours, peer:
        ours.settimeout(5.0)
        with Deadline(0.3) as deadline:
            deadline.watch(watched := ours.dup())
            # When the read blocks past the deadline
            started = time.monotonic()
            data = ours.recv(1)
            elapsed = time.monotonic() - started
        close_watched(watched)

    # Then it returned (end of stream) at the deadline, and the deadline says it expired
    assert data == b"" and deadline.expired
    assert 0.25 < elapsed < 1.0, elapsed


def test_a_deadline_left_in_time_never_fires():
    ours, peer = socket.socketpair()
    with ours, peer:
        with Deadline(0.2) as deadline:
            deadline.watch(watched := ours.dup())
        time.sleep(0.4)
        peer.sendall(b"x")
        ours.settimeout(1.0)
        assert ours.recv(1) == b"x" and not deadline.expired
        close_watched(watched)


def test_a_socket_watched_after_the_deadline_is_shut_down_at_once():
    ours, peer = socket.socketpair()
    with ours, peer:
        with Deadline(0.05) as deadline:
            time.sleep(0.3)
            deadline.watch(ours)
            ours.settimeout(2.0)
            assert ours.recv(1) == b""
