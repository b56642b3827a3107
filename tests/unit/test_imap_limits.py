"""The read caps of chalicelib/imap/limits.py, fed with raw server bytes.

The budget is tested on an in-memory reader (what it refuses, and that it refuses before
reading); the transport mix-in on a real ``imaplib.IMAP4`` over a socket pair, as the
session's transports use it.
"""

from __future__ import annotations

import imaplib
import io
import socket
import threading

import pytest

from chalicelib.imap.limits import (
    RESPONSE_TOO_LARGE,
    BoundedReads,
    ReadLimits,
    ResponseBudget,
    ResponseTooLargeError,
    exceeded,
)
from chalicelib.settings import reset_settings

LIMITS = ReadLimits(max_line_bytes=100, max_literal_bytes=1000, max_response_bytes=1500,
                    max_body_response_bytes=5000)


def reader(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data), 16)


@pytest.mark.parametrize(("command", "body"), [
    (b"A1 UID FETCH 5 (BODY.PEEK[])\r\n", True),
    (b"A1 UID FETCH 5 (UID BODY.PEEK[1.2]<0.100>)\r\n", True),
    (b"A1 FETCH 1:20 (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)])\r\n", True),
    (b"a1 uid fetch 5 (body[text])\r\n", True),
    (b"A1 UID FETCH 5 (BINARY.PEEK[2])\r\n", True),
    (b"A1 FETCH 5 RFC822\r\n", True),
    (b"A1 FETCH 5 (RFC822.HEADER)\r\n", True),
    (b"A1 UID FETCH 5 (UID RFC822.SIZE FLAGS)\r\n", False),
    (b"A1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7)\r\n", False),
    (b"A1 UID FETCH 5 (BODYSTRUCTURE)\r\n", False),
    (b'A1 LIST "" "*"\r\n', False),
    (b"A1 IDLE\r\n", False),
    (b"DONE\r\n", False),
    # Only our command line counts: a message we APPEND may say anything.
    (b"Subject: A1 UID FETCH 5 (BODY[])\r\n", False),
    (b'A1 SEARCH TEXT "FETCH BODY[]"\r\n', False),
])
def test_content_fetches_get_the_body_cap_everything_else_the_response_cap(command, body):
    assert LIMITS.response_cap(command) == (5000 if body else 1500)


def test_lines_and_literals_within_the_caps_are_read():
    budget = ResponseBudget(LIMITS)
    budget.start(b"A1 UID FETCH 5 (BODY.PEEK[])\r\n")
    source = reader(b"* 1 FETCH (BODY[] {900}\r\n" + b"x" * 900 + b")\r\n")
    assert budget.read_line(source) == b"* 1 FETCH (BODY[] {900}\r\n"
    budget.admit_literal(900)
    assert source.read(900) == b"x" * 900
    assert budget.read_line(source) == b")\r\n"
    assert budget.remaining == 5000 - 25 - 900 - 3


def test_an_announced_literal_over_the_cap_is_refused_before_any_of_it_is_read():
    # Given: a server announcing far more than the literal cap, and streaming it
    budget = ResponseBudget(LIMITS)
    budget.start(b"A1 UID FETCH 5 (BODY.PEEK[])\r\n")
    source = reader(b"* 1 FETCH (BODY[] {900000000}\r\n" + b"x" * 10_000)
    budget.read_line(source)
    position = source.tell()
    # When / Then: refused on the announcement, and not a byte more is taken from the stream
    with pytest.raises(ResponseTooLargeError, match="900000000-byte literal") as refused:
        budget.admit_literal(900_000_000)
    assert refused.value.limit == 1000 and refused.value.setting == "IMAPLESS_IMAP_MAX_LITERAL_BYTES"
    assert source.tell() == position


def test_a_literal_within_its_cap_but_over_what_is_left_of_the_answer_is_refused():
    budget = ResponseBudget(LIMITS)
    budget.start(b'A1 LIST "" "*"\r\n')
    budget.admit_literal(1000)
    with pytest.raises(ResponseTooLargeError, match="more than 1500 bytes in one answer") as refused:
        budget.admit_literal(600)
    assert refused.value.setting == "IMAPLESS_IMAP_MAX_RESPONSE_BYTES"


def test_a_line_over_the_cap_is_refused_having_read_at_most_one_byte_past_it():
    budget = ResponseBudget(LIMITS)
    source = reader(b"* OK " + b"x" * 10_000 + b"\r\n")
    with pytest.raises(ResponseTooLargeError, match="line longer than 100 bytes"):
        budget.read_line(source)
    assert source.tell() == 101


def test_many_short_lines_are_refused_once_the_answer_passes_its_cap():
    # Given: a server that answers LIST with an endless stream of short lines
    budget = ResponseBudget(LIMITS)
    budget.start(b'A1 LIST "" "*"\r\n')
    source = reader(b'* LIST () "/" x\r\n' * 1000)
    # When / Then: the answer stops at 1500 bytes, and no more than that is read
    with pytest.raises(ResponseTooLargeError, match="1500 bytes in one answer"):
        while True:
            budget.read_line(source)
    assert source.tell() <= 1500 + 1


def test_each_command_starts_a_fresh_budget():
    budget = ResponseBudget(LIMITS)
    for _ in range(5):
        budget.start(b"A1 NOOP\r\n")
        budget.admit_literal(1000)  # 1000 of 1500, every time
    budget.start(b"A2 UID FETCH 1 (BODY.PEEK[])\r\n")
    for _ in range(5):
        budget.admit_literal(1000)  # 5000 of 5000
    with pytest.raises(ResponseTooLargeError) as refused:
        budget.admit_literal(1000)
    assert refused.value.setting == "IMAPLESS_IMAP_MAX_BODY_RESPONSE_BYTES"


def test_the_original_error_is_found_through_imaplibs_rewrapping():
    original = ResponseTooLargeError("a 9-byte literal", 8, "IMAPLESS_IMAP_MAX_LITERAL_BYTES")
    try:
        try:
            raise original
        except imaplib.IMAP4.abort as val:
            # what imaplib's _command_complete does (no ``from``: the chain is implicit)
            raise imaplib.IMAP4.abort(f"command: FETCH => {val}")  # noqa: B904
    except imaplib.IMAP4.abort as rewrapped:
        try:
            raise RuntimeError("a later translation") from None
        except RuntimeError as translated:
            assert exceeded(rewrapped) is original
            assert exceeded(translated) is original  # ``from None`` hides the chain, it does not cut it
    assert exceeded(imaplib.IMAP4.abort("socket error: EOF")) is None
    assert exceeded(None) is None


def test_the_api_error_is_a_502_with_the_stable_code_and_no_server_bytes():
    error = ResponseTooLargeError("a 900000000-byte literal", 1000, "IMAPLESS_IMAP_MAX_LITERAL_BYTES") \
        .mail_server_error("UID FETCH", status=502)
    assert (error.status, error.code) == (502, RESPONSE_TOO_LARGE)
    assert error.details == {"protocol": "imap", "limitBytes": 1000, "command": "UID FETCH"}
    assert "900000000" in error.message


# -- the transport mix-in on a real imaplib connection -------------------------------------------


class _Transport(BoundedReads, imaplib.IMAP4):
    """imaplib over one end of a socket pair, reading within the caps of the settings."""

    def __init__(self, sock: socket.socket) -> None:
        self._given = sock
        super().__init__("test.invalid", 143)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return self._given


def _serve(server: socket.socket, answer: bytes, sent: list[int]) -> None:
    """Greet, answer imaplib's CAPABILITY, then answer the next command with ``answer`` and
    stream filler until cut off."""
    try:
        server.sendall(b"* OK ready\r\n")
        tag = server.recv(4096).split(b" ", 1)[0]
        server.sendall(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
        server.recv(4096)
        server.sendall(answer)
        sent.append(len(answer))
        chunk = b"x" * 65536
        while sent[-1] < 64 * 1024 * 1024:
            server.sendall(chunk)
            sent[-1] += len(chunk)
    except OSError:
        pass
    finally:
        server.close()


@pytest.fixture
def hostile(monkeypatch):
    """A socket pair whose server end greets, then floods the answer to the first command."""
    monkeypatch.setenv("IMAPLESS_IMAP_MAX_LITERAL_BYTES", "100000")
    monkeypatch.setenv("IMAPLESS_IMAP_MAX_LINE_BYTES", "10000")
    monkeypatch.setenv("IMAPLESS_IMAP_MAX_RESPONSE_BYTES", "200000")
    monkeypatch.setenv("IMAPLESS_IMAP_MAX_BODY_RESPONSE_BYTES", "400000")
    reset_settings()
    started: list[threading.Thread] = []

    def start(answer: bytes) -> tuple[_Transport, list[int], threading.Thread]:
        client, server = socket.socketpair()
        client.settimeout(5)
        sent: list[int] = []
        thread = threading.Thread(target=_serve, args=(server, answer, sent), daemon=True)
        thread.start()
        started.append(thread)
        return _Transport(client), sent, thread

    yield start
    reset_settings()
    for thread in started:
        thread.join(timeout=5)


@pytest.mark.parametrize("answer", [
    b"* 1 FETCH (UID 1 BODY[] {900000000}\r\n",  # a huge literal
    b"* LIST () \"/\" " ,                          # a line that never ends
    b"",                                           # ... nothing but filler, no CRLF ever
], ids=["literal", "endless-line", "no-crlf"])
def test_a_flooding_server_gets_its_connection_shut_and_a_clear_error(hostile, answer):
    # Given: imaplib on a transport with the caps, and a server flooding its answer
    transport, sent, server = hostile(answer)
    # When: a FETCH is sent and its answer read the way imapclient reads it
    transport.state = "SELECTED"
    with pytest.raises(imaplib.IMAP4.abort) as failure:
        transport._command_complete("FETCH", transport._command("FETCH", "1", "(BODY.PEEK[])"))
    # Then: the cause is the cap, the socket is shut (the flood stops), and little was read
    assert exceeded(failure.value) is not None
    with pytest.raises(OSError):
        transport.send(b"A9 NOOP\r\n")
    transport.shutdown()
    server.join(timeout=5)
    assert not server.is_alive() and sent[-1] < 64 * 1024 * 1024
