"""Helpers for the mailbox and message API tests: register a real server's user, reach its
mailbox directly (to set up and to check what the API did), and build test messages."""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

from imapclient import IMAPClient

from tests.support.fixtures import MailUser
from tests.support.mailservers import HOSTNAME, ImapServer
from tests.support.messages import build_message


def register_account(api, server: ImapServer, user: MailUser) -> str:
    """Register ``user`` (IMAP over STARTTLS) and return the account id."""
    response = api.post("/v1/account", {
        "account": "acc-" + secrets.token_hex(6), "email": user.email, "name": "Test User",
        "imap": {"host": server.hostname, "port": server.imap_port, "secure": False,
                 "auth": {"user": user.email, "pass": user.password}}})
    assert response.status == 200, response.body
    return response.json["account"]


def direct_imap(server: ImapServer, user: MailUser) -> IMAPClient:
    """A logged-in IMAPS client for setting up and checking state outside the API."""
    context = ssl.create_default_context(cafile=str(server.pki.ca_file))
    client = IMAPClient(HOSTNAME, port=server.imaps_port, ssl=True, ssl_context=context, timeout=10)
    client.login(user.email, user.password)
    return client


def make_message(subject: str = "", *, sender: str = "Alice <alice@example.test>", to: str = "bob@example.test",
                 body: str = "Hello.\n", date: datetime | None = None, message_id: str | None = None,
                 html: str | None = None, attachments: list[tuple[str, str, bytes]] = ()) -> bytes:
    return build_message(sender=sender, to=to, subject=subject or f"test {secrets.token_hex(4)}", body=body,
                         date=format_datetime(date or datetime.now(UTC)),
                         message_id=message_id or make_msgid(domain="example.test"), html=html,
                         attachments=attachments)


def fill(client: IMAPClient, folder: str, messages: list[bytes], flags: tuple = ()) -> list[int]:
    """APPEND each message; return the new UIDs in order."""
    uids = []
    for raw in messages:
        answer = client.append(folder, raw, flags=flags)
        uids.append(int(answer.split(b"]")[0].split()[-1]))
    return uids


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


class ControlledProxy:
    """A TCP proxy in front of a mail server whose answers a test can hold back.

    ``mode``: "pass" forwards everything; "stall" forwards what the client sends but holds
    every byte the server answers (a server that stopped answering); "trickle" lets the
    answer through one byte every ``trickle_seconds`` (a server that answers too slowly to
    ever finish). ``drop_all()`` closes every connection, as a server restart would;
    ``blackhole()`` silently stops the connections open now (no FIN, no RST: a NAT gateway that
    forgot the flow) while new ones pass.
    """

    def __init__(self, target_port: int, trickle_seconds: float = 0.2) -> None:
        import socket
        import threading

        self.target_port = target_port
        self.trickle_seconds = trickle_seconds
        self.mode = "pass"
        self.connections = 0
        self._pairs: list[tuple] = []
        self._blackholed: set[int] = set()  # id() of the client side of each silenced pair
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self.connections += 1
                self._pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server, False, id(client)), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True, id(client)), daemon=True).start()

    def _pump(self, source, sink, from_server: bool, pair: int) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if pair in self._blackholed:
                    continue  # swallowed: neither side hears anything again
                while from_server and self.mode == "stall" and not self._closed.is_set():
                    time.sleep(0.01)
                if from_server and self.mode == "trickle":
                    for index in range(len(data)):
                        sink.sendall(data[index:index + 1])
                        time.sleep(self.trickle_seconds)
                else:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass

    def blackhole(self) -> None:
        with self._lock:
            self._blackholed.update(id(client) for client, _ in self._pairs)

    def drop_all(self) -> None:
        import socket

        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self.drop_all()
