"""An SMTP server of a test's own on loopback: accepts every command and records what it heard.

For tests that must show that *nothing* is sent to a server: it records every connection
and every command line (a message body only as the count of DATA transactions), so "no
connection at all" is a checkable fact, stronger than "no message in some mailbox".
``auth=True`` offers ``AUTH PLAIN`` and takes any credentials (an account may then send
through it, with ``tls.allowPlaintextAuth``); :attr:`messages` counts the messages taken.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self

_REPLIES = {b"EHLO": b"250-sink\r\n250 8BITMIME\r\n", b"HELO": b"250 sink\r\n", b"DATA": b"354 go on\r\n",
            b"QUIT": b"221 bye\r\n"}


class SmtpSink:
    def __init__(self, *, auth: bool = False) -> None:
        self.auth = auth
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        self.commands: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    @property
    def messages(self) -> int:
        """Messages the sink took (DATA transactions)."""
        with self._lock:
            return sum(1 for command in self.commands if command.upper() == "DATA")

    def _reply(self, verb: bytes) -> bytes:
        if self.auth and verb == b"EHLO":
            return b"250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
        if self.auth and verb == b"AUTH":
            return b"235 2.7.0 accepted\r\n"
        return _REPLIES.get(verb, b"250 ok\r\n")

    def _talk(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"220 sink ESMTP\r\n")
            in_data = False
            for line in lines:
                if in_data:
                    if line.rstrip(b"\r\n") == b".":
                        in_data = False
                        connection.sendall(b"250 queued\r\n")
                    continue
                verb = line.split(b" ", 1)[0].strip().upper()
                with self._lock:
                    self.commands.append(line.decode("latin-1").rstrip("\r\n"))
                connection.sendall(self._reply(verb))
                in_data = verb == b"DATA"
                if verb == b"QUIT":
                    return
