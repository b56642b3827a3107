"""The operations overview behind ``GET /v1/stats``: one read of each source, no caching.

    accounts by state      the accounts table's narrow ``watch`` index (one Scan)
    queue depths           GetQueueAttributes on every queue named in IMAPLESS_QUEUES
                           (the packaged template sets it to all of the stack's queues)
    watcher processes      live heartbeat rows + shard leases (chalicelib/store/leases.py)
    webhook failures       the delivery log's ``byDay`` index, last 24 hours, failed/pending

Per-process account counts are estimated as watchable accounts x the process's share of
the shards: accounts hash uniformly into shards, and the exact mapping lives in the
watcher (workers/ is not part of the Lambda package).

Failure modes: each section is measured on its own; one that fails (a queue missing, a
table throttled) is reported in ``notes`` by error type and the rest is still answered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.events import queue
from chalicelib.observability import logger
from chalicelib.schemas.stats import QueueDepth, StatsOut, WatcherProcess, WebhookFailures
from chalicelib.settings import get_settings
from chalicelib.store import deliveries, leases
from chalicelib.store.watchlist import list_watch_rows
from chalicelib.sync.account_state import WATCHABLE_STATES

WATCHER_NAMESPACE = "watcher"
DELIVERY_COUNT_LIMIT = 1000
DELIVERY_PAGE_SIZE = 100
QUEUE_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed"]


def _measured(notes: list[str], section: str, measure: Callable[[], Any], empty: Any) -> Any:
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 - a stats section that fails is reported, not fatal
        logger.warning("stats section failed", extra={"section": section, "error": type(exc).__name__})
        notes.append(f"{section}: not measured ({type(exc).__name__})")
        return empty


def accounts_by_state() -> dict[str, int]:
    return dict(sorted(Counter(row.state for row in list_watch_rows()).items()))


def queue_depths(names: tuple[str, ...]) -> dict[str, QueueDepth]:
    client = queue.get_sqs_client()
    depths = {}
    for name in names:
        attributes = client.get_queue_attributes(QueueUrl=queue.queue_url(name),
                                                 AttributeNames=QUEUE_ATTRIBUTES)["Attributes"]
        depths[name] = QueueDepth(visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
                                  inFlight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                                  delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)))
    return depths


def watcher_processes(watchable_accounts: int, total_shards: int) -> tuple[list[WatcherProcess], dict[str, int]]:
    live = leases.live_workers(WATCHER_NAMESPACE)
    owners = leases.shard_owners(WATCHER_NAMESPACE)
    held = Counter(owners.values())
    processes = [WatcherProcess(worker=worker.worker, shards=held.get(worker.worker, 0),
                                accounts=round(watchable_accounts * held.get(worker.worker, 0) / total_shards),
                                heartbeatExpiresAt=datetime.fromtimestamp(worker.expires_at_ms / 1000, UTC))
                 for worker in live]
    live_names = {worker.worker for worker in live}
    held_by_live = sum(count for worker, count in held.items() if worker in live_names)
    return processes, {"total": total_shards, "held": held_by_live, "unheld": total_shards - held_by_live}


def _count_deliveries(status: str, since: datetime, until: datetime) -> tuple[int, bool]:
    query = deliveries.DeliveryQuery(since=since, until=until, status=status)
    count, position = 0, None
    while count < DELIVERY_COUNT_LIMIT:
        page, position = deliveries.query_deliveries(query, DELIVERY_PAGE_SIZE, position)
        count += len(page)
        if position is None:
            return count, False
    return DELIVERY_COUNT_LIMIT, True


def webhook_failures(now: datetime) -> WebhookFailures:
    since = now - timedelta(hours=24)
    failed, failed_capped = _count_deliveries("failed", since, now)
    pending, pending_capped = _count_deliveries("pending", since, now)
    return WebhookFailures(failedLast24h=failed, pendingLast24h=pending, capped=failed_capped or pending_capped)


def collect_stats(now: datetime | None = None) -> StatsOut:
    settings = get_settings()
    now = now or datetime.now(UTC)
    notes: list[str] = []
    accounts = _measured(notes, "accounts", accounts_by_state, {})
    if not settings.queues:
        notes.append("queues: IMAPLESS_QUEUES is not set (the packaged template sets it)")
    queues = _measured(notes, "queues", lambda: queue_depths(settings.queues), {})
    watchable = sum(count for state, count in accounts.items() if state in WATCHABLE_STATES)
    watchers, shards = _measured(notes, "watchers", lambda: watcher_processes(watchable, settings.watcher_shards),
                                 ([], {}))
    webhooks = _measured(notes, "webhooks", lambda: webhook_failures(now),
                         WebhookFailures(failedLast24h=0, pendingLast24h=0, capped=False))
    return StatsOut(generatedAt=now, accounts=accounts, queues=queues, watchers=watchers, shards=shards,
                    webhooks=webhooks, notes=notes)
