"""A loopback IMAP server of the test's own that records the exact bytes clients send.

It speaks just enough IMAP4rev1 for our client to log in and send one command: a greeting,
CAPABILITY, LOGIN, SELECT/EXAMINE of an empty mailbox, an empty SEARCH answer, OK for the
rest. Literals are honoured the way a real server does: a synchronizing ``{n}`` gets a ``+``
continuation and then ``n`` octets are read as data, so a client that announces a literal
by mistake hangs here as it would against Dovecot.

Each command is recorded without its tag, literals inlined as sent (``{n}\\r\\n<octets>``).
"""

from __future__ import annotations

import re
import socket
import threading
from typing import Self

_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r\n$")
READ_TIMEOUT_SECONDS = 10.0


class ImapRecorder:
    def __init__(self, capabilities: str = "IMAP4rev1") -> None:
        self.capabilities = capabilities
        self.commands: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()

    def start(self) -> Self:
        thread = threading.Thread(target=self._accept, name="imap-recorder", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def sent(self, verb: bytes) -> list[bytes]:
        """Recorded commands (tag removed) whose verb, after an optional UID, is ``verb``."""
        return [command for command in self.commands
                if command.split(b" ", 2)[1 if command.startswith(b"UID ") else 0].upper() == verb]

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(READ_TIMEOUT_SECONDS)
        stream = conn.makefile("rwb", buffering=0)
        try:
            stream.write(f"* OK [CAPABILITY {self.capabilities}] recorder ready\r\n".encode())
            while not self._closed.is_set():
                command = self._read_command(stream)
                if command is None:
                    return
                tag, _, rest = command.partition(b" ")
                self.commands.append(rest)
                if not self._answer(stream, tag, rest):
                    return
        except OSError:
            return
        finally:
            conn.close()

    @staticmethod
    def _read_command(stream) -> bytes | None:
        command = b""
        while True:
            line = stream.readline()
            if not line:
                return None
            command += line
            literal = _LITERAL.search(line)
            if literal is None:
                return command[:-2] if command.endswith(b"\r\n") else command
            if not literal.group(2):
                stream.write(b"+ go ahead\r\n")
            command += stream.read(int(literal.group(1)))

    def _answer(self, stream, tag: bytes, command: bytes) -> bool:
        words = command.split(b" ")
        verb = (words[1] if words[0].upper() == b"UID" and len(words) > 1 else words[0]).upper()
        untagged = {
            b"CAPABILITY": [f"* CAPABILITY {self.capabilities}".encode()],
            b"SELECT": [b"* 0 EXISTS", b"* OK [UIDVALIDITY 7] ok", b"* OK [UIDNEXT 1] ok"],
            b"EXAMINE": [b"* 0 EXISTS", b"* OK [UIDVALIDITY 7] ok", b"* OK [UIDNEXT 1] ok"],
            b"SEARCH": [b"* SEARCH"],
            b"LOGOUT": [b"* BYE recorder closing"],
        }.get(verb, [])
        code = b"[READ-ONLY] " if verb == b"EXAMINE" else b""
        stream.write(b"".join(line + b"\r\n" for line in untagged) + tag + b" OK " + code + b"done\r\n")
        return verb != b"LOGOUT"
