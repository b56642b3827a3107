"""The watcher's IMAP connection: commands imapclient has no API for, NOTIFY, non-blocking IDLE.

One :class:`WatchConnection` is a thin watcher-facing wrapper over the same
:class:`~chalicelib.imap.session.ImapSession` the mail API uses: it sends the commands
imapclient has no API for (``EXAMINE ... (QRESYNC ...)``, ``UID FETCH ... (CHANGEDSINCE m
VANISHED)``, ``NOTIFY SET``, IDLE driven from a selector) through the session's tag/line
primitives, keeps unsolicited answers as hints, and leaves their meaning to
:mod:`watch_responses` and the folder model (:mod:`.folders`). It never touches imaplib.

Connection life::

    open() ──▶ ENABLE CONDSTORE QRESYNC ──▶ [NOTIFY SET] ──▶ take_snapshot()* ▶ start_idle()
                                                ▲                                 │ socket readable
                                                │                                 ▼
                                                └──── stop_idle() ◀── drain_idle() -> hints

Snapshots (what a mailbox holds relative to a checkpoint) are built on this connection by
:mod:`chalicelib.imap.watch_snapshot`.

Failure modes: any socket error, timeout, ``BYE`` or unparseable line raises
:class:`ConnectionLostError`; a ``NO``/``BAD`` answer raises :class:`CommandFailedError`;
more than a cap of :mod:`chalicelib.imap.limits` allows raises a
:class:`~chalicelib.errors.MailServerError` ``ServerResponseTooLarge`` (connection shut).
Any way, the caller drops the connection and later resyncs from its checkpoints.
"""

from __future__ import annotations

import contextlib
import socket
import ssl

from chalicelib.imap import watch_responses as responses
from chalicelib.imap.capabilities import Capabilities
from chalicelib.imap.folders import MailboxStatus
from chalicelib.imap.responses import Untagged, parse_untagged
from chalicelib.imap.session import CommandFailedError, ConnectionLostError, ImapSession, checked_untagged, connect
from chalicelib.imap.watch_responses import Hints
from chalicelib.imap.wire import encode_mailbox_name
from chalicelib.security.transport import MailServer
from chalicelib.sync.checkpoint import MailboxCheckpoint
from chalicelib.sync.mailboxes import ListedMailbox
from chalicelib.sync.uidset import UidSet

KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 20, "TCP_KEEPCNT": 3}
# Mailbox events that make a NOTIFY server report changes in folders we do not have selected.
NOTIFY_COMMAND = (b"NOTIFY SET (selected (MessageNew (UID) MessageExpunge FlagChange)) "
                  b"(personal (MessageNew MessageExpunge FlagChange MailboxName))")


__all__ = ["CommandFailedError", "ConnectionLostError", "WatchConnection"]


def _tune_socket(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


class WatchConnection:
    def __init__(self, session: ImapSession) -> None:
        self.session = session
        self.selected: str | None = None
        self._idle_tag: bytes | None = None
        self.unsolicited = Hints()
        _tune_socket(self.socket)

    @classmethod
    def open(cls, server: MailServer, password: str) -> WatchConnection:
        connection = cls(connect(server, password))
        try:
            if connection.capabilities.condstore:
                connection.command(b"ENABLE CONDSTORE" + (b" QRESYNC" if connection.capabilities.qresync else b""))
        except BaseException:
            connection.close()
            raise
        return connection

    @property
    def capabilities(self) -> Capabilities:
        return self.session.capabilities

    # What the snapshot and sync code branch on is asked of ``capabilities`` (one place names
    # them, chalicelib/imap/capabilities.py); the greeting is no capability:
    @property
    def courier(self) -> bool:
        """Courier-IMAP names itself in its greeting; it has no capability of its own to test."""
        return b"Courier-IMAP" in self.session.greeting

    @property
    def socket(self) -> socket.socket:
        return self.session.socket()

    def fileno(self) -> int:
        return self.socket.fileno()

    def close(self) -> None:
        """Say goodbye without waiting for the answer, then close the socket.

        Never blocks: a LOGOUT sent while IDLE would wait for a reply that never comes,
        and a watcher stopping thousands of connections cannot wait for each server.
        """
        try:
            if self._idle_tag is not None:
                self.session.send_raw(b"DONE\r\n")
            self.session.send_command(b"LOGOUT")
        except ConnectionLostError:
            pass  # already gone
        self._idle_tag = None
        with contextlib.suppress(Exception):
            self.session.shutdown()

    def interrupt(self) -> None:
        """From another thread: make a blocked read on this connection fail now."""
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    # -- commands --------------------------------------------------------------------------

    def command(self, line: bytes, *, fetching: UidSet | None = None) -> list[Untagged]:
        """Run one command; return its untagged responses or raise.

        Responses that are not about this command (a NOTIFY ``STATUS``/``LIST`` for
        another folder, ``EXISTS``/``EXPUNGE`` for the selected one, a FETCH for a UID
        outside ``fetching``) are kept in :attr:`unsolicited`: the server will not repeat
        them once we IDLE, so the caller must act on them first.
        """
        words = line.split(b" ", 2)
        verb = (words[1] if words[0].upper() == b"UID" and len(words) > 1 else words[0]).upper()
        return self.session.command(line, lambda response: self._note_unsolicited(response, verb, fetching))

    def _note_unsolicited(self, response: Untagged, verb: bytes, fetching: UidSet | None) -> None:
        kind = response.kind
        if (kind == "STATUS" and verb != b"STATUS") or (kind == "LIST" and verb != b"LIST"):
            self.unsolicited = self.unsolicited | responses.hints_from([response])
        elif kind in ("EXISTS", "EXPUNGE", "VANISHED") and verb not in (b"EXAMINE", b"SELECT"):
            self.unsolicited = self.unsolicited | Hints(selected_changed=True)
        elif kind == "FETCH" and verb == b"FETCH" and fetching is not None:
            if set(responses.fetched_states([response])) - set(fetching):
                self.unsolicited = self.unsolicited | Hints(selected_changed=True)

    def take_unsolicited(self) -> Hints:
        hints, self.unsolicited = self.unsolicited, Hints()
        return hints

    # -- mailboxes -------------------------------------------------------------------------

    def list_mailboxes(self) -> dict[str, ListedMailbox]:
        """Selectable folders with their roles, by the same rules as the mail API's listing
        (LIST flags, XLIST on servers without SPECIAL-USE that have it, localized names)."""
        caps = self.session.capabilities
        listed = self.command(b'LIST "" "*"' + (b" RETURN (SPECIAL-USE)" if caps.special_use else b""))
        xlisted = self.command(b'XLIST "" "*"') if caps.xlist and not caps.special_use else None
        return responses.listed_mailboxes(listed, xlisted)

    def set_notify(self) -> None:
        self.command(NOTIFY_COMMAND)

    def status(self, path: str) -> MailboxStatus:
        # Without CONDSTORE, UNSEEN is the one flag change STATUS can show (read/unread).
        items = b"MESSAGES UIDNEXT UIDVALIDITY" + (b" HIGHESTMODSEQ" if self.capabilities.condstore else b" UNSEEN")
        found = [r for r in self.command(b"STATUS " + encode_mailbox_name(path) + b" (" + items + b")")
                 if r.kind == "STATUS"]
        return responses.status_response(found[0])[1] if found else MailboxStatus()

    def examine(self, path: str, checkpoint: MailboxCheckpoint | None = None) -> list[Untagged]:
        line = b"EXAMINE " + encode_mailbox_name(path)
        if self.capabilities.qresync and checkpoint is not None and checkpoint.highestmodseq:
            line += b" (QRESYNC (%d %d))" % (checkpoint.uidvalidity, checkpoint.highestmodseq)
        elif self.capabilities.condstore:
            line += b" (CONDSTORE)"
        self.selected = None
        found = self.command(line)
        self.selected = path
        return found

    def select_read_write(self, path: str) -> None:
        """SELECT ``path`` read-write, fetching nothing (see ``take_snapshot``'s Courier note)."""
        self.selected = None
        self.command(b"SELECT " + encode_mailbox_name(path))
        self.selected = path

    def close_mailbox(self) -> None:
        """CLOSE the selected mailbox (opened with EXAMINE: read-only, so nothing is expunged).

        STATUS of the selected mailbox answers from the connection's own view on Dovecot,
        which moves only when the server next reports to us (a NOOP); RFC 3501 warns about it.
        A sweep closes it first so that every STATUS sees the mailbox as it is.
        """
        if self.selected is None:
            return
        self.selected = None
        self.command(b"CLOSE")

    def noop(self) -> Hints:
        """NOOP: what the server reports when asked (changes in the selected mailbox, NOTIFY news)."""
        return responses.hints_from(self.command(b"NOOP")) | self.take_unsolicited()

    # -- IDLE ------------------------------------------------------------------------------

    def start_idle(self) -> bool:
        """Enter IDLE. True if the server already said something the caller must drain.

        Dovecot checks the mailbox when IDLE starts and may send a change in the same
        packet as its ``+ idling``: once that sits in our read buffer the socket never
        becomes readable again, so the caller must look now instead of waiting.
        """
        self._idle_tag = self.session.send_command(b"IDLE")
        early = False
        while True:
            parts = self.session.read_response()
            head = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
            if head.startswith(b"+"):
                return early or self._input_waiting()
            if head.startswith(self._idle_tag + b" "):
                words = head[len(self._idle_tag) + 1:].decode("utf-8", "replace")[:200]
                raise CommandFailedError("IDLE refused: " + words, server_response=words)
            early = early or bool(responses.hints_from([checked_untagged(parts)]))

    def drain_idle(self, *, early: bool = False) -> Hints:
        """Read what the server sent during IDLE (call when the socket is readable).

        ``early``: hints were seen before IDLE's continuation; report a change even if
        nothing more is buffered.

        Readiness is only a hint: the selector may report bytes that one of our own commands
        has already read (the answer to ``DONE`` when a timer re-issued IDLE while the socket
        was still registered). With nothing waiting this returns at once instead of blocking
        a pool thread until the read deadline and then dropping a healthy connection.
        """
        found: list[Untagged] = []
        if not self._input_waiting():
            return Hints(selected_changed=early)
        while True:
            parts = self.session.read_response()
            head = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
            if self._idle_tag is not None and head.startswith(self._idle_tag + b" "):
                self._idle_tag = None  # the server ended IDLE itself
                return responses.hints_from(found) | Hints(selected_changed=True)
            if head.startswith(b"* "):
                found.append(parse_untagged(parts))
            if not self._input_waiting():
                return responses.hints_from(found)

    def stop_idle(self) -> Hints:
        """DONE; return hints that arrived meanwhile."""
        if self._idle_tag is None:
            return Hints()
        tag, self._idle_tag = self._idle_tag, None
        self.session.send_raw(b"DONE\r\n")
        found: list[Untagged] = []
        while True:
            parts = self.session.read_response()
            head = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
            if head.startswith(tag + b" "):
                return responses.hints_from(found)
            if head.startswith(b"* "):
                found.append(parse_untagged(parts))

    @property
    def idling(self) -> bool:
        return self._idle_tag is not None

    def _input_waiting(self) -> bool:
        """True if a complete or partial response can be read without waiting for the server.

        Looks at imaplib's buffered reader, TLS's record buffer and the kernel socket, without
        blocking. The selector only sees the kernel socket: bytes already pulled into the
        first two would otherwise sit unread until the next packet. Raises
        :class:`ConnectionLostError` if the server has closed the connection.
        """
        sock = self.socket
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            if self.session.buffered_input():
                return True
            # An empty peek is the end of the stream on TLS (no data raises SSLWantReadError);
            # on a plain socket it is also what "nothing yet" looks like: ask the kernel.
            if isinstance(sock, ssl.SSLSocket) or socket.socket.recv(sock, 1, socket.MSG_PEEK) == b"":
                raise ConnectionLostError("connection lost: closed by the server")
            return True
        except (BlockingIOError, ssl.SSLWantReadError, InterruptedError):
            return False
        except OSError as exc:
            raise ConnectionLostError(f"connection lost: {type(exc).__name__}") from None
        finally:
            sock.settimeout(timeout)
