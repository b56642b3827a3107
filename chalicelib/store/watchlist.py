"""The narrow view of accounts the watcher polls: id, state, update time, version.

The watcher re-reads it every ``IMAPLESS_WATCHER_ACCOUNT_SCAN_SECONDS`` to pick up new,
changed, disabled and deleted accounts. It scans the accounts table's ``watch`` index,
whose items hold only these four attributes, so a scan of 5,000 accounts reads ~300 KB
instead of the full items with their sealed credentials. A table created before the
index existed (an old local data dir) is scanned directly instead, same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
    updated_at: datetime | None
    version: int | None


def list_watch_rows() -> list[WatchedAccount]:
    try:
        rows = list(_AccountWatchRow.watch.scan())
    except ScanError:
        rows = list(_AccountWatchRow.scan(attributes_to_get=WATCH_ATTRIBUTES))
    return [WatchedAccount(r.account, r.state or "new", r.updated_at,
                           int(r.version) if r.version is not None else None) for r in rows]


def warm_up_clients() -> None:
    """Create the DynamoDB clients the watcher uses, once, on the calling thread.

    pynamodb builds a connection's client lazily with a botocore session of the calling
    thread; when a pool of threads races to the first call, each thread builds (and
    keeps, in its thread-local session) its own copy of the service model: ~15 MB per
    thread and table. Building them here first leaves one client per table.
    """
    from chalicelib.store import checkpoints, leases
    from chalicelib.store.models import AccountItem

    for model in (AccountItem, _AccountWatchRow, checkpoints.CheckpointItem, leases.WorkerItem,
                  leases.ShardLeaseItem):
        _ = model._get_connection().connection.client
