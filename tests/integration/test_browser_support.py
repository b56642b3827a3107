"""The browser the page tests rely on: Debian's Chromium, with the network limited to the origins a test allows."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.support.browser import offline_page

PAGE = (b"<!doctype html><title>probe</title>"
        b"<script src='https://cdn.example.net/lib.js'></script><p id=ok>local text</p>")


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def local_site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_page_reaches_only_the_allowed_origin(browser, local_site):
    with offline_page(browser, local_site) as opened:
        opened.page.goto(local_site + "/")
        assert opened.page.text_content("#ok") == "local text"
        assert opened.blocked == ["https://cdn.example.net/lib.js"]
        assert opened.dialogs == []
