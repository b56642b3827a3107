"""Shapes of ``GET /v1/stats`` (operations overview) and ``GET /v1/stats/activity``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from chalicelib.schemas.common import AccountId, OutputModel, StrictModel


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


class ActivityQuery(StrictModel):
    window: Literal["1h", "24h"] = Field("1h", description="1h: 60 buckets of a minute; 24h: 96 of 15 minutes")
    account: AccountId | None = Field(None, description="Only this account's events (a bound token: always its own)")


class ActivityBucket(OutputModel):
    start: datetime = Field(description="Start of the bucket (it lasts bucketSeconds)")
    events: dict[str, int] = Field(description="Events detected in the bucket, by event type")
    deliveries: dict[str, int] = Field(description="Those events by delivery status now: delivered, pending "
                                                   "(retrying), failed (dead-lettered), skipped")
    latencyP95Ms: float | None = Field(None, description="95th percentile of the bucket's last POST durations")


class LatencyPercentiles(OutputModel):
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    samples: int = Field(description="Events with a recorded POST (the last POST of each counts)")


class ActivityOut(OutputModel):
    window: str
    since: datetime
    until: datetime
    bucketSeconds: int
    buckets: list[ActivityBucket] = Field(description="Every bucket of the window, oldest first, empty ones too")
    totalEvents: int
    latencyMs: LatencyPercentiles = Field(description="Webhook POST durations over the window (nearest rank)")
    accounts: dict[str, int] = Field(description="Accounts by state (a bound token: its own account only)")
    capped: bool = Field(description="The read stopped at its limit: only events since coveredSince are counted")
    coveredSince: datetime = Field(description="Counts are complete from here to until (since, unless capped)")
    notes: list[str] = Field(default_factory=list, description="What could not be measured, and why")
