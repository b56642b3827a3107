"""Fixtures shared by the integration tests: the watcher's queue and prefix, and the mail API's
registered account with a direct IMAP client beside it (modules may define their own)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.integration.mail_api_support import direct_imap, register_account
from tests.integration.watcher_support import EventQueue


@pytest.fixture
def events() -> Iterator[EventQueue]:
    """A FIFO queue of the test's own in moto that the watcher publishes to; deleted afterwards."""
    queue = EventQueue()
    yield queue
    queue.delete()


@pytest.fixture
def prefix() -> str:
    """A unique prefix for the test's account ids and watcher names, so tests never see each other's."""
    return f"wt{secrets.token_hex(4)}-"


@pytest.fixture
def account(api, mail_server, mail_user) -> str:
    """An account registered over the API for ``mail_user`` of the test's ``mail_server``."""
    return register_account(api, mail_server, mail_user)


@pytest.fixture
def imap(mail_server, mail_user):
    """A direct imapclient session of the same user, to act beside the API."""
    with direct_imap(mail_server, mail_user) as client:
        yield client
