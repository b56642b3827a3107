"""`make run` sends mail: a scheduled message leaves through the local outbox consumer."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.e2e.test_make_run import banner_token, make_run
from tests.integration.mail_api_support import wait_until
from tests.support.sending import Mailbox

pytestmark = pytest.mark.e2e


def test_a_scheduled_send_is_delivered_by_the_local_dispatcher(tmp_path: Path, dovecot, postfix, make_mail_user):
    sender, recipient = make_mail_user(), make_mail_user()
    with make_run(tmp_path / "data", tmp_path / "output.log") as (base_url, _):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {banner_token(tmp_path / 'output.log')}"
        registered = session.post(f"{base_url}/v1/account", json={
            "account": "e2e-" + secrets.token_hex(4), "email": sender.email,
            "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False,
                     "auth": {"user": sender.email, "pass": sender.password}},
            "smtp": {"host": postfix.hostname, "port": postfix.smtp_port, "secure": False,
                     "auth": {"user": sender.email, "pass": sender.password}}}, timeout=30)
        assert registered.status_code == 200, registered.text
        account = registered.json()["account"]

        # When a message is scheduled a moment ahead (so it must go through the outbox queue)
        send_at = datetime.now(UTC) + timedelta(seconds=1)
        queued = session.post(f"{base_url}/v1/account/{account}/submit", timeout=30, json={
            "to": recipient.email, "subject": "from make run", "text": "hello", "sendAt": send_at.isoformat()})
        assert queued.status_code == 202, queued.text

        # Then the dispatcher hands it to the outbox consumer, which sends it
        _, received = Mailbox(dovecot, recipient).received(queued.json()["messageId"])
        assert received["Subject"] == "from make run"
        # (the consumer stores the Sent copy before it marks the entry sent)
        outbox_url = f"{base_url}/v1/outbox/{queued.json()['queueId']}"
        wait_until(lambda: session.get(outbox_url, timeout=30).json()["state"] == "sent", timeout=10,
                   what="the outbox entry marked sent")
        assert session.get(outbox_url, timeout=30).json()["attemptsMade"] == 1
