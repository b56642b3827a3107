"""Fixtures shared by the watcher integration tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

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
