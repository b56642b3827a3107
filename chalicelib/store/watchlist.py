"""The narrow view of accounts the watcher polls: id, state, update time, version.

The watcher re-reads it every ``IMAPLESS_WATCHER_ACCOUNT_SCAN_SECONDS`` to pick up new,
changed, disabled and deleted accounts. It scans the accounts table's ``watch`` index,
whose items hold only these four attributes, so a scan of 5,000 accounts reads ~300 KB
instead of the full items with their sealed credentials. A table created before the
index existed (an old local data dir) is scanned directly instead, same result.
"""

from __future__ import annotations

from dataclasses import dataclass

import botocore.session
from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import ScanError
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from chalicelib.settings import get_settings

_settings = get_settings()
WATCH_ATTRIBUTES = ["account", "state", "updated_at", "version"]


class _WatchIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "watch"
        projection = IncludeProjection(["state", "updated_at", "version"])

    account = UnicodeAttribute(hash_key=True)


class _AccountWatchRow(Model):
    class Meta:
        table_name = _settings.table_name("accounts")
        region = _settings.aws_region

    account = UnicodeAttribute(hash_key=True)
    state = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)
    version = NumberAttribute(null=True)
    watch = _WatchIndex()


@dataclass(frozen=True)
class WatchedAccount:
    account: str
    state: str
    updated_at: str | None  # compared for equality only: kept as stored
    version: int | None


def _row(item: dict) -> WatchedAccount:
    version = item.get("version", {}).get("N")
    return WatchedAccount(item["account"]["S"], item.get("state", {}).get("S", "new"),
                          item.get("updated_at", {}).get("S"), int(version) if version is not None else None)


def list_watch_rows() -> list[WatchedAccount]:
    """Every account's watch row. Parsed from the raw items: this runs every few seconds
    over every account, and model deserialisation would cost several times more CPU."""
    connection = _AccountWatchRow._get_connection()
    try:
        pages = _scan_pages(connection, index_name="watch")
        return [_row(item) for page in pages for item in page]
    except ScanError:
        return [_row(item) for page in _scan_pages(connection, attributes_to_get=WATCH_ATTRIBUTES)
                for item in page]


def _scan_pages(connection, **kwargs) -> list[list[dict]]:
    pages, start = [], None
    while True:
        answer = connection.scan(exclusive_start_key=start, **kwargs)
        pages.append(answer.get("Items", []))
        start = answer.get("LastEvaluatedKey")
        if not start:
            return pages


def _models(base: type[Model]) -> list[type[Model]]:
    found = []
    for model in base.__subclasses__():
        found += [model, *_models(model)]
    return found


def warm_up_clients() -> None:
    """Create the DynamoDB client of every imported model, once, on the calling thread.

    pynamodb builds a connection's client lazily with a botocore session of the calling
    thread; when a pool of threads races to the first call, each thread builds (and
    keeps, in its thread-local session) its own copy of the service model: ~9 MB per
    thread and table, 140 MB for a pool of 16 (measured when messageNew started reading
    the webhook settings table from the pool). Building them here first leaves one
    client per table, whichever tables the watcher's code reaches. They share one botocore
    session, so the service model is parsed once, not once per table (~4 MB each).
    """
    from chalicelib.store import checkpoints, leases, models, settings  # noqa: F401 - the watcher's tables

    session = botocore.session.get_session()
    for model in _models(Model):
        if getattr(getattr(model, "Meta", None), "table_name", None):
            connection = model._get_connection().connection
            if getattr(connection._local, "session", None) is None:
                connection._local.session = session  # what pynamodb would build itself, shared
            _ = connection.client
