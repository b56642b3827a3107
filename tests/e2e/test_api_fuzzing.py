"""The fuzzing gate: schemathesis against the OpenAPI document of a `make run`-started system.

Every operation of ``/openapi.json`` is fuzzed with all of schemathesis' checks, with the
admin token, against a real account on the test Dovecot (with mail in it) and accounts the
fuzzer registers itself (``verify: false``, made-up hosts). The gate fails on any server
error, any response the document does not describe (status, headers, schema), any
schema-valid request that is rejected and any schema-invalid one that is accepted.

A 502/503/504 about an unreachable mail server is a correct answer, not a server error:
:mod:`tests.support.fuzz_hooks` replaces the stock ``not_a_server_error`` for exactly the
documented ones in the error shape; nothing is excluded.

Deterministic and bounded: one worker, a fixed seed (printed, with the command that
replays it), no example database, no shrinking, Hypothesis' timing health checks off
(their verdict depends on the machine's load, not on the API). ``make fuzz`` runs the
same test with a random seed and many more examples; any run replays with

    IMAPLESS_FUZZ_SEED=<seed> IMAPLESS_FUZZ_EXAMPLES=<n> .venv/bin/python -m pytest tests/e2e/test_api_fuzzing.py
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.fixtures import MailUser
from tests.support.local_system import ROOT, banner_token, make_run, system_environment
from tests.support.messages import build_message

GATE_SEED = 20261206
GATE_EXAMPLES = 10


def fuzz_seed(setting: str | None) -> int:
    """The gate's fixed seed unless told otherwise; ``random`` draws a new one (``make fuzz``)."""
    if setting == "random":
        return secrets.randbelow(2**32)
    return int(setting) if setting else GATE_SEED


FUZZ_SEED = fuzz_seed(os.environ.get("IMAPLESS_FUZZ_SEED"))
FUZZ_EXAMPLES = int(os.environ.get("IMAPLESS_FUZZ_EXAMPLES") or GATE_EXAMPLES)
FUZZ_TIMEOUT_SECONDS = int(os.environ.get("IMAPLESS_FUZZ_TIMEOUT") or 600)
REAL_ACCOUNT = "fuzz-real"
# Registered unverified, on a host that never resolves (RFC 6761 .invalid): its mail API
# answers are the documented 502s the gate's own check accepts.
UNREACHABLE_ACCOUNT = "fuzz-unreachable"
# What PUT and DELETE /v1/account/{account} get instead of the two above, which they would
# reconfigure (verify: false takes any host) or delete for every operation after them.
SPARE_ACCOUNT = "fuzz-spare"
ACCOUNT_CHANGES = ("PUT /v1/account/{account}", "DELETE /v1/account/{account}")
# How often a path parameter takes a real value (account, message, text, attachment id)
# instead of a generated one: both the found and the not-found paths get exercised.
REAL_VALUE_PROBABILITY = 0.7

pytestmark = pytest.mark.e2e


def register_accounts(base_url: str, headers: dict[str, str], dovecot, user: MailUser) -> None:
    for body in (
        {"account": REAL_ACCOUNT, "name": "Fuzzing", "email": user.email,
         "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False,
                  "auth": {"user": user.email, "pass": user.password}}},
        *({"account": unreachable, "email": "nobody@example.test", "verify": False,
           "imap": {"host": "imap.unreachable.invalid", "port": 993, "secure": True,
                    "auth": {"user": "nobody", "pass": "unused-password"}}}
          for unreachable in (UNREACHABLE_ACCOUNT, SPARE_ACCOUNT)),
    ):
        created = requests.post(f"{base_url}/v1/account", headers=headers, timeout=30, json=body)
        assert created.status_code == 200, created.text


def register_app(base_url: str, headers: dict[str, str]) -> str:
    """An OAuth2 application for the path parameter that names one (no account uses it)."""
    created = requests.post(f"{base_url}/v1/oauth2", headers=headers, timeout=30, json={
        "name": "Fuzzing", "provider": "gmail", "clientId": "fuzz-client", "clientSecret": "fuzz-secret",
        "redirectUrl": "https://api.example.test/oauth"})
    assert created.status_code == 200, created.text
    return created.json()["id"]


def real_ids(base_url: str, headers: dict[str, str]) -> dict[str, list[str]]:
    """Ids of the mail in the real account, for path parameters that name a message or its parts,
    and of an OAuth2 application."""
    listed = requests.get(f"{base_url}/v1/account/{REAL_ACCOUNT}/messages", headers=headers, timeout=30)
    assert listed.status_code == 200, listed.text
    messages = listed.json()["messages"]
    return {"app": [register_app(base_url, headers)],
            "message": [m["id"] for m in messages],
            "text": [m["text"]["id"] for m in messages],
            "attachment": [a["id"] for m in messages for a in m["attachments"]]}


def schemathesis_config(ids: dict[str, list[str]]) -> str:
    """The config file: real ids offered for the path parameters that name existing things."""
    values = {"account": [REAL_ACCOUNT, UNREACHABLE_ACCOUNT], **ids}
    lines = [
        # No crash cache: a run replays nothing an earlier one stored, so the seed alone decides.
        "cache = { enabled = false }",
        "[dictionaries]",
        f"spare = {{ values = {json.dumps([SPARE_ACCOUNT])} }}",
    ]
    lines += [f"{name} = {{ values = {json.dumps(found)} }}" for name, found in values.items() if found]
    # The API's contract (chalicelib/errors.py): 400 only for what contradicts the document;
    # a schema-valid request refused for what its values mean is 422, so that is acceptance's
    # only addition to schemathesis' defaults. A 400 for schema-valid data still fails.
    lines += ["[checks.positive_data_acceptance]",
              'expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]']
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {binding(name)}' for name, found in values.items() if found]
    for operation in ACCOUNT_CHANGES:
        lines += ["[[operations]]", f"include-name = {json.dumps(operation)}",
                  f'parameters = {{ "path.account" = {binding("spare")} }}']
    return "\n".join(lines) + "\n"


def binding(dictionary: str) -> str:
    return f'{{ dictionary = "{dictionary}", probability = {REAL_VALUE_PROBABILITY} }}'


def schemathesis_command(base_url: str, config: Path, report: Path) -> list[str]:
    return [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{base_url}/openapi.json",
        "--checks", "all", "--exclude-checks", "not_a_server_error",  # replaced by the hooks' check
        "--max-examples", str(FUZZ_EXAMPLES), "--seed", str(FUZZ_SEED),
        "--workers", "1", "--generation-database", "none", "--no-shrink",
        "--suppress-health-check", "all", "--request-timeout", "60",
        "--report", "junit", "--report-junit-path", str(report), "--no-color",
    ]


@pytest.mark.timeout(FUZZ_TIMEOUT_SECONDS)
def test_fuzzing_finds_no_server_error_and_no_undocumented_behaviour(tmp_path, dovecot, mail_user, capsys):
    output = tmp_path / "make-run.log"
    # Given the system started with `make run`, and a real account with mail (one with an attachment)
    for number in range(3):
        dovecot.deliver(mail_user.email, build_message(
            sender="sender@example.test", to=mail_user.email, subject=f"Fuzzing {number}", body="Hello",
            date="Sun, 06 Dec 2026 10:00:00 +0000", message_id=f"<fuzz-{number}@example.test>",
            html="<p>Hello</p>", attachments=[("a.txt", "text/plain", b"attached")] if number == 0 else []))
    system = system_environment(tmp_path / "data")
    with make_run(tmp_path / "data", output, system) as (base_url, _process):
        token = banner_token(output)
        headers = {"Authorization": f"Bearer {token}"}
        register_accounts(base_url, headers, dovecot, mail_user)
        config = tmp_path / "schemathesis.toml"
        config.write_text(schemathesis_config(real_ids(base_url, headers)))
        report = tmp_path / "schemathesis-junit.xml"
        command = schemathesis_command(base_url, config, report)
        with capsys.disabled():
            print(f"\nschemathesis seed {FUZZ_SEED}, {FUZZ_EXAMPLES} examples per operation "
                  f"(replay: IMAPLESS_FUZZ_SEED={FUZZ_SEED} IMAPLESS_FUZZ_EXAMPLES={FUZZ_EXAMPLES} "
                  f".venv/bin/python -m pytest {Path(__file__).relative_to(ROOT)})", flush=True)

        # When schemathesis fuzzes every operation of its OpenAPI document
        started = time.monotonic()
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=FUZZ_TIMEOUT_SECONDS - 60,
                             env={**os.environ, **system, "SCHEMATHESIS_HOOKS": "tests.support.fuzz_hooks",
                                  "IMAPLESS_FUZZ_TOKEN": token, "IMAPLESS_FUZZ_BASE_URL": base_url})
        elapsed = time.monotonic() - started
        (tmp_path / "schemathesis.log").write_text(run.stdout + run.stderr)
        with capsys.disabled():
            print(f"schemathesis ran {elapsed:.0f} s (log: {tmp_path / 'schemathesis.log'})", flush=True)

    # Then it finds nothing: no server error, nothing the document does not describe
    assert run.returncode == 0, (f"schemathesis (seed {FUZZ_SEED}) found problems:\n{run.stdout[-20000:]}"
                                 f"\n{run.stderr[-5000:]}")
