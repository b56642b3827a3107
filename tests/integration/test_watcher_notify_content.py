"""notifyText / notifyTextSize / notifyHeaders against real Dovecot and the real watcher.

The watcher reads the settings through its cache (0.2 s here), so each test changes them
through the API while the watcher runs, as an operator would.

Dovecot only: what the events carry is decided after the fetch, the same on every family
(test_watcher_events.py runs the event scenario on each family).
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.integration.watcher_support import register_account, running_watcher

NOTIFY_KEYS = {"notifyText": None, "notifyTextSize": None, "notifyHeaders": None}
SHORT_CACHE = {"IMAPLESS_WEBHOOK_CONFIG_CACHE_SECONDS": "0.2"}
SETTINGS_REACH_WATCHER_SECONDS = 0.5

ALTERNATIVE = (
    b"From: Sender <sender@example.test>\r\n"
    b"To: someone@example.test\r\n"
    b"Subject: =?iso-8859-1?q?Caf=E9_menu?=\r\n"
    b"X-Custom: first\r\n"
    b"X-Custom: second\r\n"
    b"X-Other: not asked for\r\n"
    b"Message-ID: <notify-1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Caf=E9 au lait, cr=E8me br=FBl=E9e.=\r\n"
    b" Same line.\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + base64.encodebytes("<p>Caf\u00e9 \u2615</p>".encode()).replace(b"\n", b"\r\n")
    + b"--b1--\r\n")


def plain_message(subject: str, body: bytes) -> bytes:
    return (b"From: sender@example.test\r\nTo: someone@example.test\r\nSubject: " + subject.encode()
            + b"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body)


@pytest.fixture
def notify_settings(api):
    """Sets the notify* settings through the API; puts them back to unset afterwards."""

    def change(**values) -> None:
        response = api.post("/v1/settings", values)
        assert response.status == 200, response.body

    yield change
    change(**NOTIFY_KEYS)


def watched_account(api, dovecot, make_mail_user, events, prefix, watcher, name: str):
    user = make_mail_user()
    account = prefix + name
    register_account(api, dovecot, user, account)
    events.wait_for(lambda ev: events.of(account, "accountInitialized"), what="accountInitialized\n"
                    + watcher.log_text())
    return user, account


def next_message_new(events, account, count: int):
    events.wait_for(lambda ev: len(events.of(account, "messageNew")) == count, what=f"messageNew #{count}")
    return events.of(account, "messageNew")[count - 1]


def test_text_and_headers_follow_the_settings(api, dovecot, make_mail_user, events, prefix, notify_settings):
    # Given: notifyText on and two headers asked for, one of them repeated in the message
    notify_settings(notifyText=True, notifyHeaders=["X-Custom", "subject"])
    with running_watcher(events, prefix, prefix + "ns", extra_env=SHORT_CACHE) as watcher:
        user, account = watched_account(api, dovecot, make_mail_user, events, prefix, watcher, "text")

        # When: a multipart/alternative message arrives (iso-8859-1 quoted-printable + utf-8 base64)
        dovecot.deliver(user.email, ALTERNATIVE)
        event = next_message_new(events, account, 1)

        # Then: both texts are decoded, whole, beside the listing's text id and sizes
        text = event.data["text"]
        assert text["plain"] == "Caf\u00e9 au lait, cr\u00e8me br\u00fbl\u00e9e. Same line."
        assert text["html"] == "<p>Caf\u00e9 \u2615</p>"
        assert text["hasMore"] is False
        assert text["id"] and text["encodedSize"]["plain"] > 0
        # Then: exactly the asked headers, lowercased, decoded, every value in order
        assert event.data["headers"] == {"x-custom": ["first", "second"], "subject": ["Caf\u00e9 menu"]}
        assert event.data["subject"] == "Caf\u00e9 menu"

        # When: notifyTextSize becomes 20 bytes and a long message arrives
        notify_settings(notifyTextSize=20)
        watcher_sees_settings()
        dovecot.deliver(user.email, plain_message("long", "\u00e9t\u00e9 ".encode() * 200))
        event = next_message_new(events, account, 2)

        # Then: the text is cut to 20 bytes of UTF-8 on a character boundary, and says so
        assert event.data["text"]["plain"] == "\u00e9t\u00e9 \u00e9t\u00e9 \u00e9t\u00e9 \u00e9"
        assert len(event.data["text"]["plain"].encode()) <= 20
        assert event.data["text"]["hasMore"] is True
        assert "html" not in event.data["text"]

    # Then: the messages were only peeked at
    assert all("\\Seen" not in e.data["flags"] for e in events.of(account, "messageNew"))


def test_text_is_cut_to_keep_the_event_within_the_sqs_limit(api, dovecot, make_mail_user, events, prefix,
                                                           notify_settings):
    # Given: notifyText on without a size of its own
    notify_settings(notifyText=True)
    with running_watcher(events, prefix, prefix + "ns", extra_env=SHORT_CACHE) as watcher:
        user, account = watched_account(api, dovecot, make_mail_user, events, prefix, watcher, "big")

        # When: a message with 600 KB of text (JSON escaping makes it bigger still) arrives
        body = b'"quoted" \\ line\r\n' * 34_000
        dovecot.deliver(user.email, plain_message("big", body))
        event = next_message_new(events, account, 1)

        # Then: it arrived through SQS, under 256 KiB, with as much text as fits
        assert len(event.to_json().encode()) < 256 * 1024
        plain = event.data["text"]["plain"]
        assert len(plain) > 150_000
        # (the first 16 KiB came with the listing FETCH, the rest in a second one: no seam)
        assert plain == body.decode().replace("\r\n", "\n")[:len(plain)]
        assert event.data["text"]["hasMore"] is True


def test_without_the_settings_events_carry_no_text_or_headers(api, dovecot, make_mail_user, events, prefix,
                                                             notify_settings):
    # Given: text and headers on, then switched off while the watcher runs
    notify_settings(notifyText=True, notifyHeaders=["*"])
    with running_watcher(events, prefix, prefix + "ns", extra_env=SHORT_CACHE) as watcher:
        user, account = watched_account(api, dovecot, make_mail_user, events, prefix, watcher, "off")
        dovecot.deliver(user.email, ALTERNATIVE)
        with_all = next_message_new(events, account, 1)
        assert with_all.data["headers"]["x-other"] == ["not asked for"]
        assert with_all.data["headers"]["mime-version"] == ["1.0"]

        notify_settings(**NOTIFY_KEYS)
        watcher_sees_settings()

        # When: a message arrives
        dovecot.deliver(user.email, ALTERNATIVE)
        event = next_message_new(events, account, 2)

    # Then: the listing entry only, as before the settings existed
    assert "headers" not in event.data
    assert set(event.data["text"]) == {"id", "encodedSize"}
    assert json.loads(event.to_json())["data"]["subject"] == "Caf\u00e9 menu"


def watcher_sees_settings() -> None:
    """Let the watcher's settings cache (0.2 s) expire: the one wait here that is a sleep, as the
    cache has no event to wait for."""
    time.sleep(SETTINGS_REACH_WATCHER_SECONDS)


@pytest.mark.parametrize("name", ["x custom", "x-custom:", "caf\u00e9", ""])
def test_a_header_name_that_cannot_be_one_is_refused(api, name):
    # When: notifyHeaders names something no header can be called
    response = api.post("/v1/settings", {"notifyHeaders": ["subject", name]})
    # Then: 400 naming the field, and nothing stored
    assert response.status == 400, response.body
    assert "notifyHeaders" in response.body.decode()
    assert api.get("/v1/settings").json["notifyHeaders"] != ["subject", name]
