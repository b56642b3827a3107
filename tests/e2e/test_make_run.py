"""The README's `make run`, as a user runs it: start, use, Ctrl-C, start again, data still there."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import requests

from tests.support.local_system import banner_token, make_run

pytestmark = pytest.mark.e2e


def processes_with_data_dir(data_dir: Path) -> list[int]:
    """Pids whose environment points at this run's data dir (the runner and its children)."""
    marker = f"IMAPLESS_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(item == marker for item in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def test_make_run_serves_the_api_stops_cleanly_and_keeps_its_data(tmp_path, dovecot, mail_user):
    data_dir = tmp_path / "data"
    output = tmp_path / "make-run.log"

    # Given the system started with `make run`
    with make_run(data_dir, output) as (base_url, process):
        token = banner_token(output)
        text = output.read_text()
        assert f"{base_url}/docs" in text
        assert f"{base_url}/admin" in text
        headers = {"Authorization": f"Bearer {token}"}
        # When an account is registered against the real Dovecot
        created = requests.post(f"{base_url}/v1/account", headers=headers, timeout=30, json={
            "account": "e2e", "email": mail_user.email,
            "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False,
                     "auth": {"user": mail_user.email, "pass": mail_user.password}}})
        assert created.status_code == 200, created.text
        assert requests.get(f"{base_url}/docs", timeout=5).status_code == 200
        # And unknown paths and methods get the error shape, never the caller's token back
        unknown = requests.get(f"{base_url}/v1/nothing-here?access_token={token}", headers=headers, timeout=5)
        assert (unknown.status_code, unknown.json()["code"]) == (404, "RouteNotFound")
        assert token not in unknown.text
        traced = requests.request("TRACE", f"{base_url}/v1/accounts", headers=headers, timeout=5)
        assert (traced.status_code, traced.json()["code"], traced.headers["Allow"]) == (405, "MethodNotAllowed", "GET")
        assert "watcher started" in output.read_text() and "dispatcher started" in output.read_text()
    # Then Ctrl-C stops everything, leaving no process behind (make itself dies of the SIGINT, as in a shell)
    assert process.returncode in (0, -signal.SIGINT), output.read_text()
    assert "local.run INFO stopped" in output.read_text()
    assert processes_with_data_dir(data_dir) == []
    assert mail_user.password not in output.read_text()
    assert output.read_text().count(token) == 1  # the banner, never a request log line

    # When it starts again on the same data dir
    with make_run(data_dir, output) as (base_url, _process):
        # Then the same admin token works and the account (with its sealed password) is still there
        assert banner_token(output) == token
        account = requests.get(f"{base_url}/v1/account/e2e", headers=headers, timeout=10)
        assert account.status_code == 200, account.text
        assert account.json()["email"] == mail_user.email
        mailboxes = requests.get(f"{base_url}/v1/account/e2e/mailboxes", headers=headers, timeout=30)
        assert mailboxes.status_code == 200, mailboxes.text  # the stored password still decrypts and logs in
    assert processes_with_data_dir(data_dir) == []
