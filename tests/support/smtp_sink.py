"""An SMTP server of a test's own on loopback: accepts every command and records what it heard.

For tests that must show that *nothing* is sent to a server: it records every connection
and every command line (a message body only as the count of DATA transactions), so "no
connection at all" is a checkable fact, stronger than "no message in some mailbox".
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self

_REPLIES = {b"EHLO": b"250-sink\r\n250 8BITMIME\r\n", b"HELO": b"250 sink\r\n", b"DATA": b"354 go on\r\n",
            b"QUIT": b"221 bye\r\n"}


class SmtpSink:
    def __init__(self) -> None:
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
                connection.sendall(_REPLIES.get(verb, b"250 ok\r\n"))
                in_data = verb == b"DATA"
                if verb == b"QUIT":
                    return
