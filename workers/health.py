"""A tiny HTTP health endpoint for a long-running process, and the probe that calls it.

ECS runs the container health check *inside* the container (``python -m workers.health
--probe``), so the server listens on loopback only: nothing is exposed to the network.

    GET /health/live   200 {"status": "ok", "checks": {...}}  | 503 when a liveness check fails
    GET /health/ready  200 when live *and* every readiness check passes | 503

Checks are callables returning True (healthy) or False; one that raises counts as failing
and is reported by exception type only. What the process registers:

- ``beat(name)`` / ``expect_beats(name, within_seconds)``: a loop that must keep turning
  (the watcher's supervisor tick). Liveness fails when the last beat is older than allowed.
- :func:`watch_thread_crashes`: any thread ending with an uncaught exception makes the
  process not live (a dead IDLE multiplexer thread otherwise leaves a process that looks
  fine and watches nothing).

Failure modes: the port is taken -> :class:`OSError` from :meth:`HealthServer.start` (the
caller decides; the container entry point fails fast). The probe exits 1 on any error,
including a server that does not answer within its timeout.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalicelib.settings import get_settings

DEFAULT_PORT = 8081  # IMAPLESS_HEALTH_PORT
PROBE_TIMEOUT_SECONDS = 3.0
Check = Callable[[], bool]


class HealthRegistry:
    """Named liveness and readiness checks; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, Check] = {}
        self._ready: dict[str, Check] = {}
        self._beats: dict[str, float] = {}
        self._crashed: list[str] = []

    def add_liveness(self, name: str, check: Check) -> None:
        with self._lock:
            self._live[name] = check

    def add_readiness(self, name: str, check: Check) -> None:
        with self._lock:
            self._ready[name] = check

    def beat(self, name: str) -> None:
        """Record that loop ``name`` made progress (cheap: call it every iteration)."""
        self._beats[name] = self._clock()

    def expect_beats(self, name: str, within_seconds: float) -> None:
        """Liveness fails once ``name`` has not beaten for ``within_seconds`` (counting from now)."""
        self.beat(name)
        self.add_liveness(f"beat:{name}", lambda: self._clock() - self._beats[name] <= within_seconds)

    def record_crash(self, thread_name: str) -> None:
        with self._lock:
            self._crashed.append(thread_name)

    def _run(self, checks: dict[str, Check]) -> dict[str, str]:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = "ok" if check() else "failing"
            except Exception as exc:  # noqa: BLE001 - a check reports, it never breaks the endpoint
                results[name] = f"error: {type(exc).__name__}"
        return results

    def liveness(self) -> tuple[bool, dict[str, str]]:
        with self._lock:
            checks = dict(self._live)
            crashed = list(self._crashed)
        results = self._run(checks)
        if crashed:
            results["threads"] = "crashed: " + ", ".join(sorted(set(crashed)))
        return all(result == "ok" for result in results.values()), results

    def readiness(self) -> tuple[bool, dict[str, str]]:
        live, results = self.liveness()
        with self._lock:
            checks = dict(self._ready)
        ready_results = self._run(checks)
        return live and all(result == "ok" for result in ready_results.values()), {**results, **ready_results}


def watch_thread_crashes(registry: HealthRegistry) -> None:
    """Make any thread that dies of an uncaught exception fail liveness (keeps the default report)."""
    previous = threading.excepthook

    def hook(arguments: threading.ExceptHookArgs) -> None:
        if arguments.exc_type is not SystemExit:
            registry.record_crash(arguments.thread.name if arguments.thread else "?")
        previous(arguments)

    threading.excepthook = hook


class _Handler(BaseHTTPRequestHandler):
    registry: HealthRegistry  # set on the subclass made per server

    def do_GET(self) -> None:
        if self.path == "/health/live":
            healthy, results = self.registry.liveness()
        elif self.path == "/health/ready":
            healthy, results = self.registry.readiness()
        else:
            self._answer(404, {"status": "not found"})
            return
        self._answer(200 if healthy else 503, {"status": "ok" if healthy else "failing", "checks": results})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a probe every 30 s is not worth a log line


class HealthServer:
    """Serves a registry on ``host:port`` from a daemon thread."""

    def __init__(self, registry: HealthRegistry, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        handler = type("HealthHandler", (_Handler,), {"registry": registry})
        self._server = ThreadingHTTPServer((host, port), handler, bind_and_activate=False)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> HealthServer:
        self._server.server_bind()
        self._server.server_activate()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="health-endpoint", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


# The process-wide registry: the container entry point serves it, loops report into it
# (``health.REGISTRY.beat("supervisor")``).
REGISTRY = HealthRegistry()


def configured_port() -> int:
    return get_settings().health_port


def probe(path: str = "/health/live", port: int | None = None, timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """True when the endpoint answers 200 (what the container health check runs)."""
    url = f"http://127.0.0.1:{port or configured_port()}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Probe the local health endpoint (exit 0: healthy).")
    parser.add_argument("--probe", action="store_true", help="check liveness (the default)")
    parser.add_argument("--ready", action="store_true", help="check readiness instead of liveness")
    arguments = parser.parse_args(argv)
    return 0 if probe("/health/ready" if arguments.ready else "/health/live") else 1


if __name__ == "__main__":
    raise SystemExit(main())
