"""IMAP verbs of the watcher: snapshots for the sync core, NOTIFY, and non-blocking IDLE.

One :class:`WatchConnection` wraps a logged-in :class:`~chalicelib.imap.session.ImapSession`
and speaks the commands imapclient has no API for (``EXAMINE ... (QRESYNC ...)``,
``UID FETCH ... (CHANGEDSINCE m VANISHED)``, ``NOTIFY SET``, IDLE driven from a
selector). Responses are read here and interpreted by :mod:`watch_responses`.

Connection life::

    open() ──▶ ENABLE CONDSTORE QRESYNC ──▶ [NOTIFY SET] ──▶ snapshot()* ──▶ start_idle()
                                                ▲                                 │ socket readable
                                                │                                 ▼
                                                └──── stop_idle() ◀── drain_idle() -> hints

How a snapshot is taken (always ``EXAMINE``: read-only, so fetching never sets ``\\Seen``):
- QRESYNC and a checkpoint: ``EXAMINE box (QRESYNC (uidvalidity modseq))`` returns
  changed flags and ``VANISHED (EARLIER)`` in one round trip;
- CONDSTORE only: ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)`` plus a UID search for expunges;
- neither (Office 365): a UID search plus flags for the newest ``flags_window`` UIDs;
- no checkpoint or a new UIDVALIDITY: UID search plus flags of everything (baseline).
New UIDs (>= the checkpoint's UIDNEXT) then get one listing FETCH with the mail API's
items and parser (:mod:`chalicelib.imap.messages`), so ``messageNew`` carries exactly the
API's listing entry; their flags come from that FETCH so the event and the checkpoint agree.
At most ``limit`` new UIDs (the lowest) are listed per snapshot; the rest are left out of
it entirely and the snapshot is marked partial (the rule is :mod:`chalicelib.sync.passes`).
Where the UIDs are known before the flag FETCH (UID SEARCH), deferred ones are not even
fetched for flags; after ``EXAMINE (QRESYNC ...)`` the server has already sent them, and
they are dropped (a backlog of B messages costs B/limit such flag-only re-reads).

Failure modes: any socket error, timeout, ``BYE`` or unparseable line raises
:class:`ConnectionLostError`; a ``NO``/``BAD`` answer raises :class:`CommandFailedError`.
Either way the caller drops the connection and later resyncs from its checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import imaplib
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from imapclient.response_parser import parse_fetch_response

from chalicelib.imap import watch_responses as responses
from chalicelib.imap.message_content import ContentRequest, FetchedContent, Sections, section_items
from chalicelib.imap.messages import MessageSummary, body_sections, summary_from_fetch, summary_items
from chalicelib.imap.session import ImapSession, connect
from chalicelib.imap.watch_responses import Hints, MailboxStatus, Untagged
from chalicelib.security.transport import MailServer
from chalicelib.sync.checkpoint import MailboxCheckpoint, MessageState
from chalicelib.sync.mailboxes import ListedMailbox
from chalicelib.sync.passes import PassPlan, plan_pass
from chalicelib.sync.reconcile import MailboxSnapshot
from chalicelib.sync.uidset import UidSet

FETCH_CHUNK_UIDS = 2000
Describe = Callable[[str, int, MessageSummary], dict[str, Any]]
LISTING_CHUNK_UIDS = 200
# Text parts of new messages are fetched in commands of at most about this many octets.
TEXT_FETCH_BATCH_BYTES = 8 * 1024 * 1024
KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 20, "TCP_KEEPCNT": 3}
# Mailbox events that make a NOTIFY server report changes in folders we do not have selected.
NOTIFY_COMMAND = (b"NOTIFY SET (selected (MessageNew (UID) MessageExpunge FlagChange)) "
                  b"(personal (MessageNew MessageExpunge FlagChange MailboxName))")


class ConnectionLostError(Exception):
    """The connection is unusable (EOF, timeout, BYE, garbage); reconnect and resync."""


class CommandFailedError(Exception):
    """The server answered NO/BAD to a watcher command."""


def _tune_socket(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


class WatchConnection:
    def __init__(self, session: ImapSession) -> None:
        self.session = session
        self._imap: Any = session.client._imap
        caps = session.capabilities
        self.condstore = "CONDSTORE" in caps or "QRESYNC" in caps
        self.qresync = "QRESYNC" in caps
        self.notify = "NOTIFY" in caps
        self.gmail = "X-GM-EXT-1" in caps
        self.esearch = "ESEARCH" in caps
        self.selected: str | None = None
        self._idle_tag: bytes | None = None
        self.unsolicited = Hints()
        _tune_socket(self.socket)

    @classmethod
    def open(cls, server: MailServer, password: str) -> WatchConnection:
        connection = cls(connect(server, password))
        try:
            if connection.condstore:
                connection.command(b"ENABLE CONDSTORE" + (b" QRESYNC" if connection.qresync else b""))
        except BaseException:
            connection.close()
            raise
        return connection

    @property
    def socket(self) -> socket.socket:
        return self.session.client.socket()

    def fileno(self) -> int:
        return self.socket.fileno()

    def close(self) -> None:
        """Say goodbye without waiting for the answer, then close the socket.

        Never blocks: a LOGOUT sent while IDLE would wait for a reply that never comes,
        and a watcher stopping thousands of connections cannot wait for each server.
        """
        try:
            if self._idle_tag is not None:
                self._imap.send(b"DONE\r\n")
            self._imap.send(self._imap._new_tag() + b" LOGOUT\r\n")
        except OSError:
            pass  # already gone
        self._idle_tag = None
        with contextlib.suppress(Exception):
            self.session.client.shutdown()

    def interrupt(self) -> None:
        """From another thread: make a blocked read on this connection fail now."""
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    # -- commands --------------------------------------------------------------------------

    def _read(self) -> list[responses.Part]:
        try:
            return responses.read_response(self._imap)
        except (OSError, EOFError, imaplib.IMAP4.abort, ValueError) as exc:
            raise ConnectionLostError(f"connection lost: {type(exc).__name__}") from None

    def _send(self, line: bytes) -> None:
        try:
            self._imap.send(line)
        except OSError as exc:
            raise ConnectionLostError(f"connection lost: {type(exc).__name__}") from None

    def _untagged(self, parts: list[responses.Part]) -> Untagged:
        try:
            response = responses.parse_untagged(parts)
        except ValueError as exc:
            raise ConnectionLostError(str(exc)) from None
        if response.kind == "BYE":
            raise ConnectionLostError("server said BYE: " + response.text.decode("utf-8", "replace")[:200])
        return response

    def command(self, line: bytes, *, fetching: UidSet | None = None) -> list[Untagged]:
        """Run one command; return its untagged responses or raise.

        Responses that are not about this command (a NOTIFY ``STATUS``/``LIST`` for
        another folder, ``EXISTS``/``EXPUNGE`` for the selected one, a FETCH for a UID
        outside ``fetching``) are kept in :attr:`unsolicited`: the server will not repeat
        them once we IDLE, so the caller must act on them first.
        """
        words = line.split(b" ", 2)
        verb = (words[1] if words[0].upper() == b"UID" and len(words) > 1 else words[0]).upper()
        tag = self._imap._new_tag()
        self._send(tag + b" " + line + b"\r\n")
        collected: list[Untagged] = []
        while True:
            parts = self._read()
            head = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
            if head.startswith(tag + b" "):
                status = head[len(tag) + 1:].split(b" ", 1)[0].upper()
                if status != b"OK":
                    raise CommandFailedError(f"{line.split(b' ', 1)[0].decode()} failed: "
                                             f"{head.decode('utf-8', 'replace')[:200]}")
                return collected
            if head.startswith(b"* "):
                response = self._untagged(parts)
                collected.append(response)
                self._note_unsolicited(response, verb, fetching)

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
        special = b" RETURN (SPECIAL-USE)" if "SPECIAL-USE" in self.session.capabilities else b""
        return responses.listed_mailboxes(self.command(b'LIST "" "*"' + special))

    def set_notify(self) -> None:
        self.command(NOTIFY_COMMAND)

    def status(self, path: str) -> MailboxStatus:
        items = b"MESSAGES UIDNEXT UIDVALIDITY" + (b" HIGHESTMODSEQ" if self.condstore else b"")
        found = [r for r in self.command(b"STATUS " + responses.encode_mailbox_name(path) + b" (" + items + b")")
                 if r.kind == "STATUS"]
        return responses.status_response(found[0])[1] if found else MailboxStatus()

    def examine(self, path: str, checkpoint: MailboxCheckpoint | None = None) -> list[Untagged]:
        line = b"EXAMINE " + responses.encode_mailbox_name(path)
        if self.qresync and checkpoint is not None and checkpoint.highestmodseq:
            line += b" (QRESYNC (%d %d))" % (checkpoint.uidvalidity, checkpoint.highestmodseq)
        elif self.condstore:
            line += b" (CONDSTORE)"
        self.selected = None
        found = self.command(line)
        self.selected = path
        return found

    # -- snapshots -------------------------------------------------------------------------

    def _search_all(self) -> UidSet:
        return responses.searched_uids(self.command(b"UID SEARCH RETURN (ALL) ALL" if self.esearch
                                                    else b"UID SEARCH ALL"))

    def _fetch_states(self, uids: UidSet) -> dict[int, responses.FetchedState]:
        items = b"(UID FLAGS" + (b" MODSEQ" if self.condstore else b"") + (b" X-GM-LABELS" if self.gmail else b"")
        states: dict[int, responses.FetchedState] = {}
        for chunk in _chunks(uids, FETCH_CHUNK_UIDS):
            states.update(responses.fetched_states(self.command(b"UID FETCH " + chunk.to_imap().encode() + b" "
                                                                + items + b")", fetching=chunk)))
        return states

    def _changed_since(self, modseq: int, below: int | None = None) -> dict[int, responses.FetchedState]:
        items = b"(UID FLAGS MODSEQ" + (b" X-GM-LABELS" if self.gmail else b"") + b")"
        uids = b"1:%d" % (below - 1) if below is not None else b"1:*"
        return responses.fetched_states(self.command(b"UID FETCH " + uids + b" " + items
                                                     + b" (CHANGEDSINCE %d)" % modseq))

    def snapshot(self, path: str, checkpoint: MailboxCheckpoint | None, *, all_new: bool = False,
                 flags_window: int = 1000, describe: Describe | None = None,
                 content: ContentRequest | None = None, limit: int | None = None) -> MailboxSnapshot:
        """What the server says about ``path`` relative to ``checkpoint`` (see the module docstring).

        ``all_new``: the mailbox appeared while watched, so every message gets a listing.
        ``describe`` turns a new message's summary into its listing fields (``messageNew`` data);
        ``content``: what else to fetch for it (text, headers; see :mod:`~chalicelib.imap.message_content`).
        ``limit``: most new messages listed; beyond it the snapshot is partial (``snapshot.partial``).
        """
        examined = self.examine(path, checkpoint)
        status = responses.select_status(examined)
        if status.uidvalidity is None or status.uidnext is None:
            raise CommandFailedError(f"EXAMINE {path!r} reported no UIDVALIDITY/UIDNEXT")
        full = checkpoint is None or checkpoint.uidvalidity != status.uidvalidity
        present: UidSet | None = None
        vanished = UidSet()
        plan = PassPlan(listed=UidSet())  # baselines and resets list nothing
        if full:
            present = self._search_all()
            if all_new:
                plan = plan_pass(present, limit, None)
            fetched = self._fetch_states(present - plan.deferred)
        elif self.qresync and checkpoint.highestmodseq:
            fetched = responses.fetched_states(examined)
            vanished = responses.vanished_uids(examined)
            plan = plan_pass(UidSet(fetched).at_least(checkpoint.uidnext) - vanished, limit,
                             checkpoint.highestmodseq)
        elif self.condstore and checkpoint.highestmodseq:
            present = self._search_all()
            plan = plan_pass(present.at_least(checkpoint.uidnext), limit, checkpoint.highestmodseq)
            fetched = self._changed_since(checkpoint.highestmodseq, below=plan.uidnext)
        else:
            present = self._search_all()
            plan = plan_pass(present.at_least(checkpoint.uidnext), limit, checkpoint.highestmodseq)
            window = UidSet(sorted(present)[-flags_window:]) | plan.listed
            fetched = self._fetch_states(window - plan.deferred)
        changed = {uid: f.state for uid, f in fetched.items() if uid not in plan.deferred}
        new_uids = plan.listed & UidSet(changed)  # listed but not fetched: expunged meanwhile (a phantom)
        summaries = self._fetch_summaries(new_uids, changed, content)
        listings = {uid: describe(path, status.uidvalidity, summary) if describe else {}
                    for uid, summary in summaries.items()}
        modseqs = [f.modseq for f in fetched.values() if f.modseq is not None]
        highest = status.highestmodseq if status.highestmodseq is not None else (max(modseqs) if modseqs else None)
        return plan.narrow(MailboxSnapshot(path=path, uidvalidity=status.uidvalidity, uidnext=status.uidnext,
                                           highestmodseq=highest, changed=changed, present=present,
                                           vanished=vanished, listings=listings))

    def has(self, capability: str) -> bool:
        """Capability check with the signature the mail API's FETCH item lists expect."""
        return self.session.has_capability(capability)

    def _fetch_summaries(self, uids: UidSet, changed: dict[int, MessageState],
                         content: ContentRequest | None = None) -> dict[int, MessageSummary]:
        """The listing FETCH of the mail API (same items, same parsing) for new messages,
        plus what ``content`` asks for.

        Their flags replace what the change FETCH said, so the event and the checkpoint agree.
        """
        content = None if content is None or content.empty else content
        header_item = {"header_item": content.header_item()} if content else {}
        items = [*summary_items(self, **header_item), *(["MODSEQ"] if self.condstore else []),
                 *(content.speculative_items() if content else [])]
        summaries: dict[int, MessageSummary] = {}
        for chunk in _chunks(uids, LISTING_CHUNK_UIDS):
            found = self.command(b"UID FETCH " + chunk.to_imap().encode() + b" (" + " ".join(items).encode() + b")",
                                 fetching=chunk)
            fetched: dict[int, dict[str, bytes]] = {}
            for response in found:
                if response.kind != "FETCH":
                    continue
                for _, item in parse_fetch_response(response.parts, uid_is_key=False).items():
                    uid = item.get(b"UID")
                    if uid is None or uid not in chunk:
                        continue
                    summaries[uid] = summary_from_fetch(uid, item)
                    fetched[uid] = body_sections(item)
                    state = responses.fetched_states([response]).get(uid)
                    if state is not None:
                        changed[uid] = state.state
            if content is not None:
                self._fetch_text(content, {uid: summaries[uid] for uid in fetched}, fetched)
                for uid, sections in fetched.items():
                    summaries[uid] = dataclasses.replace(summaries[uid], content=FetchedContent(content, sections))
        return summaries

    def _fetch_text(self, content: ContentRequest, summaries: dict[int, MessageSummary],
                    fetched: dict[int, dict[str, bytes]]) -> None:
        """Complete ``fetched`` with the text parts the listing FETCH did not bring: one
        UID FETCH per distinct list of missing sections (usually one for all)."""
        by_missing: dict[Sections, list[int]] = {}
        for uid, summary in summaries.items():
            fetched[uid], missing = content.plan_text(summary, fetched[uid])
            if missing:
                by_missing.setdefault(missing, []).append(uid)
        for missing, uids in by_missing.items():
            per_command = max(1, TEXT_FETCH_BATCH_BYTES // content.fetch_bound(missing))
            for start in range(0, len(uids), per_command):
                self._fetch_sections(missing, UidSet(uids[start:start + per_command]), fetched)

    def _fetch_sections(self, missing: Sections, wanted: UidSet, fetched: dict[int, dict[str, bytes]]) -> None:
        found = self.command(b"UID FETCH " + wanted.to_imap().encode() + b" (UID "
                             + " ".join(section_items(missing)).encode() + b")", fetching=wanted)
        for response in found:
            if response.kind != "FETCH":
                continue
            for _, item in parse_fetch_response(response.parts, uid_is_key=False).items():
                uid = item.get(b"UID")
                if uid in fetched:
                    for section, data in body_sections(item).items():
                        # A part fetched from octet n continues the prefix the guess brought.
                        fetched[uid][section] = fetched[uid].get(section, b"") + data

    # -- IDLE ------------------------------------------------------------------------------

    def start_idle(self) -> bool:
        """Enter IDLE. True if the server already said something the caller must drain.

        Dovecot checks the mailbox when IDLE starts and may send a change in the same
        packet as its ``+ idling``: once that sits in our read buffer the socket never
        becomes readable again, so the caller must look now instead of waiting.
        """
        self._idle_tag = self._imap._new_tag()
        self._send(self._idle_tag + b" IDLE\r\n")
        early = False
        while True:
            parts = self._read()
            head = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
            if head.startswith(b"+"):
                return early or self._input_waiting()
            if head.startswith(self._idle_tag + b" "):
                raise CommandFailedError("IDLE refused: " + head.decode("utf-8", "replace")[:200])
            early = early or bool(responses.hints_from([self._untagged(parts)]))

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
            parts = self._read()
            head = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
            if self._idle_tag is not None and head.startswith(self._idle_tag + b" "):
                self._idle_tag = None  # the server ended IDLE itself
                return responses.hints_from(found) | Hints(selected_changed=True)
            if head.startswith(b"* "):
                found.append(responses.parse_untagged(parts))
            if not self._input_waiting():
                return responses.hints_from(found)

    def stop_idle(self) -> Hints:
        """DONE; return hints that arrived meanwhile."""
        if self._idle_tag is None:
            return Hints()
        tag, self._idle_tag = self._idle_tag, None
        self._send(b"DONE\r\n")
        found: list[Untagged] = []
        while True:
            parts = self._read()
            head = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
            if head.startswith(tag + b" "):
                return responses.hints_from(found)
            if head.startswith(b"* "):
                found.append(responses.parse_untagged(parts))

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
            if self._imap.file.peek(1):
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


def _chunks(uids: UidSet, size: int) -> Iterable[UidSet]:
    batch: list[int] = []
    for uid in uids:
        batch.append(uid)
        if len(batch) == size:
            yield UidSet(batch)
            batch = []
    if batch:
        yield UidSet(batch)
