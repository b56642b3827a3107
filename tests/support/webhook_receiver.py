"""A real webhook receiver for tests and benchmarks: an HTTP(S) server on loopback.

Records every request (path, headers, body, arrival time) and answers what the test
scripts: a fixed :class:`Reply`, a queue of replies, or a function of the request (to fail
one event id twice, delay past the sender's timeout, redirect, answer 410 ...). HTTP/1.1
with keep-alive, one thread per connection, like a small production receiver.

Lifecycle: ``with WebhookReceiver() as receiver:`` starts it on a free port (or the port
given) and always stops it; :meth:`wait_for` blocks on a condition variable until enough
requests arrived or the deadline passes (no polling sleeps in tests).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.certs import TestPKI
from tests.support.tracked_connections import TracksConnections


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_seconds: float = 0.0  # answer this late (past the sender's timeout: a timeout)
    drip_seconds: float = 0.0  # send the answer (status line, headers, body) one byte every this many seconds


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    received_at: float  # time.time()

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")


Responder = Callable[[ReceivedRequest], Reply]
SIGNATURE_TOLERANCE_SECONDS = 300


def verify_signature(secret: str, headers: dict[str, str], body: bytes,
                     tolerance_seconds: float = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """Standard Webhooks verification written from the specification, independently of the
    sender's code: HMAC-SHA256 over ``{id}.{timestamp}.{body}`` with the base64-decoded
    secret, any of the space-separated ``v1,`` signatures, timestamp within tolerance."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    message_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance_seconds:
        return False
    expected = base64.b64encode(
        hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()).decode()
    offered = [part.split(",", 1)[1] for part in headers["webhook-signature"].split() if part.startswith("v1,")]
    return any(hmac.compare_digest(expected, signature) for signature in offered)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    # Buffer the answer and send status line, headers and body in one write: written
    # piecemeal, Nagle's algorithm holds the body until the sender's delayed ACK (~40 ms).
    wbufsize = 64 * 1024
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = ReceivedRequest(method="POST", path=self.path,
                                  headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                                  received_at=time.time())
        reply = self.server.receiver.record(request)
        if reply.delay_seconds:
            time.sleep(reply.delay_seconds)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            if reply.drip_seconds:
                self._drip(b"".join(self._headers_buffer) + b"\r\n" + reply.body, reply.drip_seconds)
                return
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True  # the sender gave up (timeout) and closed its end
            self.server.receiver.record_hangup()

    def _drip(self, answer: bytes, interval: float) -> None:
        """A slow-loris receiver: every read the sender makes gets one byte, just in time."""
        self._headers_buffer = []
        self.close_connection = True
        for index in range(len(answer)):
            self.connection.sendall(answer[index:index + 1])
            time.sleep(interval)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(TracksConnections, ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver


class WebhookReceiver:
    def __init__(self, *, port: int = 0, pki: TestPKI | None = None, host: str = "127.0.0.1") -> None:
        self._requested_port = port
        self._pki = pki
        self._host = host
        self._condition = threading.Condition()
        self._requests: list[ReceivedRequest] = []
        self._hangups: list[float] = []
        self._scripted: deque[Reply] = deque()
        self.responder: Responder | None = None
        self.default_reply = Reply()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> WebhookReceiver:
        server = _Server((self._host, self._requested_port), _Handler)
        server.receiver = self
        if self._pki is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(Path(self._pki.cert_file), Path(self._pki.key_file))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_open_connections()
            self._server = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    def url(self, path: str = "/hooks", host: str | None = None) -> str:
        scheme = "https" if self._pki is not None else "http"
        return f"{scheme}://{host or self._host}:{self.port}{path}"

    # -- behaviour --------------------------------------------------------------------------

    def reply_with(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, then with ``default_reply``."""
        with self._condition:
            self._scripted.extend(replies)

    def record(self, request: ReceivedRequest) -> Reply:
        with self._condition:
            self._requests.append(request)
            self._condition.notify_all()
            if self.responder is not None:
                return self.responder(request)
            return self._scripted.popleft() if self._scripted else self.default_reply

    def record_hangup(self) -> None:
        with self._condition:
            self._hangups.append(time.time())
            self._condition.notify_all()

    # -- observation ------------------------------------------------------------------------

    @property
    def hangups(self) -> list[float]:
        """When the sender closed a connection while an answer was still being sent (time.time())."""
        with self._condition:
            return list(self._hangups)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._condition:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 15.0,
                 where: Callable[[ReceivedRequest], bool] | None = None) -> list[ReceivedRequest]:
        """The requests (matching ``where``) once there are at least ``count``; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                matching = [r for r in self._requests if where is None or where(r)]
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} webhook requests within {timeout} s, got {len(matching)}")
                self._condition.wait(remaining)
