"""The refresh decision and the classification of token endpoint answers, as tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.oauth2.refresh_rules import StoredTokens, classify_token_answer, refresh_needed, token_fingerprint

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CURRENT = token_fingerprint("current-token")


@pytest.mark.parametrize(("fingerprint", "expires", "rejected", "expected"), [
    (None, None, None, True),                                       # no access token yet
    (CURRENT, NOW + timedelta(hours=1), None, False),                # good for an hour
    (CURRENT, NOW + timedelta(seconds=301), None, False),            # just outside the margin
    (CURRENT, NOW + timedelta(seconds=300), None, True),             # due: 5 minutes ahead
    (CURRENT, NOW - timedelta(seconds=1), None, True),               # expired
    (CURRENT, None, None, False),                                    # no expiry: used until rejected
    (CURRENT, NOW + timedelta(hours=1), CURRENT, True),              # rejected: at once
    (CURRENT, NOW + timedelta(hours=1), token_fingerprint("older"), False),  # someone refreshed already
    (CURRENT, None, CURRENT, True),
])
def test_refresh_needed(fingerprint, expires, rejected, expected):
    assert refresh_needed(StoredTokens(fingerprint, expires), NOW, rejected=rejected) is expected


def _body(**fields) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(("status", "body", "outcome"), [
    (200, _body(access_token="at", token_type="Bearer", expires_in=3599), "granted"),
    (200, _body(token_type="Bearer"), "temporary"),                  # no token: not usable, not a refusal
    (200, b"<html>proxy</html>", "temporary"),
    (None, None, "temporary"),                                       # no answer, timeout
    (503, b"", "temporary"),
    (500, _body(error="server_error"), "temporary"),
    (429, _body(error="slow_down"), "temporary"),
    (400, _body(error="invalid_grant", error_description="Token has been expired or revoked."), "revoked"),
    (400, _body(error="invalid_scope"), "revoked"),
    (400, b"", "revoked"),
    (401, _body(error="invalid_client"), "app_invalid"),
    (400, _body(error="invalid_client", error_description="AADSTS7000215: Invalid client secret"), "app_invalid"),
    (400, _body(error="unauthorized_client"), "app_invalid"),
    (401, b"", "app_invalid"),
])
def test_classify_token_answer(status, body, outcome):
    assert classify_token_answer(status, body).outcome == outcome


def test_a_grant_keeps_the_rotated_refresh_token_and_the_provider_words_for_a_refusal():
    granted = classify_token_answer(200, _body(access_token="at", refresh_token="rt2", expires_in="60",
                                               scope="mail"))
    assert (granted.access_token, granted.refresh_token, granted.expires_in, granted.scope) == ("at", "rt2", 60.0,
                                                                                               "mail")
    assert "at" not in repr(granted).replace("outcome", "").replace("granted", "")
    revoked = classify_token_answer(400, _body(error="invalid_grant",
                                               error_description="Token has been expired or revoked."))
    assert revoked.error == "invalid_grant: Token has been expired or revoked."
