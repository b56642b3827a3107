"""Response shape of ``GET /v1/stats`` (operations overview)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from chalicelib.schemas.common import OutputModel


class QueueDepth(OutputModel):
    visible: int = Field(description="Messages waiting (ApproximateNumberOfMessages)")
    inFlight: int = Field(description="Received, not yet deleted (ApproximateNumberOfMessagesNotVisible)")
    delayed: int = Field(description="Scheduled for later (ApproximateNumberOfMessagesDelayed)")


class WatcherProcess(OutputModel):
    worker: str
    shards: int = Field(description="Shard leases the process holds")
    accounts: int = Field(description="Watchable accounts in those shards, estimated from the share of shards "
                                      "(accounts hash uniformly into shards)")
    heartbeatExpiresAt: datetime


class WebhookFailures(OutputModel):
    failedLast24h: int = Field(description="Events that gave up (dead-lettered) in the last 24 hours")
    pendingLast24h: int = Field(description="Events of the last 24 hours still waiting for a retry")
    capped: bool = Field(description="True when a count stopped at its limit (the real number is higher)")


class StatsOut(OutputModel):
    generatedAt: datetime
    accounts: dict[str, int] = Field(description="Accounts by state (new, connected, authenticationError, ...)")
    queues: dict[str, QueueDepth] = Field(description="Depth of every queue of the stack, by short name")
    watchers: list[WatcherProcess]
    shards: dict[str, int] = Field(description="total, held, unheld shard leases")
    webhooks: WebhookFailures
    notes: list[str] = Field(default_factory=list, description="What could not be measured, and why")
