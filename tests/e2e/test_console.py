"""The operators' console at /admin, in a real browser, against the whole local system.

`make run` (API, watcher, dispatcher, moto), the session's Dovecot and a webhook receiver;
Chromium may reach the API's origin only, so a page asking for anything outside (a CDN, a
font) shows up in ``blocked``. One system for the module, one browser for the session; each
test signs in on its own page (a new browser context: the token lives in sessionStorage).
Screenshots of every page go to test-artifacts/screenshots/console-*.png.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
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
def signed_in(browser, system: ConsoleSystem, token: str | None = None, width: int = 1280,
              also_allowed: tuple[str, ...] = ()) -> Iterator[OfflinePage]:
    with offline_page(browser, system.base_url, *also_allowed, width=width) as opened:
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


STAGE = "/dev"


class _StagePrefixProxy(http.server.BaseHTTPRequestHandler):
    """API Gateway's stage prefix in front of the local API: /dev/x -> /x; anything else is 403."""

    upstream = ""
    seen: list[str] = []

    def _forward(self) -> None:
        self.seen.append(self.path)
        if not self.path.startswith(STAGE + "/"):
            self.send_response(403)
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        answer = requests.request(self.command, self.upstream + self.path[len(STAGE):], timeout=30,
                                  data=self.rfile.read(length) if length else None, allow_redirects=False,
                                  headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        self.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def staged_url(system) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Proxy", (_StagePrefixProxy,), {"upstream": system.base_url, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


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
        page.wait_for_selector("#account-list table, #no-accounts")
        assert page.get_attribute("#view", "data-render") == "1"  # once: a second one would eat a first click
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
    with signed_in(browser, system, token=bound) as bound_view:
        page = bound_view.page
        page.wait_for_selector("#accounts tbody tr")
        assert [row.get_attribute("data-account") for row in page.locator("#accounts tbody tr").all()] == [mine]
        # ... the admin pages are not offered (Activity and Deliveries show its own account's)
        assert page.locator("#nav a").all_text_contents() == ["Accounts", "Activity", "Deliveries"]
        # ... its own account's page sets the account's webhook URL and sends it a test event
        with WebhookReceiver() as receiver:
            page.click(f"#accounts tr[data-account='{mine}'] a")
            page.wait_for_selector("#account-webhook-url")
            page.fill("#account-webhook-url", receiver.url())
            page.click("#save-account-webhook")
            page.wait_for_selector("#account-webhook-result .secret, #account-webhook-result .success")
            page.click("#send-test")
            page.wait_for_selector("#test-result .success", timeout=WAIT_MS)
            received = json.loads(receiver.wait_for(1, timeout=10)[0].body)
            assert (received["event"], received["account"]) == ("test", mine)
        page.goto(f"{system.console_url}#/account/{other}")
        page.wait_for_selector("#view > .error")
        assert "Forbidden" in page.text_content("#view > .error")

        # When an admin revokes it in the console (asked twice)
        with signed_in(browser, system) as admin_view:
            admin_view.page.goto(f"{system.console_url}#/tokens")
            listed = system.api("GET", "/v1/tokens").json()["tokens"]
            token_id = next(t["id"] for t in listed if t.get("account") == mine)
            admin_view.page.click(f"#tokens tr[data-token='{token_id}'] button.danger")
            admin_view.page.click(f"#tokens tr[data-token='{token_id}'] .confirm button.danger")
            admin_view.page.wait_for_selector(f"#tokens tr[data-token='{token_id}']", state="detached")
        deadline = time.monotonic() + 10
        while system.api("GET", "/v1/accounts", token=bound).status_code != 401:
            assert time.monotonic() < deadline, "the revoked token still works"
            time.sleep(0.2)
        # Then the console signed in with it signs out at its next request, and says why
        page.goto(f"{system.console_url}#/accounts")
        page.wait_for_selector("#sign-in:not([hidden])")
        assert "refused the token" in page.text_content("#notice")
        assert page.evaluate("sessionStorage.length") == 0


def test_an_account_is_connected_through_an_oauth2_application_and_the_console_says_so(browser, system,
                                                                                      oauth2_server):
    # Given an OAuth2 application whose provider is the tests' authorization server (it consents at once)
    email, _ = system.new_user()
    created = system.api("POST", "/v1/oauth2", json={
        "name": "Test IdP", "provider": "generic", "clientId": oauth2_server.client.client_id,
        "clientSecret": oauth2_server.client.client_secret, "redirectUrl": f"{system.base_url}/oauth",
        "authorizationUrl": oauth2_server.base_url + "/authorize", "tokenUrl": oauth2_server.token_url,
        "scopes": ["mail"], "imap": {"host": system.dovecot.hostname, "port": system.dovecot.imap_port,
                                     "secure": False}})
    assert created.status_code == 200, created.text
    account = "c-oauth-" + secrets.token_hex(3)
    try:
        with signed_in(browser, system, also_allowed=(oauth2_server.base_url,)) as opened:
            page = opened.page
            # When the add form's OAuth2 part is filled and sent
            page.click("#show-add")
            page.wait_for_selector("#oauth-account")
            page.select_option("#oauth-account [name=oauthApp]", created.json()["id"])
            page.fill("#oauth-account [name=oauthAccount]", account)
            page.fill("#oauth-account [name=oauthEmail]", email)
            page.click("#oauth-account button[type=submit]")
            # Then the browser goes to the provider and back, and the console opens the new account's page
            page.wait_for_selector("#account-title", timeout=WAIT_MS)
            assert f"Account {account} authorized (new)" in page.text_content("#notice")
            assert "?" not in page.url  # the provider's answer is not left in the address bar
            assert system.api("GET", f"/v1/account/{account}").json()["oauth2"]["auth"] == {"user": email}
    finally:
        system.api("DELETE", f"/v1/account/{account}")
        assert system.api("DELETE", f"/v1/oauth2/{created.json()['id']}").status_code == 200


def test_behind_a_stage_prefix_every_request_stays_under_it(browser, system, staged_url):
    # Given the API behind a gateway that serves it under /dev only
    origin, seen = staged_url
    with offline_page(browser, origin) as opened:
        page = opened.page
        # When the console is opened there with a trailing slash, signed in, and an account page visited
        page.goto(f"{origin}{STAGE}/admin/")
        page.fill("#token", system.admin_token)
        page.click("#sign-in-form button[type=submit]")
        page.wait_for_selector("#view[data-page=accounts] h1")
        page.goto(f"{origin}{STAGE}/admin#/tokens")
        page.wait_for_selector("#tokens")
        # Then every file and API call was asked for under the prefix
        assert page.url == f"{origin}{STAGE}/admin#/tokens"
        assert {path.split("?")[0] for path in seen} >= {
            f"{STAGE}/admin/", f"{STAGE}/admin", f"{STAGE}/admin/main.js", f"{STAGE}/v1/accounts", f"{STAGE}/v1/tokens"}
        assert [path for path in seen if not path.startswith(STAGE + "/")] == []
        assert opened.blocked == [] and opened.dialogs == []
