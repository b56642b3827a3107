"""A scripted line-protocol server for tests: greets, answers by script, records every line.

Stands in for a server the caller of the API chose: a fake IMAP or SMTP server that would
happily take a password, or a port that speaks something else (an SSH or HTTP banner).
The test asserts on what reached it: how many connections, and every line received.

    client ──connect──> greeting ──line──> responder(line) -> reply lines ──> ... until EOF

Replies are produced by a :data:`Responder` (a function of the received line); the
ready-made ones speak just enough IMAP or SMTP for a client to get as far as its login.

Lifecycle: ``with LineServer(greeting, responder) as server:`` listens on a free loopback
port, one thread per connection, and always stops (closing every connection) on exit.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

Responder = Callable[[str], list[str]]

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
                replies = self._responder(line)
                if replies:
                    conn.sendall("".join(reply + "\r\n" for reply in replies).encode())
