"""How often a mailbox may be re-baselined after a UIDVALIDITY change. Pure.

A real UIDVALIDITY change is rare: a folder deleted and re-created, an index rebuilt, a
move to another server; a few a year. Some servers change it on every session, though:
Nylas met such "misconfigured providers", and Courier does it for a folder never selected
read-write (handled in the adapter, :mod:`chalicelib.imap.watch_snapshot`). Each change
costs a full re-read of the folder and a ``mailboxReset`` that tells consumers to re-read
it too, and every new message is decided by Message-ID instead of UID. On such a server
the watcher would do that on every reconnect, forever.

So each checkpoint keeps the times of its last :data:`RESETS_ALLOWED` accepted resets
(Unix seconds, oldest first). :func:`reset_allowed` decides::

    resets accepted in the last RESET_WINDOW_SECONDS   a new UIDVALIDITY is
    ------------------------------------------------   --------------------------------------
    fewer than RESETS_ALLOWED                          accepted: mailboxReset, re-baseline
    RESETS_ALLOWED or more                             refused: no event, checkpoint kept,
                                                       the account goes to syncError
                                                       (lastError code UidValidityUnstable)

A refused reset is retried with the account's reconnect backoff; once the oldest accepted
reset leaves the window one more is accepted, so a server that keeps doing it costs at most
:data:`RESETS_ALLOWED` re-baselines per window, and one that stopped recovers by itself
(the next complete catch-up makes the account ``connected`` again).
"""

from __future__ import annotations

from chalicelib.errors import MailServerError

# Three: a legitimate change may come in a short burst (a restore, then a second rebuild
# by an administrator fixing it); a fourth within a day is a server that does it per session.
RESETS_ALLOWED = 3
RESET_WINDOW_SECONDS = 24 * 3600
UIDVALIDITY_UNSTABLE = "UidValidityUnstable"


class UidValidityUnstableError(MailServerError):
    """The server changed a folder's UIDVALIDITY more often than the guard accepts."""

    def __init__(self, path: str, uidvalidity: int) -> None:
        super().__init__(f"the server changed the UIDVALIDITY of {path!r} {RESETS_ALLOWED} times within "
                         f"{RESET_WINDOW_SECONDS // 3600} hours and again (now {uidvalidity}); the folder is not "
                         "re-read until that stops", code=UIDVALIDITY_UNSTABLE, protocol="imap")
        self.path = path


def recent_resets(resets: tuple[int, ...], now: int) -> tuple[int, ...]:
    """The resets still inside the window at ``now``."""
    return tuple(at for at in resets if now - at < RESET_WINDOW_SECONDS)


def reset_allowed(resets: tuple[int, ...], now: int) -> bool:
    """Whether one more reset may be accepted at ``now``; see the module's table."""
    return len(recent_resets(resets, now)) < RESETS_ALLOWED


def with_reset(resets: tuple[int, ...], now: int) -> tuple[int, ...]:
    """The resets to store after accepting one at ``now`` (at most :data:`RESETS_ALLOWED`)."""
    return (*recent_resets(resets, now), now)[-RESETS_ALLOWED:]
