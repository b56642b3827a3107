"""A scripted line-protocol server for tests: greets, answers by script, records every line.

Stands in for a server the caller of the API chose: a fake IMAP or SMTP server that would
happily take a password, or a port that speaks something else (an SSH or HTTP banner).
The test asserts on what reached it: how many connections, and every line received.

    client ──connect──> greeting ──line──> responder(line) -> reply lines ──> ... until EOF

Replies are produced by a :data:`Responder` (a function of the received line); the
ready-made ones speak just enough IMAP or SMTP for a client to get as far as its login,
or (:func:`flooding_imap_responder`) far enough into a session to flood the answer to a
chosen command: a reply may be a :class:`Flood`, which streams filler for as long as the
client keeps reading. ``bytes_sent`` counts what went out.

Lifecycle: ``with LineServer(greeting, responder) as server:`` listens on a free loopback
port, one thread per connection, and always stops (closing every connection) on exit.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Flood:
    """``head`` (say a line announcing ``{900000000}``), then filler up to ``size`` bytes in
    all, as fast as the client reads; the connection then stays open, silent."""

    head: bytes
    size: int = 256 * 1024 * 1024


Reply = str | Flood
Responder = Callable[[str], Sequence[Reply]]

IMAP_GREETING = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready"
SMTP_GREETING = "220 mx.test ESMTP ready"
SSH_BANNER = "SSH-2.0-OpenSSH_9.2"
HTTP_ANSWER = "HTTP/1.1 400 Bad Request"


def imap_responder(line: str) -> list[str]:
    """A server without STARTTLS that answers CAPABILITY and refuses every login."""
    tag, _, rest = line.partition(" ")
    command = rest.split(" ", 1)[0].upper()
    if command == "CAPABILITY":
        return ["* CAPABILITY IMAP4rev1 AUTH=PLAIN", f"{tag} OK done"]
    if command == "LOGOUT":
        return ["* BYE bye", f"{tag} OK done"]
    return [f"{tag} NO [AUTHENTICATIONFAILED] no"]


def smtp_responder(line: str) -> list[str]:
    """A server without STARTTLS that offers AUTH and refuses it."""
    command = line.split(" ", 1)[0].upper()
    if command == "EHLO":
        return ["250-mx.test", "250 AUTH PLAIN LOGIN"]
    if command == "AUTH":
        return ["535 5.7.8 no"]
    if command == "QUIT":
        return ["221 bye"]
    return ["502 5.5.1 no"]


FLOOD_LITERAL_BYTES = 900_000_000


def flooding_imap_responder(flood: Collection[str], size: int = Flood.size) -> Responder:
    """An IMAP server with one message in INBOX that logs anyone in and answers each command
    named in ``flood`` (``LIST``, ``FETCH``, ``IDLE``) with a ``{900000000}`` literal it
    then streams (``size`` bytes in all). Enough IMAP for the mail API and the watcher."""

    def respond(line: str) -> list[Reply]:
        tag, _, rest = line.partition(" ")
        words = rest.split(" ")
        command = (words[1] if words[0].upper() == "UID" and len(words) > 1 else words[0]).upper()
        if command in flood:
            if command == "IDLE":
                return ["+ idling", Flood(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % FLOOD_LITERAL_BYTES, size)]
            item = b'* LIST () "/" ' if command == "LIST" else b"* 1 FETCH (UID 1 BODY[] "
            return [Flood(item + b"{%d}\r\n" % FLOOD_LITERAL_BYTES, size)]
        answers: dict[str, list[str]] = {
            "CAPABILITY": ["* CAPABILITY IMAP4rev1 AUTH=PLAIN IDLE"],
            "LIST": ['* LIST (\\HasNoChildren) "/" INBOX'],
            "EXAMINE": ["* 1 EXISTS", "* OK [UIDVALIDITY 7] ok", "* OK [UIDNEXT 2] ok"],
            "SELECT": ["* 1 EXISTS", "* OK [UIDVALIDITY 7] ok", "* OK [UIDNEXT 2] ok"],
            "SEARCH": ["* SEARCH 1"],
            "FETCH": ["* 1 FETCH (UID 1 FLAGS ())"],
            "STATUS": ['* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7 UNSEEN 0)'],
            "LOGOUT": ["* BYE bye"],
        }
        if tag.upper() == "DONE" or not rest:
            return []
        return [*answers.get(command, []), f"{tag} OK done"]

    return respond


def silent_responder(line: str) -> list[str]:
    """Says nothing after its greeting (a banner-only service)."""
    return []


class LineServer:
    def __init__(self, greeting: str, responder: Responder = silent_responder) -> None:
        self._greeting = greeting
        self._responder = responder
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lines: list[str] = []
        self.connections = 0
        self.bytes_sent = 0

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def lines(self) -> list[str]:
        """Every line received so far, on any connection, in arrival order."""
        with self._lock:
            return list(self._lines)

    def __enter__(self) -> LineServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux: shutdown does
        # (otherwise every exit waited out the join timeout).
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed by __exit__
            with self._lock:
                self.connections += 1
                self._connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn.makefile("rb") as reader:
            conn.sendall(self._greeting.encode() + b"\r\n")
            for raw in reader:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._lock:
                    self._lines.append(line)
                for reply in self._responder(line):
                    if isinstance(reply, Flood):
                        self._flood(conn, reply)
                    else:
                        self._send(conn, reply.encode() + b"\r\n")

    def _send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self._lock:
            self.bytes_sent += len(data)

    def _flood(self, conn: socket.socket, flood: Flood) -> None:
        self._send(conn, flood.head)
        filler = b"x" * 65536
        left = flood.size - len(flood.head)
        while left > 0:
            self._send(conn, filler[:left])
            left -= len(filler)


class ScriptedImapLogin:
    """An IMAP server whose answers to ``AUTHENTICATE`` are a script: a provider's failure, line for line.

    ``AUTHENTICATE`` gets the empty continuation ``+ ``; each line the client sends after it
    (the login string, then the empty answer to an error challenge) gets the next entry of
    ``answers`` (``{tag}`` is the command's tag), so ``["+ eyJ...", "{tag} NO [AUTHENTICATIONFAILED]
    ..."]`` is Gmail refusing a token. After an ``OK``, every command but ``CAPABILITY`` and
    ``LOGOUT`` gets ``after_login`` (Exchange Online's ``BAD User is authenticated but not
    connected.``), else ``OK``. One connection at a time (the script restarts with each login).
    """

    def __init__(self, answers: Sequence[str], *, capabilities: str = "IMAP4rev1 AUTH=XOAUTH2 AUTH=PLAIN",
                 after_login: str = "{tag} OK done") -> None:
        self.greeting = f"* OK [CAPABILITY {capabilities}] ready"
        self._capabilities = capabilities
        self._answers = list(answers)
        self._after_login = after_login
        self._tag: str | None = None
        self._step = 0

    def __call__(self, line: str) -> list[str]:
        if self._tag is not None:
            answer = self._answers[self._step].format(tag=self._tag)
            self._step += 1
            if not answer.startswith("+"):
                self._tag = None
            return [answer]
        tag, _, rest = line.partition(" ")
        command = rest.split(" ", 1)[0].upper()
        if command == "AUTHENTICATE":
            self._tag, self._step = tag, 0  # each login (a reconnect) replays the script
            return ["+ "]
        if command == "CAPABILITY":
            return [f"* CAPABILITY {self._capabilities}", f"{tag} OK done"]
        if command == "LOGOUT":
            return ["* BYE bye", f"{tag} OK done"]
        answer = self._after_login.format(tag=tag)
        if command == "NAMESPACE" and answer.startswith(f"{tag} OK"):
            return ['* NAMESPACE (("" "/")) NIL NIL', answer]
        return [answer]


class ScriptedSmtpAuth:
    """An SMTP server (no STARTTLS) offering ``auth``; ``AUTH`` and each line after it get the
    next entry of ``answers`` until one that is not a ``334`` challenge (Gmail: ``334 eyJ...``,
    then ``535-5.7.8 ...``). Multi-line replies are one entry with ``\\n`` between lines."""

    def __init__(self, answers: Sequence[str], *, auth: str = "LOGIN PLAIN XOAUTH2 OAUTHBEARER") -> None:
        self._answers = list(answers)
        self._auth = auth
        self._in_auth = False
        self._step = 0

    def __call__(self, line: str) -> list[str]:
        command = line.split(" ", 1)[0].upper()
        if self._in_auth or command == "AUTH":
            answer = self._answers[self._step]
            self._step += 1
            self._in_auth = answer.startswith("334")
            return answer.split("\n")
        if command == "EHLO":
            return ["250-mx.test", f"250 AUTH {self._auth}"]
        if command == "QUIT":
            return ["221 bye"]
        return ["502 5.5.1 no"]
