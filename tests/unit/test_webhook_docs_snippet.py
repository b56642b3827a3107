"""The receiver snippet in docs/webhooks.md verifies what we send (and nothing else)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chalicelib.webhooks.signing import generate_secret, parse_secret, signed_headers

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


@pytest.fixture(scope="module")
def verify_webhook():
    snippet = re.search(r"<!-- verify-snippet -->\n```python\n(.*?)```", DOC.read_text(), re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(snippet, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation's code
    return namespace["verify_webhook"]


def test_the_documented_snippet_accepts_our_requests_and_rejects_tampering(verify_webhook):
    secret = generate_secret()
    body = json.dumps({"id": "evt_1", "event": "messageNew", "data": {"subject": "Grüße"}}).encode()
    headers = signed_headers([parse_secret(secret)], "evt_1", body)

    assert verify_webhook(secret, headers, body)["data"]["subject"] == "Grüße"
    with pytest.raises(ValueError, match="no valid signature"):
        verify_webhook(secret, headers, body.replace(b"evt_1", b"evt_2"))
    with pytest.raises(ValueError, match="no valid signature"):
        verify_webhook(generate_secret(), headers, body)
    stale = signed_headers([parse_secret(secret)], "evt_1", body, timestamp=int(headers["webhook-timestamp"]) - 3600)
    with pytest.raises(ValueError, match="tolerance"):
        verify_webhook(secret, stale, body)
    rotated = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    assert verify_webhook(secret, rotated, body)["id"] == "evt_1"
