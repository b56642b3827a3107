"""The watcher container's entry point (``python -m workers.container``, the Dockerfile's CMD).

::

    main thread: workers.watcher.main()  (SIGTERM/SIGINT -> clean stop, leases released)
    thread "health-endpoint": GET /health/live, /health/ready on 127.0.0.1:IMAPLESS_HEALTH_PORT
    thread "metrics-flush": EMF metrics to stdout every minute (chalicelib/observability.py)

It only adds the health endpoint around the watcher: liveness fails when any thread of
the process died of an uncaught exception, or when a loop that registered beats stops
beating (the watcher's supervisor can register with ``health.REGISTRY.expect_beats``);
readiness additionally requires the watcher to have started. ECS's container health
check runs ``python -m workers.health --probe`` and replaces a task whose liveness fails
three times in a row.

Failure modes: the health port is taken -> the process exits at once with status 2,
before it leases any shard (a task that cannot be health-checked would be killed anyway).
"""

from __future__ import annotations

import sys
import threading

from chalicelib import observability
from workers import health
from workers import watcher as watcher_process


def main() -> int:
    registry = health.REGISTRY
    health.watch_thread_crashes(registry)
    started = threading.Event()
    registry.add_readiness("watcher", started.is_set)
    try:
        server = health.HealthServer(registry, port=health.configured_port()).start()
    except OSError as exc:
        print(f"health endpoint: cannot listen on port {health.configured_port()}: {exc}", file=sys.stderr)
        return 2
    stop_flushing = threading.Event()
    flusher = observability.start_periodic_flush(stop_flushing)
    try:
        started.set()
        return watcher_process.main()
    finally:
        stop_flushing.set()
        flusher.join(timeout=5)
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
