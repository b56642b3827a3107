"""Readiness: can this process reach its store and its queue?"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.events import queue
from chalicelib.store import accounts as account_store

Check = Callable[[], None]
CHECKS: dict[str, Check] = {"store": account_store.ping, "queue": queue.ping}


def run_checks(checks: dict[str, Check] | None = None) -> dict[str, dict[str, str]]:
    """Run each check; a failure is reported by name with its exception type, never raised."""
    results: dict[str, dict[str, str]] = {}
    for name, check in (checks or CHECKS).items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - a health check reports, it does not fail
            results[name] = {"status": "error", "error": type(exc).__name__}
        else:
            results[name] = {"status": "ok"}
    return results
