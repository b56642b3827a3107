"""What the watcher benchmarks share: an emulated AWS stack, mail servers, accounts, a watcher.

Importing this module sets the AWS environment (``tests.support.aws``) before anything
imports ``chalicelib``. The moto server runs as its own process (its own core, as AWS
would be elsewhere); accounts are sealed with the ``local`` key provider so that
registering thousands of them does not measure moto's KMS.
"""

from __future__ import annotations

import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tests.support.aws as test_aws  # noqa: E402 - sets the AWS environment first

_KEY_DIR = Path(tempfile.mkdtemp(prefix="bench-keys-"))
os.environ.update({"IMAPLESS_KEY_PROVIDER": "local", "IMAPLESS_LOCAL_KEY_FILE": str(_KEY_DIR / "master.key"),
                   "IMAPLESS_LOG_LEVEL": "WARNING"})


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), percentile(samples, 0.95), max(samples)


def raise_open_file_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class AwsStack:
    """A moto server process (see :mod:`emulator`) with the stack's tables and queues."""

    def __enter__(self) -> AwsStack:
        self.log = Path(tempfile.mkstemp(prefix="bench-moto-", suffix=".log")[1])
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("emulator.py")), "-H", "127.0.0.1", "-p",
                 str(test_aws.MOTO_PORT)],
                stdout=log, stderr=subprocess.STDOUT)
        _wait_for_port(test_aws.MOTO_PORT)
        from local.resources import create_resources

        create_resources(ROOT / "template.yaml", stack_name="imapless", endpoint_url=test_aws.MOTO_ENDPOINT,
                         region=test_aws.REGION)
        return self

    def requests(self) -> int:
        """How many requests the emulator has answered so far (one access-log line each)."""
        with self.log.open("rb") as log:
            return sum(1 for line in log if b'"POST /' in line)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # werkzeug may hold a keep-alive connection open
            self.process.kill()
            self.process.wait()


def register_accounts(dovecot, users: dict[str, tuple[str, str]], threads: int = 8) -> None:
    """account id -> (email, password), registered without a login check (done in parallel)."""
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.schemas.accounts import AccountCreate
    from chalicelib.services.accounts import create_account

    def one(item: tuple[str, tuple[str, str]]) -> None:
        account, (email, password) = item
        create_account(AccountCreate.model_validate({
            "account": account, "email": email, "verify": False,
            "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False,
                     "auth": {"user": email, "pass": password}}}))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, users.items()))


def process_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
