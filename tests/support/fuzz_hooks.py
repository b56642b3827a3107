"""Schemathesis hooks of the fuzzing gate (loaded through ``SCHEMATHESIS_HOOKS``).

Two hooks, both about what the gate must not mistake for a finding:

- :func:`not_a_server_error_except_mail_server` takes the place of the stock
  ``not_a_server_error``. It differs in exactly one case: a 502, 503 or 504 is the correct
  answer of the mail API when the account's mail server cannot be reached (the gate
  registers an account with ``verify: false`` and a made-up host), so such an answer
  passes when the operation documents that status and the body is the API's error shape
  with a stable code. Every other 5xx, and any 502/503/504 that is undocumented or
  shapeless, still fails through the stock check. No operation is excluded.
- :class:`GateAdminToken` keeps the gate authenticated. The fuzzer learns token ids from
  ``GET /v1/tokens`` and revokes them (as it may, once it has made another admin token);
  a run that carried on with a dead token would test nothing but 401s. After a 401 the
  token is checked and, if it was revoked, a new admin token is issued the way an
  operator does (``make token``), against the same system.

Environment (set by tests/e2e/test_api_fuzzing.py): ``IMAPLESS_FUZZ_TOKEN`` (the admin
token), ``IMAPLESS_FUZZ_BASE_URL``, and what ``make token`` reads to find the system
(``PORT``, ``IMAPLESS_MOTO_PORT``, ``IMAPLESS_DATA_DIR``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import requests
import schemathesis
from schemathesis.checks import not_a_server_error

MAIL_SERVER_STATUSES = frozenset({502, 503, 504})
TOKEN_CHECK_TIMEOUT_SECONDS = 10
TOKEN_ISSUE_TIMEOUT_SECONDS = 60


def _is_error_body(payload: Any, status: int) -> bool:
    return (isinstance(payload, dict) and isinstance(payload.get("code"), str) and bool(payload["code"])
            and isinstance(payload.get("error"), str) and payload.get("statusCode") == status)


def is_documented_mail_server_answer(status: int, documented: set[str], body: bytes | None) -> bool:
    """A mail-server failure the operation documents, told in the error shape with a code."""
    if status not in MAIL_SERVER_STATUSES or str(status) not in documented:
        return False
    try:
        payload = json.loads(body or b"")
    except ValueError:
        return False
    return _is_error_body(payload, status)


@schemathesis.check
def not_a_server_error_except_mail_server(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except for documented answers about an unreachable mail server."""
    documented = set(case.operation.definition.raw.get("responses", {}))
    if is_documented_mail_server_answer(response.status_code, documented, response.content):
        return None
    return not_a_server_error(ctx, response, case)


# Fetched once and again only after a 401 (the refresh interval outlasts any run).
@schemathesis.auth(refresh_interval=24 * 3600, retry_on=[401])
class GateAdminToken:
    """The gate's admin token, replaced by a new one when the fuzzer has revoked it."""

    def __init__(self) -> None:
        self.token = os.environ["IMAPLESS_FUZZ_TOKEN"]
        self.checked_url = os.environ["IMAPLESS_FUZZ_BASE_URL"] + "/v1/tokens"

    def get(self, case: Any, ctx: Any) -> str:
        if self._revoked():
            self.token = self._issue()
        return self.token

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"

    def _revoked(self) -> bool:
        answer = requests.get(self.checked_url, headers={"Authorization": f"Bearer {self.token}"},
                              timeout=TOKEN_CHECK_TIMEOUT_SECONDS)
        return answer.status_code == 401

    @staticmethod
    def _issue() -> str:
        issued = subprocess.run([sys.executable, "-m", "local.token", "--description", "fuzzing gate"],
                                capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
                                timeout=TOKEN_ISSUE_TIMEOUT_SECONDS)
        return json.loads(issued.stdout.strip().splitlines()[-1])["token"]
