"""The console's Activity and Deliveries pages in a real browser, over the API process `make run` starts.

The API runs as a child process over HTTP against the session's moto; this test process
runs the webhook consumer (the ``webhooks`` harness) towards a loopback receiver. Chromium
may reach the API's origin only. Each test works as a token bound to a fresh account, so
what the pages count is exactly what the test delivered, whatever else the session logged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.integration.test_local_api_server import api_url, server_log  # noqa: F401 - fixtures
from tests.support.browser import OfflinePage, offline_page
from tests.support.webhook_receiver import Reply, WebhookReceiver

HOSTILE = "<img src=x onerror=alert(1)>"
PHONE_WIDTH = 390
WAIT_MS = 20_000


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def base_url(api_url) -> str:  # noqa: F811 - the fixture imported above
    host, port = api_url
    return f"http://{host}:{port}"


@pytest.fixture
def bound(api) -> Iterator[tuple[str, str]]:
    """A fresh account and an 'api' token bound to it."""
    account = f"con-{uuid.uuid4().hex[:8]}"
    response = api.post("/v1/account", {
        "account": account, "email": f"{account}@example.test", "verify": False,
        "imap": {"host": "127.0.0.1", "port": 1143, "auth": {"user": account, "pass": "secret"}}})
    assert response.status == 200, response.body
    token = api.post("/v1/tokens", {"description": "console", "scopes": ["api"], "account": account}).json["token"]
    yield account, token
    api.delete(f"/v1/account/{account}")


@contextmanager
def console_page(browser, base_url: str, token: str, page_hash: str, width: int = 1280) -> Iterator[OfflinePage]:
    with offline_page(browser, base_url, width=width) as opened:
        page = opened.page
        page.goto(f"{base_url}/admin")
        page.fill("#token", token)
        page.click("#sign-in-form button[type=submit]")
        page.wait_for_selector("#view h1", timeout=WAIT_MS)
        page.goto(f"{base_url}/admin{page_hash}")
        try:
            yield opened
        except Exception:
            print("console errors:", opened.console_errors, "text:", page.text_content("#view"))
            raise
        # Nothing outside the API's origin, no dialog, no policy violation
        assert opened.blocked == []
        assert opened.dialogs == []
        assert [e for e in opened.console_errors if "Content Security Policy" in e] == []


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_delivered_events_show_in_the_activity_charts(browser, base_url, webhooks, receiver, bound):
    # Given three new messages and one deletion of the account, delivered to the receiver
    account, token = bound
    webhooks.configure_with_secret(receiver.url())
    events = [webhooks.event(account, "messageNew") for _ in range(3)] + [webhooks.event(account, "messageDeleted")]
    webhooks.publish(*events)
    webhooks.run_until(lambda: len(receiver.requests) >= 4 and webhooks.queue_counts() == (0, 0))

    # When the operator opens the Activity page with the account's token
    with console_page(browser, base_url, token, "#/activity") as opened:
        page = opened.page
        page.wait_for_selector("#events-chart svg", timeout=WAIT_MS)
        # Then the events chart says what it counted, one bar segment per type and minute
        title = page.text_content("#events-chart svg > title")
        assert "4 events" in title and "messageNew 3" in title and "messageDeleted 1" in title
        counts = page.eval_on_selector_all("#events-chart rect.bar",
                                           "bars => bars.map(b => [b.dataset.key, Number(b.dataset.count)])")
        assert sum(n for _, n in counts) == 4 and {key for key, _ in counts} == {"messageNew", "messageDeleted"}
        # ... the deliveries chart counts four delivered, the figures say so, latency has numbers
        assert "delivered 4" in page.text_content("#deliveries-chart svg > title")
        assert page.text_content("#total-events .figure-value") == "4"
        assert page.text_content("#total-delivered .figure-value") == "4"
        assert page.text_content("#latency-p95 .figure-value") != "–"
        assert page.locator("#latency-chart circle.point").count() >= 1
        assert "Accounts by state: 1 account (new 1)" in page.text_content("#accounts-chart svg > title")
        # ... and the screen has no horizontal scroll
        assert no_horizontal_overflow(page)
        opened.screenshot("console-activity")

        # When one more event is delivered and the operator refreshes
        webhooks.publish(webhooks.event(account, "messageNew"))
        webhooks.run_until(lambda: len(receiver.requests) >= 5 and webhooks.queue_counts() == (0, 0))
        page.click("#refresh-activity")
        # Then the chart counts it
        page.wait_for_selector("#events-chart svg > title:text-matches('5 events')", state="attached", timeout=WAIT_MS)

        # When the 24-hour window is chosen
        page.click("[data-window='24h']")
        page.wait_for_selector("[data-window='24h'][aria-pressed='true']", timeout=WAIT_MS)
        page.wait_for_selector("#events-chart svg", timeout=WAIT_MS)
        # Then the same events are counted in 15-minute bars
        title = page.text_content("#events-chart svg > title")
        assert title.startswith("Events per 15 minutes") and "5 events" in title

    # And at phone width nothing scrolls sideways
    with console_page(browser, base_url, token, "#/activity", width=PHONE_WIDTH) as opened:
        opened.page.wait_for_selector("#events-chart svg", timeout=WAIT_MS)
        assert no_horizontal_overflow(opened.page)
        opened.screenshot("console-activity-phone")


def test_a_failed_delivery_is_highlighted_and_a_replay_delivers_it(browser, base_url, webhooks, receiver, bound,
                                                                  monkeypatch):
    # Given a receiver that answers two events with an error page holding markup, and one retry
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("IMAPLESS_WEBHOOK_RETRY_SCHEDULE", "1")
    reset_settings()
    account, token = bound
    webhooks.configure_with_secret(receiver.url())
    failing = [webhooks.event(account, "messageNew", subject=f"failing {n}") for n in range(2)]
    good = webhooks.event(account, "messageNew", subject="fine")
    receiver.responder = lambda request: Reply(status=500, body=HOSTILE.encode())
    webhooks.publish(*failing)
    webhooks.run_until(lambda: all(getattr(webhooks.delivery(e.id), "status", None) == "failed" for e in failing))
    receiver.responder = None
    webhooks.publish(good)
    webhooks.run_until(lambda: getattr(webhooks.delivery(good.id), "status", None) == "delivered")

    # ... and an entry logged before each POST was recorded (attempts, but no attempt log)
    import dataclasses
    from datetime import UTC, datetime

    from chalicelib.store import deliveries

    legacy = webhooks.event(account, "messageDeleted")
    entry = deliveries.apply_outcome(None, deliveries.LoggedEvent(legacy.id, account, "messageDeleted", legacy.date,
                                                                  legacy.to_json()),
                                     deliveries.DeliveryOutcome(status="delivered", run_id="original", attempted=True,
                                                                status_code=204), datetime.now(UTC))
    deliveries.put_deliveries([dataclasses.replace(entry, attempt_log=(), last_duration_ms=None)])

    # When the operator follows the Activity page's failed count
    with console_page(browser, base_url, token, "#/activity") as opened:
        page = opened.page
        page.wait_for_selector("#total-failed", timeout=WAIT_MS)
        assert page.text_content("#total-failed .figure-value") == "2"
        page.click("#total-failed")
        # Then the delivery log opens on the failed events only
        page.wait_for_selector("#deliveries tbody tr", timeout=WAIT_MS)
        assert page.input_value("#delivery-filters select[name=status]") == "failed"
        shown = page.eval_on_selector_all("#deliveries tbody tr", "rows => rows.map(r => r.dataset.id)")
        assert sorted(shown) == sorted(e.id for e in failing)

    with console_page(browser, base_url, token, "#/deliveries") as opened:
        page = opened.page
        page.wait_for_selector("#deliveries tbody tr", timeout=WAIT_MS)
        # Then both failed events are marked dead-lettered, the delivered one is not
        dead = page.eval_on_selector_all("#deliveries tr.dead", "rows => rows.map(r => r.dataset.id)")
        assert sorted(dead) == sorted(e.id for e in failing)
        assert "dead-lettered" in page.text_content(f"tr[data-id='{failing[0].id}'] .pill")
        assert page.get_attribute(f"tr[data-id='{good.id}']", "class") == "delivery"
        # ... and each attempt shows its status code, duration and the receiver's answer, as text
        page.click(f"tr[data-id='{failing[0].id}'] summary")
        answers = page.locator(f"tr[data-id='{failing[0].id}'] pre.answer")
        # (one or two POSTs: a first attempt later than the one 1 s retry slot is the last)
        assert answers.count() in (1, 2) and answers.first.text_content() == HOSTILE
        assert page.locator("#deliveries img").count() == 0
        assert "500" in page.text_content(f"tr[data-id='{failing[0].id}'] .attempt strong")
        assert "ms" in page.text_content(f"tr[data-id='{failing[0].id}'] .attempt")
        page.click(f"tr[data-id='{legacy.id}'] summary")
        assert "204" in page.text_content(f"tr[data-id='{legacy.id}'] .attempt strong")
        assert "not recorded one by one" in page.text_content(f"tr[data-id='{legacy.id}'] .attempt")
        assert no_horizontal_overflow(page)
        opened.screenshot("console-deliveries")

        # When the first is replayed on its own, and the rest of the failures by time range
        before = len(receiver.requests)
        page.click(f"tr[data-id='{failing[0].id}'] button.replay-one")
        page.wait_for_selector(f"tr[data-id='{failing[0].id}'] .replay-status .success", timeout=WAIT_MS)
        page.select_option("#delivery-filters select[name=status]", "failed")
        page.fill("#delivery-filters input[name=since]", "2020-01-01T00:00:00")  # outside retention: refused
        page.click("#replay-range")
        page.click("text=Yes, replay matching events")
        page.wait_for_selector("#range-result .error", timeout=WAIT_MS)
        assert "since" in page.text_content("#range-result")
        page.evaluate("""() => {
            const input = document.querySelector("#delivery-filters input[name=since]");
            const start = new Date(Date.now() - 3600 * 1000);
            start.setMinutes(start.getMinutes() - start.getTimezoneOffset());
            input.value = start.toISOString().slice(0, 19);
        }""")
        page.click("#replay-range")
        page.click("text=Yes, replay matching events")
        page.wait_for_selector("#range-result .success", timeout=WAIT_MS)
        assert page.text_content("#range-result .success").startswith("1 events queued again")

        # Then the receiver gets both again, and the log says delivered
        webhooks.run_until(lambda: all(getattr(webhooks.delivery(e.id), "status", None) == "delivered"
                                       for e in failing))
        assert sorted(r.webhook_id for r in receiver.requests[before:]) == sorted(e.id for e in failing)
        page.select_option("#delivery-filters select[name=status]", "")
        page.click("#delivery-filters button[type=submit]")
        page.wait_for_selector(f"tr[data-id='{failing[0].id}'][data-status='delivered']", timeout=WAIT_MS)
        assert page.locator("#deliveries tr.dead").count() == 0

    # And at phone width the log has no sideways scroll
    with console_page(browser, base_url, token, "#/deliveries", width=PHONE_WIDTH) as opened:
        opened.page.wait_for_selector("#deliveries tbody tr", timeout=WAIT_MS)
        assert no_horizontal_overflow(opened.page)
        opened.screenshot("console-deliveries-phone")
