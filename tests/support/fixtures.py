"""Pytest plugin: the real mail servers every integration test shares, and mail users.

Owns the session-wide test PKI, one Dovecot, one Postfix wired to it, and the per-test
accounts created in that Dovecot. Loaded from ``tests/conftest.py`` via ``pytest_plugins``.

Invariants:
- Servers start lazily, on the first test that asks for them, and are stopped in fixture
  teardown whatever the tests did; nothing keeps running after the session.
- Real-server tests are never skipped: missing binaries or a server that does not start
  make the test fail (or error) with the reason.
- For the whole session ``SSL_CERT_FILE`` names the test CA, so code that verifies TLS
  against the default trust store (as the application does) trusts the test servers.
  The previous value is restored at the end.
- Every ``mail_user`` is new and unique (``u-<random>@example.test``); users are never
  removed, so tests must not count the users of a server.
- SIGTERM (CI timeouts, job control) ends the run like Ctrl-C, so fixture teardown still
  stops the servers; Python's default for SIGTERM would exit without any teardown and
  leave the daemons running. A second SIGTERM exits at once.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

import pytest

from tests.support.certs import TestPKI, make_test_pki
from tests.support.mailservers import Dovecot, Postfix, binaries_missing

MAIL_DOMAIN = "example.test"


@dataclass(frozen=True)
class MailUser:
    """An account that exists in the session Dovecot (and so is accepted by Postfix)."""

    email: str
    password: str


def require_mail_server_binaries() -> None:
    """Fail, never skip: a suite that silently skips its real-server tests proves nothing."""
    missing = binaries_missing()
    if missing:
        pytest.fail(
            f"mail server binaries not installed: {', '.join(missing)}. "
            "Run `make test`, which installs Dovecot and Postfix before running the tests.",
            pytrace=False,
        )


# -- teardown on SIGTERM --------------------------------------------------------------------


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt(f"received signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # Only take over the default disposition; a runner that installed its own keeps it.
    is_default = signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)
    if is_default and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)


def pytest_unconfigure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGTERM) is _interrupt_on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session", autouse=True)
def trust_test_ca(test_pki: TestPKI) -> Iterator[None]:
    previous = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(test_pki.ca_file)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = previous


# -- mail servers ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot(test_pki: TestPKI) -> Iterator[Dovecot]:
    require_mail_server_binaries()
    with Dovecot(test_pki) as server:
        yield server


@pytest.fixture(scope="session")
def postfix(dovecot: Dovecot, test_pki: TestPKI) -> Iterator[Postfix]:
    require_mail_server_binaries()
    with Postfix(dovecot, test_pki) as server:
        yield server


# -- mail users -----------------------------------------------------------------------------


@pytest.fixture
def make_mail_user(dovecot: Dovecot) -> Callable[[], MailUser]:
    """Factory for tests that need more than one account."""

    def make() -> MailUser:
        user = MailUser(email=f"u-{secrets.token_hex(6)}@{MAIL_DOMAIN}", password=secrets.token_urlsafe(16))
        dovecot.add_user(user.email, user.password)
        return user

    return make


@pytest.fixture
def mail_user(make_mail_user: Callable[[], MailUser]) -> MailUser:
    return make_mail_user()
