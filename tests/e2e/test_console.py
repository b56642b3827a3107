"""The operators' console at /admin, in a real browser, against the whole local system.

`make run` (API, watcher, dispatcher, moto), the session's Dovecot and a webhook receiver;
Chromium may reach the API's origin only, so a page asking for anything outside (a CDN, a
font) shows up in ``blocked``. One system for the module, one browser for the session; each
test signs in on its own page (a new browser context: the token lives in sessionStorage).
Screenshots of every page go to test-artifacts/screenshots/console-*.png.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests

from tests.integration.watcher_support import FAST_WATCHER_ENVIRONMENT
from tests.support.browser import OfflinePage, offline_page
from tests.support.fixtures import MAIL_DOMAIN
from tests.support.local_system import banner_token, make_run, system_environment
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

HOSTILE = "<img src=x onerror=alert(1)>"
PHONE_WIDTH = 390
WAIT_MS = 30_000


@dataclass
class ConsoleSystem:
    base_url: str
    admin_token: str
    output: Path
    dovecot: object

    @property
    def console_url(self) -> str:
        return f"{self.base_url}/admin"

    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return requests.request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)

    def new_user(self) -> tuple[str, str]:
        email, password = f"c-{secrets.token_hex(5)}@{MAIL_DOMAIN}", secrets.token_urlsafe(12)
        self.dovecot.add_user(email, password)
        return email, password

    def register(self, email: str, password: str, **fields) -> str:
        account = fields.pop("account", "c-" + secrets.token_hex(4))
        answer = self.api("POST", "/v1/account", json={
            "account": account, "email": email, **fields,
            "imap": {"host": self.dovecot.hostname, "port": self.dovecot.imap_port, "secure": False,
                     "auth": {"user": email, "pass": password}}})
        assert answer.status_code == 200, answer.text
        return account


@pytest.fixture(scope="module")
def system(dovecot, tmp_path_factory) -> Iterator[ConsoleSystem]:
    directory = tmp_path_factory.mktemp("console")
    environment = {**system_environment(directory / "data"),
                   **{k: v for k, v in FAST_WATCHER_ENVIRONMENT.items() if k != "IMAPLESS_LOG_LEVEL"}}
    with make_run(directory / "data", directory / "output.log", environment) as (base_url, _):
        yield ConsoleSystem(base_url, banner_token(directory / "output.log"), directory / "output.log", dovecot)


@contextmanager
def signed_in(browser, system: ConsoleSystem, token: str | None = None, width: int = 1280) -> Iterator[OfflinePage]:
    with offline_page(browser, system.base_url, width=width) as opened:
        page = opened.page
        page.goto(system.console_url)
        page.fill("#token", token or system.admin_token)
        page.click("#sign-in-form button[type=submit]")
        page.wait_for_selector("#view[data-page=accounts] h1", timeout=WAIT_MS)
        yield opened
        # Every page of every test: nothing outside the API's origin, no dialog, no CSP violation.
        assert opened.blocked == []
        assert opened.dialogs == []
        assert [e for e in opened.console_errors if "Content Security Policy" in e] == []


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_console_is_served_with_a_strict_policy_and_a_token_signs_in_and_out(browser, system):
    # Given the console's page and files, served by the API itself
    page_answer = requests.get(system.console_url, timeout=10)
    assert page_answer.status_code == 200 and page_answer.headers["content-type"].startswith("text/html")
    for asset in ["main.js", "api.js", "dom.js", "router.js", "accounts.js", "console.css"]:
        answer = requests.get(f"{system.console_url}/{asset}", timeout=10)
        assert answer.status_code == 200, asset
        assert answer.headers["x-content-type-options"] == "nosniff"
    # Then every answer forbids inline script and style, framing and referrers
    policy = page_answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    assert page_answer.headers["x-frame-options"] == "DENY"
    assert page_answer.headers["referrer-policy"] == "no-referrer"
    missing = requests.get(f"{system.console_url}/..%2Fapp.py", timeout=10)
    assert missing.status_code in (403, 404) and "chalice" not in missing.text.lower()

    with offline_page(browser, system.base_url) as opened:
        page = opened.page
        page.goto(system.console_url)
        page.wait_for_selector("#sign-in:not([hidden])")
        assert not page.is_visible("#sign-out")
        opened.screenshot("console-sign-in")
        # When a wrong token is given, the API's refusal shows in the form
        page.fill("#token", "not-a-token")
        page.click("#sign-in-form button[type=submit]")
        page.wait_for_selector("#sign-in-error:not([hidden])")
        assert "Unauthorized" in page.text_content("#sign-in-error")
        # When the admin token is given, the accounts page shows; the token is in no URL
        page.fill("#token", system.admin_token)
        page.click("#sign-in-form button[type=submit]")
        page.wait_for_selector("#view[data-page=accounts] h1")
        assert system.admin_token not in page.url
        assert page.evaluate("sessionStorage.getItem('imapless.token')") == system.admin_token
        # When signing out, the token is gone and the sign-in form is back
        page.click("#sign-out")
        page.wait_for_selector("#sign-in:not([hidden])")
        assert page.evaluate("sessionStorage.length") == 0
        assert opened.blocked == [] and opened.dialogs == []
    # ... and no log line repeats the token (the banner printed it once, at start)
    assert system.output.read_text().count(system.admin_token) == 1


def test_adding_an_account_shows_the_servers_refusal_then_the_connected_account_and_its_mail(browser, system):
    email, password = system.new_user()
    account = "c-" + secrets.token_hex(4)
    with signed_in(browser, system) as opened:
        page = opened.page
        # Given the add form, filled with a wrong password
        page.click("#show-add")
        page.fill("#add-account [name=account]", account)
        page.fill("#add-account [name=name]", HOSTILE)
        page.fill("#add-account [name=email]", email)
        page.fill("#add-account [name=host]", system.dovecot.hostname)
        page.fill("#add-account [name=port]", str(system.dovecot.imap_port))
        page.uncheck("#add-account [name=secure]")
        page.fill("#add-account [name=user]", email)
        page.fill("#add-account [name=pass]", "wrong-" + password)
        # When it is verified, then added
        page.click("#verify")
        page.wait_for_selector("#add-account [data-verdict=IMAP]")
        assert "AuthenticationFailed" in page.text_content("#add-account [data-verdict=IMAP]")
        page.click("#add")
        # Then the form shows the API's code for a refused login
        page.wait_for_selector("#add-account .error .code")
        assert page.text_content("#add-account .error .code") == "AuthenticationFailed"
        opened.screenshot("console-add-account")

        # When the right password is given, the account's page opens and follows the watcher to connected
        page.fill("#add-account [name=pass]", password)
        page.click("#add")
        page.wait_for_selector("#account-header [data-state=connected]", timeout=WAIT_MS)
        # ... its hostile name is text, not markup
        assert page.text_content("#account-title") == HOSTILE
        assert page.locator("img[src=x]").count() == 0

        # When a message with a hostile subject and HTML arrives, it is listed as text
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = f"Eve <eve@{MAIL_DOMAIN}>", email, HOSTILE
        message.set_content("plain part: hello from the console test")
        message.add_alternative(f"<p>html part</p>{HOSTILE}<script>alert(2)</script>", subtype="html")
        system.dovecot.deliver(email, message.as_bytes())
        page.reload()
        page.wait_for_selector("#messages .subject", timeout=WAIT_MS)
        assert page.text_content("#messages .subject") == HOSTILE
        assert "INBOX" in page.text_content("#folders")
        # ... and opening it shows the text part, or sanitized HTML in a frame that runs no script
        page.click("#messages .subject")
        page.wait_for_selector("#message-view")
        frames = page.locator("#message-view iframe")
        if frames.count():
            assert frames.get_attribute("sandbox") == ""
        else:
            assert "hello from the console test" in page.text_content("#message-view .message-text")
        assert page.locator("#account-header img, #messages img, #message-view img").count() == 0
        opened.screenshot("console-account")

        # The accounts list: the account with its state, its name as text; the filter narrows it
        page.goto(f"{system.console_url}#/accounts")
        page.wait_for_selector(f"#accounts tr[data-account='{account}']")
        row = page.locator(f"#accounts tr[data-account='{account}']")
        assert HOSTILE in row.text_content() and "connected" in row.text_content()
        page.select_option("#state-filter", "authenticationError")
        assert page.locator(f"#accounts tr[data-account='{account}']").count() == 0
        page.select_option("#state-filter", "")
        page.fill("#search", email)
        assert page.locator("#accounts tbody tr").count() == 1
        page.fill("#search", "")
        opened.screenshot("console-accounts")

        # At phone width, the accounts list and the account page fit the screen
        page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
        assert no_horizontal_overflow(page)
        opened.screenshot("console-phone-accounts")
        page.click(f"#accounts tr[data-account='{account}'] a")
        page.wait_for_selector("#messages .subject", timeout=WAIT_MS)
        assert no_horizontal_overflow(page)
        opened.screenshot("console-phone-account")


def test_pausing_and_deleting_an_account_from_its_page(browser, system):
    email, password = system.new_user()
    account = system.register(email, password)
    with signed_in(browser, system) as opened:
        page = opened.page
        page.goto(f"{system.console_url}#/account/{account}")
        page.wait_for_selector("#pause-account")
        # When paused, the API has imap.disabled and the page says Resume
        page.click("#pause-account")
        page.wait_for_selector("#pause-account:text('Resume')", timeout=WAIT_MS)
        assert system.api("GET", f"/v1/account/{account}").json()["imap"]["disabled"] is True
        # When deleted (asked twice), the account is gone and the list is back
        page.click("#delete-account")
        page.click("#account-header .confirm button.danger")
        page.wait_for_selector("#view[data-page=accounts] #account-list table, #no-accounts", timeout=WAIT_MS)
        assert system.api("GET", f"/v1/account/{account}").status_code == 404


def test_settings_set_the_webhook_show_the_secret_once_and_send_a_test_event(browser, system):
    with WebhookReceiver() as receiver, signed_in(browser, system) as opened:
        page = opened.page
        page.goto(f"{system.console_url}#/settings")
        page.wait_for_selector("#webhook-form")
        # When the URL is saved
        page.fill("#webhook-url", receiver.url())
        page.check("#webhooks-enabled")
        page.fill("#notify-headers", "List-Id, X-Priority")
        page.click("#save-settings")
        page.wait_for_selector("#settings-message .secret, #settings-message .success")
        saved = system.api("GET", "/v1/settings").json()
        assert (saved["webhooks"], saved["webhooksEnabled"], saved["notifyHeaders"]) == (
            receiver.url(), True, ["List-Id", "X-Priority"])
        # When a test event is sent, the receiver gets it and the page shows its answer
        page.click("#send-test")
        page.wait_for_selector("#test-result .success, #test-result .error", timeout=WAIT_MS)
        assert "Delivered" in page.text_content("#test-result") and "HTTP 200" in page.text_content("#test-result")
        assert json.loads(receiver.wait_for(1, timeout=10)[0].body)["event"] == "test"
        # When the secret is rotated, the new one is shown once
        page.click("#rotate-secret")
        page.wait_for_selector("#secret-once .secret-value")
        assert page.text_content("#secret-once .secret-value").startswith("whsec_")
        opened.screenshot("console-settings")
        page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
        assert no_horizontal_overflow(page)


def test_a_token_made_in_the_console_bound_to_one_account_sees_only_that_account(browser, system):
    mine = system.register(*system.new_user())
    other = system.register(*system.new_user())
    with signed_in(browser, system) as opened:
        page = opened.page
        page.goto(f"{system.console_url}#/tokens")
        page.wait_for_selector("#create-token")
        # When a token bound to one account is created, it is shown once
        page.fill("#token-description", HOSTILE)
        page.fill("#token-account", mine)
        page.click("#create-token button[type=submit]")
        page.wait_for_selector("#token-once .secret-value")
        bound = page.text_content("#token-once .secret-value")
        page.wait_for_selector("#tokens td:text('" + mine + "')")
        opened.screenshot("console-tokens")
        page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
        assert no_horizontal_overflow(page)
    # Then signed in with it, the accounts page lists that account only, and the other one's page is refused
    with signed_in(browser, system, token=bound) as opened:
        page = opened.page
        page.wait_for_selector("#accounts tbody tr")
        assert [row.get_attribute("data-account") for row in page.locator("#accounts tbody tr").all()] == [mine]
        page.goto(f"{system.console_url}#/account/{other}")
        page.wait_for_selector("#view .error")
        assert "Forbidden" in page.text_content("#view .error")
    # When revoked in the console, the token no longer works
    with signed_in(browser, system) as opened:
        page = opened.page
        page.goto(f"{system.console_url}#/tokens")
        token_id = next(t["id"] for t in system.api("GET", "/v1/tokens").json()["tokens"] if t.get("account") == mine)
        page.click(f"#tokens tr[data-token='{token_id}'] button.danger")
        page.click(f"#tokens tr[data-token='{token_id}'] .confirm button.danger")
        deadline = time.monotonic() + 10
        while system.api("GET", "/v1/accounts", token=bound).status_code != 401:
            assert time.monotonic() < deadline, "the revoked token still works"
            time.sleep(0.2)
