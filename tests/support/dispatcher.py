"""``python -m local.dispatcher`` as a subprocess of a test, against the session's moto.

:func:`dispatcher_process` starts it (waits for its "dispatcher started" line) and always
kills it afterwards; tests that check a clean stop signal it themselves before the block ends.
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
# A process under test shares two cores with the tests: a longer schedule than the
# in-process tests' (slots are anchored to the queue time, see chalicelib/webhooks/policy.py).
DISPATCHER_ENVIRONMENT = {"IMAPLESS_DISPATCHER_CONCURRENCY": "4", "PYTHONUNBUFFERED": "1",
                          "IMAPLESS_WEBHOOK_RETRY_SCHEDULE": "2,2,2,2,2", "IMAPLESS_WEBHOOK_CONFIG_CACHE_SECONDS": "1"}


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
            if process.poll() is None:
                process.kill()
                process.wait()
