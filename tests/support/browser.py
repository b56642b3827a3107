"""A real headless browser for the pages a person sees: Debian's Chromium driven by Playwright.

``browser`` (session scope) launches ``/usr/bin/chromium`` (``IMAPLESS_TEST_CHROMIUM``), never a
browser Playwright would download. :func:`offline_page` opens a page whose network is limited
to the origins given, as on a machine in a VPC without internet access: every other request is
aborted and recorded in :attr:`OfflinePage.blocked`, so a test can assert that the page asked
for nothing outside (a CDN script, a web font). Dialogs (``alert``) are recorded, never shown,
so a test can assert that none fired.

Screenshots go to ``test-artifacts/screenshots`` (``IMAPLESS_SCREENSHOTS_DIR``), a predictable
folder CI keeps as artifacts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("IMAPLESS_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("IMAPLESS_SCREENSHOTS_DIR", ROOT / "test-artifacts" / "screenshots"))
# Chromium's own background traffic (component updates, safe browsing, sync) would be refused by a
# closed network many times at start; --no-sandbox because CI runs the tests as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (scripts/install-browser.sh)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class OfflinePage:
    page: Page
    blocked: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextmanager
def offline_page(browser: Browser, *allowed_urls: str, width: int = 1280, height: int = 900) -> Iterator[OfflinePage]:
    """A page that may reach only the origins of ``allowed_urls`` (and ``data:``/``blob:`` URLs)."""
    allowed = {_origin(url) for url in allowed_urls}
    context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
    page = context.new_page()
    opened = OfflinePage(page)

    def gate(route: Route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or _origin(url) in allowed:
            route.continue_()
        else:
            opened.blocked.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", gate)

    def on_dialog(dialog) -> None:
        opened.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda message: opened.console_errors.append(message.text) if message.type == "error" else None)
    try:
        yield opened
    finally:
        context.close()
