"""The process-wide Powertools logger (JSON lines; secrets are never passed to it), tracer and metrics.

Metrics are CloudWatch embedded metric format (EMF) lines on stdout: Lambda and the ECS
``awslogs`` driver ship them to CloudWatch Logs, which turns them into metrics in the
namespace named after the stack (the resource prefix without its dash: ``imapless-prod``),
so two stacks in one account never mix; no PutMetricData call, no IAM permission.

    helper                                  metric (unit)                 dimensions
    record_api_latency(route, method, ...)  ApiLatency (ms), ApiServerErrors  route, method
    timed_imap_command("FETCH")             ImapCommandLatency (ms)       command, outcome
    count_events_emitted(types)             EventsEmitted (count)         eventType
    record_webhook_attempt(succeeded)       WebhookAttempts, WebhookFailures (count)
    record_accounts_by_state(counts)        Accounts (count)              state     -- gauge, at most 1/min
    record_watcher_connections(n)           WatcherConnections (count)              -- gauge, at most 1/min

Values are buffered per dimension set and written by :func:`flush_metrics`: after each
request and each SQS batch (chalicelib/api/telemetry.py), and every minute in the watcher
(:func:`start_periodic_flush`). Gauges are throttled so that the per-minute ``Sum`` over
all watcher tasks is a total (connections) and ``Maximum`` is the account count (each
task sees every account). Metric calls never raise: an observability failure must not
fail a request.

Tracing is on only where Powertools would trace (on Lambda, unless ``POWERTOOLS_TRACE_DISABLED``
is set; never under ``sam local``/``chalice local``, in tests or in the watcher container):
:func:`get_tracer` builds the Tracer on first use there and nowhere else, because building
one imports the X-Ray SDK, whose recorder creates a botocore session and an X-Ray client
(~360 ms of a cold start, even when tracing is off).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.tracing import Tracer

from chalicelib.settings import SERVICE_NAME, get_settings

logger = Logger(service=SERVICE_NAME, level=get_settings().log_level)

# boto's INFO lines ("Found credentials in environment variables") are noise in every
# request log; warnings and errors still come through.
for _name in ("botocore", "boto3", "pynamodb", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)


# -- tracing --------------------------------------------------------------------------------


class Subsegment(Protocol):
    def put_annotation(self, key: str, value: Any) -> None: ...


class _NoSubsegment:
    def put_annotation(self, key: str, value: Any) -> None:
        pass


def tracing_enabled() -> bool:
    """Powertools' own rule for whether its Tracer records (see the module docstring)."""
    return not Tracer._is_tracer_disabled()


@functools.cache
def get_tracer() -> Tracer | None:
    """The process's tracer where tracing is on, else None; built on first use.

    Building it patches botocore, so the DynamoDB/SQS/KMS calls made after it (the
    middleware calls this before a handler runs) appear as subsegments of the trace.
    """
    return Tracer(service=SERVICE_NAME) if tracing_enabled() else None


@contextlib.contextmanager
def trace_subsegment(name: str) -> Iterator[Subsegment]:
    """An X-Ray subsegment named ``name`` where tracing is on; a no-op elsewhere."""
    tracer = get_tracer()
    if tracer is None:
        yield _NoSubsegment()
        return
    with tracer.provider.in_subsegment(name) as subsegment:
        yield subsegment


# -- metrics --------------------------------------------------------------------------------

GAUGE_INTERVAL_SECONDS = 60.0
METRICS_FLUSH_SECONDS = 60.0


def metrics_namespace() -> str:
    return get_settings().resource_prefix.rstrip("-_.") or SERVICE_NAME


class MetricsBuffer:
    """Metric values buffered per dimension set; one EMF line per dimension set on flush."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 emit: Callable[[EphemeralMetrics], None] | None = None) -> None:
        self._clock = clock
        self._emit = emit or (lambda batch: batch.flush_metrics())
        self._lock = threading.Lock()
        self._batches: dict[tuple[tuple[str, str], ...], EphemeralMetrics] = {}
        self._gauges_at: dict[str, float] = {}

    def add(self, name: str, unit: MetricUnit, value: float, **dimensions: str) -> None:
        key = tuple(sorted((k, str(v)) for k, v in dimensions.items()))
        try:
            with self._lock:
                batch = self._batches.get(key)
                if batch is None:
                    batch = self._batches[key] = EphemeralMetrics(namespace=metrics_namespace(),
                                                                  service=SERVICE_NAME)
                    for dimension, dimension_value in key:  # one set (add_dimensions would add a second)
                        batch.add_dimension(dimension, dimension_value)
                batch.add_metric(name=name, unit=unit, value=value)
        except Exception:  # noqa: BLE001 - never fail the caller for a metric
            logger.warning("metric dropped", extra={"metric": name})

    def gauge_due(self, name: str) -> bool:
        """True at most once per GAUGE_INTERVAL_SECONDS for ``name`` (throttles gauges)."""
        now = self._clock()
        with self._lock:
            if now - self._gauges_at.get(name, float("-inf")) < GAUGE_INTERVAL_SECONDS:
                return False
            self._gauges_at[name] = now
            return True

    def flush(self) -> None:
        with self._lock:
            batches, self._batches = self._batches, {}
        for batch in batches.values():
            try:
                if batch.metric_set:
                    self._emit(batch)
            except Exception:  # noqa: BLE001
                logger.warning("metrics flush failed")
            finally:
                batch.clear_metrics()  # Powertools keeps values when metrics are disabled


metrics = MetricsBuffer()


def flush_metrics() -> None:
    metrics.flush()


def start_periodic_flush(stop: threading.Event, interval_seconds: float = METRICS_FLUSH_SECONDS) -> threading.Thread:
    """Flush every ``interval_seconds`` until ``stop`` is set, then once more (long-running processes)."""

    def loop() -> None:
        while not stop.wait(interval_seconds):
            flush_metrics()
        flush_metrics()

    thread = threading.Thread(target=loop, name="metrics-flush", daemon=True)
    thread.start()
    return thread


def record_api_latency(route: str, method: str, status: int, seconds: float) -> None:
    """Latency by route template and method; 5xx answers also count in ApiServerErrors.

    Every dimension combination is a billed custom metric (USD 0.30 a month each), so the
    status is not a dimension: request counts per route are ApiLatency's SampleCount.
    """
    metrics.add("ApiLatency", MetricUnit.Milliseconds, seconds * 1000, route=route, method=method)
    if status >= 500:
        metrics.add("ApiServerErrors", MetricUnit.Count, 1, route=route, method=method)


@contextlib.contextmanager
def timed_imap_command(command: str) -> Iterator[None]:
    """``with timed_imap_command("FETCH"): ...`` records ImapCommandLatency with the outcome."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        metrics.add("ImapCommandLatency", MetricUnit.Milliseconds, (time.perf_counter() - started) * 1000,
                    command=command.upper(), outcome=outcome)


def count_events_emitted(event_types: Iterable[str]) -> None:
    counts: dict[str, int] = {}
    for event_type in event_types:
        counts[event_type] = counts.get(event_type, 0) + 1
    for event_type, count in counts.items():
        metrics.add("EventsEmitted", MetricUnit.Count, count, eventType=event_type)


def record_webhook_attempt(succeeded: bool) -> None:
    metrics.add("WebhookAttempts", MetricUnit.Count, 1)
    metrics.add("WebhookFailures", MetricUnit.Count, 0 if succeeded else 1)


def record_accounts_by_state(counts: Mapping[str, int]) -> None:
    if metrics.gauge_due("Accounts"):
        for state, count in counts.items():
            metrics.add("Accounts", MetricUnit.Count, count, state=state)


def record_watcher_connections(count: int) -> None:
    if metrics.gauge_due("WatcherConnections"):
        metrics.add("WatcherConnections", MetricUnit.Count, count)
