"""A cleartext IMAP proxy that rewrites a real server's answers into another server's quirks.

Put in front of a Dovecot without TLS, it makes that Dovecot behave as a server a test
cannot start here:

- ``strip_uidnext``: SELECT/EXAMINE answers lose their ``* OK [UIDNEXT n]`` line, as
  Courier-IMAP 5.0 answers (RFC 3501 allows it);
- ``mute_idle``: nothing the server says while the client is in IDLE reaches the client
  (a ``BYE`` excepted), as an IDLE that only polls (Cyrus without idled, Courier without
  its enhanced IDLE) looks within its polling period. What the server says after ``DONE``
  still arrives;
- ``refuse_examine``: every EXAMINE is answered ``NO`` with this text (a server that lets
  the user in but cannot open the mailbox: a corrupt index, a broken backend). It may be
  changed while connections are open.
- ``modseq_shift``: every modseq the server reports (``HIGHESTMODSEQ n``, ``MODSEQ (n)``)
  reaches the client lowered by this much, and every one the client sends (``CHANGEDSINCE
  n``, ``QRESYNC (uidvalidity n``) reaches the server raised by it: setting it while a
  client holds a modseq is a Dovecot whose HIGHESTMODSEQ went down after an index rebuild
  (same UIDVALIDITY, modseqs renumbered lower). It may be changed while connections are open.
- ``hide_fetch``: UID -> how many more ``FETCH`` answers for that UID to drop (the whole
  answer, literals included), as Exchange answers nothing for a UID that arrived a moment
  ago although ``UID SEARCH`` lists it. It may be changed while connections are open.
- ``hold_append``: the server's tagged answer to an ``APPEND`` is held back (never reaches
  the client; ``held_append`` is set when one was held), while the message itself is
  stored: a server slow to confirm an APPEND, or a client that dies before the answer
  comes. It may be changed while connections are open (it applies to answers still to come).

::

    client ──line──▶ proxy (notes IDLE / DONE) ──▶ server
    client ◀──────── proxy (drops lines by rule) ◀── server      literals pass untouched

Lifecycle: ``with ImapFilterProxy(port, ...) as proxy:`` listens on a free loopback port,
two threads per connection, and closes every connection on exit.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_UIDNEXT = re.compile(rb"^\* OK \[UIDNEXT \d+\]", re.IGNORECASE)
_SERVER_MODSEQ = re.compile(rb"(HIGHESTMODSEQ |MODSEQ \()(\d+)", re.IGNORECASE)
_FETCH_UID = re.compile(rb"^\* \d+ FETCH \(.*?\bUID (\d+)", re.IGNORECASE)
_CLIENT_MODSEQ = re.compile(rb"(CHANGEDSINCE |QRESYNC \(\d+ )(\d+)", re.IGNORECASE)


def _shifted(pattern: re.Pattern[bytes], line: bytes, by: int) -> bytes:
    if not by:
        return line
    return pattern.sub(lambda m: m.group(1) + str(int(m.group(2)) + by).encode(), line)


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.idling = False
        self.examine_tags: set[bytes] = set()
        self.append_tags: set[bytes] = set()


class ImapFilterProxy:
    def __init__(self, target_port: int, *, strip_uidnext: bool = False, mute_idle: bool = False,
                 refuse_examine: str | None = None, modseq_shift: int = 0,
                 hide_fetch: dict[int, int] | None = None, hold_append: bool = False) -> None:
        self.target_port = target_port
        self.strip_uidnext = strip_uidnext
        self.mute_idle = mute_idle
        self.refuse_examine = refuse_examine
        self.modseq_shift = modseq_shift
        self.hide_fetch = dict(hide_fetch or {})
        self.hold_append = hold_append
        self.held_append = threading.Event()
        self.raised: list[bytes] = []  # client lines whose modseq was raised, as the client sent them
        self.dropped: list[bytes] = []  # every server line held back, in order
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]

    def __enter__(self) -> ImapFilterProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()
        with self._lock:
            for pair in self._pairs:
                for sock in (pair.client, pair.server):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._from_client, args=(pair,), daemon=True).start()
            threading.Thread(target=self._from_server, args=(pair,), daemon=True).start()

    def _from_client(self, pair: _Pair) -> None:
        with contextlib.suppress(OSError), pair.client.makefile("rb") as reader:
            for line in reader:
                words = line.split()
                if line.strip().upper() == b"DONE":
                    pair.idling = False
                elif len(words) == 2 and words[1].upper() == b"IDLE":
                    pair.idling = True
                elif len(words) > 1 and words[1].upper() == b"EXAMINE":
                    pair.examine_tags.add(words[0])
                elif len(words) > 1 and words[1].upper() == b"APPEND":
                    pair.append_tags.add(words[0])
                shifted = _shifted(_CLIENT_MODSEQ, line, self.modseq_shift)
                if shifted != line:
                    with self._lock:
                        self.raised.append(line)
                pair.server.sendall(shifted)
        with contextlib.suppress(OSError):
            pair.server.shutdown(socket.SHUT_WR)

    def _from_server(self, pair: _Pair) -> None:
        with contextlib.suppress(OSError), pair.server.makefile("rb") as reader:
            while line := reader.readline():
                line = _shifted(_SERVER_MODSEQ, line, -self.modseq_shift)
                if self._hides(line):
                    with self._lock:
                        self.dropped.append(line)
                    while (literal := _LITERAL.search(line)) is not None:  # the rest of the answer
                        reader.read(int(literal.group(1)))
                        line = reader.readline()
                    continue
                literal = _LITERAL.search(line)
                if literal is not None:  # the line and its literal go through as they are
                    pair.client.sendall(line + reader.read(int(literal.group(1))))
                    continue
                tag = line.split(b" ", 1)[0]
                if tag in pair.append_tags:
                    pair.append_tags.discard(tag)
                    if self.hold_append:
                        with self._lock:
                            self.dropped.append(line)
                        self.held_append.set()
                        continue
                if tag in pair.examine_tags:
                    pair.examine_tags.discard(tag)
                    if self.refuse_examine is not None:
                        line = tag + b" NO " + self.refuse_examine.encode() + b"\r\n"
                if self._drops(pair, line):
                    with self._lock:
                        self.dropped.append(line)
                    continue
                pair.client.sendall(line)
        with contextlib.suppress(OSError):
            pair.client.shutdown(socket.SHUT_WR)

    def _hides(self, line: bytes) -> bool:
        found = _FETCH_UID.match(line)
        if found is None:
            return False
        uid = int(found.group(1))
        with self._lock:
            if self.hide_fetch.get(uid, 0) <= 0:
                return False
            self.hide_fetch[uid] -= 1
            return True

    def _drops(self, pair: _Pair, line: bytes) -> bool:
        if self.strip_uidnext and _UIDNEXT.match(line):
            return True
        return (self.mute_idle and pair.idling and line.startswith(b"* ")
                and not line.upper().startswith(b"* BYE"))
