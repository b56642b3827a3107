"""``python -m local.dispatcher`` as a subprocess of a test, against the session's moto.

:func:`dispatcher_process` starts it (waits for its "dispatcher started" line) and always
stops it afterwards: SIGTERM, and SIGKILL if it does not end in time. Tests that check a
clean stop signal it themselves before the block ends.

Why the stop waits: a receive the process left open keeps running in moto's server after
the process is gone (as in SQS), and takes whatever the *next* test publishes during its
long poll. A clean stop ends its polls first; after a SIGKILL the block waits one poll out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10
# A process under test shares two cores with the tests: a longer schedule than the
# in-process tests' (slots are anchored to the queue time, see chalicelib/webhooks/policy.py).
DISPATCHER_ENVIRONMENT = {"IMAPLESS_DISPATCHER_CONCURRENCY": "4", "PYTHONUNBUFFERED": "1",
                          "IMAPLESS_WEBHOOK_RETRY_SCHEDULE": "2,2,2,2,2"}


@contextmanager
def dispatcher_process(log_path: Path, extra_env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    env = {**os.environ, **DISPATCHER_ENVIRONMENT, **(extra_env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "local.dispatcher"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while "dispatcher started" not in log_path.read_text():
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the dispatcher did not start: " + log_path.read_text()
                time.sleep(0.05)
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """End the dispatcher so that none of its long polls outlives the block (see the module doc)."""
    from local.dispatcher import RECEIVE_WAIT_SECONDS

    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        time.sleep(RECEIVE_WAIT_SECONDS + 0.5)
