"""`make run` end to end: mail delivered over SMTP reaches a receiver as a signed messageNew.

The whole local system as a user runs it (API, watcher and dispatcher under the local
supervisor, moto), the real Dovecot and Postfix, and a webhook receiver on loopback.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import requests

from tests.e2e.test_make_run import banner_token, make_run
from tests.integration.watcher_support import FAST_WATCHER_ENVIRONMENT, send_mail
from tests.support.webhook_receiver import WebhookReceiver, verify_signature

pytestmark = pytest.mark.e2e


def test_mail_arriving_over_smtp_reaches_the_receiver_as_a_signed_message_new(
        tmp_path: Path, dovecot, postfix, make_mail_user, monkeypatch):
    # The watcher's short timings, so it picks the new account up within a second.
    for name, value in FAST_WATCHER_ENVIRONMENT.items():
        if name != "IMAPLESS_LOG_LEVEL":
            monkeypatch.setenv(name, value)
    user, sender = make_mail_user(), make_mail_user()
    account = "e2e-hooks-" + secrets.token_hex(4)
    with WebhookReceiver() as receiver, make_run(tmp_path / "data", tmp_path / "output.log") as (base_url, _):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {banner_token(tmp_path / 'output.log')}"

        # Given webhooks configured (the secret is generated and shown once) ...
        configured = session.post(f"{base_url}/v1/settings", timeout=30, json={
            "webhooks": receiver.url(), "webhooksEnabled": True,
            "webhookEvents": ["accountAdded", "accountInitialized", "messageNew"]})
        assert configured.status_code == 200, configured.text
        secret = configured.json()["webhookSecret"]
        # ... and an account the watcher has taken up
        registered = session.post(f"{base_url}/v1/account", timeout=30, json={
            "account": account, "email": user.email,
            "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False,
                     "auth": {"user": user.email, "pass": user.password}}})
        assert registered.status_code == 200, registered.text
        added = receiver.wait_for(1, timeout=60, where=lambda r: json.loads(r.body)["event"] == "accountAdded")[0]
        assert verify_signature(secret, added.headers, added.body)
        assert json.loads(added.body)["data"] == {"account": account}
        receiver.wait_for(1, timeout=60, where=lambda r: json.loads(r.body)["event"] == "accountInitialized")

        # When mail arrives over SMTP
        send_mail(postfix, sender, user.email, "webhooks end to end")

        # Then the receiver gets a messageNew it can verify, with the message's fields
        request = receiver.wait_for(1, timeout=30, where=lambda r: json.loads(r.body)["event"] == "messageNew")[0]
        assert verify_signature(secret, request.headers, request.body)
        event = json.loads(request.body)
        assert (event["account"], event["path"], event["data"]["subject"]) == (account, "INBOX", "webhooks end to end")
        assert request.webhook_id == event["id"]
        # ... and the delivery log says so
        log = session.get(f"{base_url}/v1/webhooks/deliveries", params={"account": account}, timeout=30).json()
        assert {(d["id"], d["status"]) for d in log["deliveries"]} >= {(event["id"], "delivered")}
