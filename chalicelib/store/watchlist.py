"""The narrow view of accounts the watcher follows, and the generation that says it changed.

Two things live here:

- the **watch rows**: id, state, update time and version of every account, read from the
  accounts table's ``watch`` index, whose items hold only these four attributes (a scan of
  5,000 accounts reads ~300 KB instead of the full items with their sealed credentials).
  A table created before the index existed (an old local data dir) is scanned directly
  instead, same result;
- the **watchlist generation**: one counter item (``watchlistGeneration``) in the settings
  table. Every account write that matters to watching (create, replace, delete: see
  :mod:`chalicelib.store.accounts`) adds 1 to it *after* the account write succeeded. The
  watcher reads it (one consistent GetItem) every scan period and scans the rows only
  when it moved, instead of scanning every account every 2 s.

::

    API: account write ──ok──▶ ADD generation 1          watcher, every scan period:
                                    │                      GetItem generation (consistent)
                                    └────────────────────▶ moved? ──yes──▶ scan watch rows

Invariants and failure modes:
- the watcher's own connection-state writes (``set_account_state``: connecting results
  such as ``connected``/``authenticationError``) do not bump: every such state is
  watchable, so the watcher never needs to see them;
- a bump is best effort: a writer that dies (or whose bump fails) between the account
  write and the bump leaves the generation unchanged, so the watcher also scans every
  ``IMAPLESS_WATCHER_FULL_SCAN_SECONDS`` whatever the generation says;
- the ``watch`` index is eventually consistent: a bump can be visible before the index
  shows the write that preceded it, so a move of the generation is followed by scans for
  a few seconds more (see ``workers/watch/supervisor.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import ScanError
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from chalicelib.observability import logger
from chalicelib.settings import get_settings

_settings = get_settings()
WATCH_ATTRIBUTES = ["account", "state", "updated_at", "version"]
GENERATION_KEY = "watchlistGeneration"


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


class _GenerationItem(Model):
    """The counter item, in the settings table next to the deployment-wide settings (its key
    matches no settings prefix; it has no ``value``, so settings readers skip it)."""

    class Meta:
        table_name = _settings.table_name("settings")
        region = _settings.aws_region

    key = UnicodeAttribute(hash_key=True)
    generation = NumberAttribute(default=0)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt", null=True)


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
    """Every account's watch row. Parsed from the raw pages: model deserialisation of
    thousands of rows would cost several times more CPU."""
    try:
        return [_row(item) for page in _AccountWatchRow.watch.scan().page_iter for item in page.get("Items", [])]
    except ScanError:
        return [_row(item) for page in _AccountWatchRow.scan(attributes_to_get=WATCH_ATTRIBUTES).page_iter
                for item in page.get("Items", [])]


def bump_generation() -> None:
    """Tell the watchers that the accounts changed (call after the account write succeeded).

    Never raises: the account write it follows has happened, and failing the request
    now would make the caller retry a write that succeeded. A lost bump costs at most
    one full-scan period of delay (``IMAPLESS_WATCHER_FULL_SCAN_SECONDS``).
    """
    try:
        _GenerationItem(GENERATION_KEY).update(actions=[_GenerationItem.generation.add(1),
                                                        _GenerationItem.updated_at.set(datetime.now(UTC))])
    except Exception:  # noqa: BLE001 - see above; the watchers' periodic full scan covers it
        logger.warning("could not bump the watchlist generation; watchers see the change at their next full scan")


def read_generation() -> int:
    """The current generation (0 before the first bump), read consistently."""
    try:
        return int(_GenerationItem.get(GENERATION_KEY, consistent_read=True).generation or 0)
    except _GenerationItem.DoesNotExist:
        return 0


def _models(base: type[Model]) -> list[type[Model]]:
    found = []
    for model in base.__subclasses__():
        found += [model, *_models(model)]
    return found


def warm_up_clients() -> None:
    """Create the DynamoDB client of every imported model, once, on the calling thread.

    pynamodb builds a connection's client lazily on the first call; when a pool of threads
    races to the first call, each would build (and keep) its own copy of the service model:
    ~9 MB per thread and table, 140 MB for a pool of 16 (measured when messageNew started
    reading the webhook settings table from the pool). Every table's client now comes from
    the process's one session (see :mod:`chalicelib.store`), which parses the model once;
    building the clients here first still leaves exactly one client per table, whichever
    of them the watcher's code reaches first and from whichever thread.
    """
    from chalicelib.store import checkpoints, leases, models, settings  # noqa: F401 - the watcher's tables

    for model in _models(Model):
        if getattr(getattr(model, "Meta", None), "table_name", None):
            _ = model._get_connection().connection.client
