"""/docs in a real browser without internet: Swagger UI and its files come from the API itself."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.integration.test_local_api_server import api_url, send, server_log  # noqa: F401 - fixtures
from tests.support.browser import offline_page


class _Urls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.urls.append(str(found[name]))
        self._in_script = tag == "script" and not found.get("src")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


@pytest.mark.timeout(120)
def test_the_docs_render_offline_from_the_apis_own_files(browser, api_url):  # noqa: F811 - the fixture
    host, port = api_url
    origin = f"http://{host}:{port}"

    # When a browser that can reach only the API opens /docs
    with offline_page(browser, origin) as opened:
        opened.page.goto(origin + "/docs")

        # Then Swagger UI renders the operations, having asked for nothing outside
        opened.page.get_by_text("List accounts", exact=True).first.wait_for(state="visible", timeout=30_000)
        assert opened.page.locator(".opblock").count() > 20
        opened.screenshot("docs-offline")
        assert opened.blocked == []
        assert opened.dialogs == []
        assert opened.console_errors == []  # no CSP violation, no failed load


def test_the_page_uses_relative_urls_and_no_inline_script(api_url):  # noqa: F811 - the fixture
    status, headers, body = send(*api_url, "GET", "/docs")

    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["content-security-policy"]
    page = _Urls()
    page.feed(body.decode())
    # Relative, so /<stage>/docs loads /<stage>/docs/assets/... behind API Gateway
    assert page.urls and all(re.match(r"^docs/assets/[\w.-]+\?v=[\w.]+$", url) for url in page.urls), page.urls
    assert page.inline_scripts == 0


@pytest.mark.parametrize(("name", "content_type"), [
    ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("swagger-ui.css", "text/css; charset=utf-8"),
    ("docs-init.js", "text/javascript; charset=utf-8"),
    ("favicon-32x32.png", "image/png"),
])
def test_each_asset_is_served_whole_with_its_type_and_cached_for_long(api_url, name, content_type):  # noqa: F811
    from chalicelib.services.docs_assets import read_asset

    status, headers, body = send(*api_url, "GET", f"/docs/assets/{name}?v=1", headers={"Accept": "*/*"})

    assert status == 200
    assert headers["content-type"] == content_type
    assert "max-age=31536000" in headers["cache-control"]
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(read_asset(name)[1]).hexdigest()
    if name.endswith(".png"):
        assert body.startswith(b"\x89PNG\r\n")


@pytest.mark.parametrize("name", ["index.html", "..%2Fsystem.py", "swagger-ui-bundle.js.map"])
def test_only_the_listed_assets_are_served(api_url, name):  # noqa: F811 - the fixture
    status, _, body = send(*api_url, "GET", f"/docs/assets/{name}")

    assert status == 404
    assert b'"code": "NotFound"' in body or b"RouteNotFound" in body


def test_the_package_carries_the_swagger_ui_version_the_page_names():
    from swagger_ui_bundle import swagger_ui_path

    from chalicelib.services.docs_assets import SWAGGER_UI_VERSION

    assert Path(str(swagger_ui_path)).name == f"swagger-ui-{SWAGGER_UI_VERSION}"
    assert f"swagger-ui-bundle-v2=={SWAGGER_UI_VERSION}" in (
        Path(__file__).resolve().parents[2] / "requirements.txt").read_text()
