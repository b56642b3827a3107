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
- ``mail_user`` lives in ``mail_server``: the session Dovecot unless the test runs against
  several IMAP server families (see "IMAP server families" below); Cyrus and Courier start
  only when a test of theirs runs, so a run that never asks for them pays nothing.
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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import pytest

from tests.support.certs import TestPKI, make_test_pki
from tests.support.courier import Courier
from tests.support.cyrus import Cyrus
from tests.support.mailservers import Dovecot, ImapServer, Postfix, binaries_missing
from tests.support.oauth2_server import OAuth2Server

MAIL_DOMAIN = "example.test"


@dataclass(frozen=True)
class MailUser:
    """An account that exists in the test's ``mail_server`` (by default the session Dovecot,
    whose users Postfix accepts)."""

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
    config.addinivalue_line("markers", "imap_families(*ids): run once per IMAP server family (default: all four)")
    config.addinivalue_line("markers", "dovecot_only(reason): in a multi-family module, run on Dovecot alone")
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
def oauth2_server() -> Iterator[OAuth2Server]:
    """The tests' own OAuth2 authorization server, whose bearer tokens the session Dovecot accepts."""
    with OAuth2Server() as server:
        yield server


@pytest.fixture(scope="session")
def dovecot(test_pki: TestPKI, oauth2_server: OAuth2Server) -> Iterator[Dovecot]:
    """Takes passwords and, for the same users, ``oauth2_server``'s tokens (XOAUTH2, OAUTHBEARER)."""
    require_mail_server_binaries()
    with Dovecot(test_pki, oauth2_introspection_url=oauth2_server.resource_server_url()) as server:
        yield server


@pytest.fixture(scope="session")
def postfix(dovecot: Dovecot, test_pki: TestPKI) -> Iterator[Postfix]:
    require_mail_server_binaries()
    with Postfix(dovecot, test_pki) as server:
        yield server


def _session_server(name: str, start: Callable[[TestPKI], AbstractContextManager[Any]], doc: str) -> Any:
    """A session fixture ``name`` that runs the server ``start(test_pki)`` makes, and stops it."""

    def server(test_pki: TestPKI) -> Iterator[Any]:
        with start(test_pki) as running:
            yield running

    server.__doc__ = doc
    return pytest.fixture(scope="session", name=name)(server)


cyrus = _session_server("cyrus", lambda pki: Cyrus(pki, idled=True),
                        "Cyrus with idled: IDLE pushes changes at once.")
cyrus_polling = _session_server("cyrus_polling", lambda pki: Cyrus(pki, idled=False),
                                "Cyrus as Debian ships it, without idled: IDLE reports changes every 60 s.")
courier = _session_server("courier", lambda pki: Courier(pki, enhanced_idle=False),
                          "Courier as Debian ships it (IMAP_ENHANCEDIDLE=0): IDLE re-reads the Maildir every 60 s.")
courier_enhanced = _session_server("courier_enhanced", lambda pki: Courier(pki, enhanced_idle=True),
                                   "Courier with IMAP_ENHANCEDIDLE=1: IDLE pushes through gamin.")


# -- IMAP server families -------------------------------------------------------------------
#
# A module, class or test marked ``@pytest.mark.imap_families`` runs once per family below
# (ids ``[dovecot]``, ``[cyrus]``, ...); its ``mail_server``, ``mail_user``, ``account`` and
# ``imap`` then belong to that family's server. ``@pytest.mark.dovecot_only("why")`` inside
# such a module keeps one test on Dovecot alone, with the reason in the marker. Unmarked
# tests get Dovecot and keep their ids.


@dataclass(frozen=True)
class ImapFamily:
    """One IMAP server family: its running server and how it differs from Dovecot."""

    id: str
    server: ImapServer
    # Where user folders live: Dovecot's are top-level ("Sent"); Cyrus and Courier (as
    # Debian configures them) put every folder under "INBOX." ("INBOX.Sent").
    prefix: str
    separator: str
    # IDLE reports other sessions' changes at once (else only on the server's 60 s poll).
    pushes_idle: bool
    # RFC 6154 SPECIAL-USE in LIST (Courier has none: roles come from names).
    special_use: bool
    # RFC 6851 MOVE (Courier copies and expunges instead).
    move: bool

    def folder(self, *names: str) -> str:
        """The full path of a user folder: ``folder("Sent")`` is "Sent" or "INBOX.Sent"."""
        return self.prefix + self.separator.join(names)


IMAP_FAMILIES = ("dovecot", "cyrus", "cyrus-polling", "courier")
_FAMILY_FIXTURES = {"dovecot": "dovecot", "cyrus": "cyrus", "cyrus-polling": "cyrus_polling", "courier": "courier",
                    "courier-enhanced": "courier_enhanced"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "imap_family" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("imap_families")
    if marker is None or metafunc.definition.get_closest_marker("dovecot_only") is not None:
        return
    metafunc.parametrize("imap_family", marker.args or IMAP_FAMILIES, indirect=True)


@pytest.fixture
def imap_family(request: pytest.FixtureRequest) -> ImapFamily:
    name = getattr(request, "param", "dovecot")
    server = request.getfixturevalue(_FAMILY_FIXTURES[name])
    if isinstance(server, Dovecot):
        return ImapFamily(id=name, server=server, prefix="", separator=server.separator, pushes_idle=True,
                          special_use=True, move=True)
    if isinstance(server, Cyrus):
        return ImapFamily(id=name, server=server, prefix=server.prefix, separator=server.separator,
                          pushes_idle=server.pushes_idle, special_use=True, move=True)
    return ImapFamily(id=name, server=server, prefix=server.prefix, separator=server.separator,
                      pushes_idle=server.pushes_idle, special_use=False, move=False)


@pytest.fixture
def mail_server(imap_family: ImapFamily) -> ImapServer:
    """The IMAP server of this test's family (Dovecot unless the test runs on several)."""
    return imap_family.server


# -- mail users -----------------------------------------------------------------------------


@pytest.fixture
def make_mail_user(mail_server: ImapServer) -> Callable[[], MailUser]:
    """Factory for tests that need more than one account (all in this test's ``mail_server``)."""

    def make() -> MailUser:
        user = MailUser(email=f"u-{secrets.token_hex(6)}@{MAIL_DOMAIN}", password=secrets.token_urlsafe(16))
        mail_server.add_user(user.email, user.password)
        return user

    return make


@pytest.fixture
def mail_user(make_mail_user: Callable[[], MailUser]) -> MailUser:
    return make_mail_user()
