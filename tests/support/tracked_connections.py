"""A test server that can drop the connections it accepted, as a stopped real server does.

``socketserver``'s ``shutdown()`` only closes the listening socket: keep-alive connections it
already accepted go on being served, so a client would see a server that still answers. Mixed in
before a ``socketserver`` server class, :class:`TracksConnections` remembers every accepted
connection until it is shut down, and :meth:`close_open_connections` cuts the remaining ones.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class TracksConnections:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
