"""The whole local system as a user starts it: ``make run`` as a subprocess.

:func:`make_run` starts it on free ports and a data dir of the test's own, waits for the
banner, and always stops it the way a terminal does (SIGINT to its process group,
SIGKILL if it does not stop in time). :func:`banner_token` reads the admin token from
the banner it printed.

Invariant: ``API_TOKEN`` and the AWS endpoint settings of the test process never leak
into the system under test, so it runs exactly as ``make run`` does for a new user.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support.mailservers import pick_free_ports

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 20


def system_environment(data_dir: Path) -> dict[str, str]:
    """What tells ``make run`` (and ``make token``) where the system lives: new free ports, ``data_dir``."""
    api_port, moto_port = pick_free_ports(2)
    return {"PORT": str(api_port), "IMAPLESS_MOTO_PORT": str(moto_port), "IMAPLESS_DATA_DIR": str(data_dir)}


@contextmanager
def make_run(data_dir: Path, output: Path, system: dict[str, str] | None = None,
             ) -> Iterator[tuple[str, subprocess.Popen]]:
    system = system or system_environment(data_dir)
    env = {**os.environ, **system}
    for name in ("API_TOKEN", "AWS_ENDPOINT_URL", "IMAPLESS_KEY_PROVIDER", "IMAPLESS_KMS_KEY_ID"):
        env.pop(name, None)
    start_offset = output.stat().st_size if output.exists() else 0
    with output.open("ab") as log:
        # Its own session, like a terminal's foreground job: Ctrl-C goes to make and the runner.
        process = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    base_url = f"http://127.0.0.1:{system['PORT']}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert process.poll() is None, f"make run exited early:\n{output.read_text()}"
            # Ready when the banner is out (the runner prints it after its own health check).
            if "Press Ctrl-C to stop." in output.read_text()[start_offset:]:
                assert requests.get(f"{base_url}/health", timeout=5).status_code == 200
                break
            assert time.monotonic() < deadline, f"never became ready:\n{output.read_text()}"
            time.sleep(0.2)
        yield base_url, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                pytest.fail(f"make run did not stop on Ctrl-C:\n{output.read_text()}")


def banner_token(output: Path) -> str:
    matches = re.findall(r"admin token\s+(\S+)", output.read_text())
    assert matches, output.read_text()
    return matches[-1]
