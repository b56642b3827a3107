"""The emulator's change signal: a count of the requests that may have changed DynamoDB data.

The snapshot thread (local/emulator.py) used to scan every table each second to learn
whether anything changed; each scan goes through the same embedded moto server the API,
watcher and dispatcher use, and stalled them (ListTables p99 ~100 ms, max ~680 ms, with one
idle account). Every change to moto's DynamoDB arrives as an HTTP request to that server, so
counting those requests, in-process, tells the thread when a scan is worth it::

    client ──HTTP──> werkzeug ──> DynamoDBChangeCounter(WSGI) ──> moto's dispatcher
                                    │ after the request: X-Amz-Target not a known read?
                                    └─> count += 1            (read by the snapshot thread)

Invariants:

- The count grows after the request was handled, so a scan that starts after seeing a
  count includes every write that count covers.
- Conservative: any DynamoDB operation not in :data:`READ_ONLY_OPERATIONS` counts (PartiQL,
  an operation added to moto tomorrow), failed requests count (a conditional check that
  failed changed nothing: the scan finds the same digest and writes nothing), and so does
  any call of moto's own API (``/moto-api/reset`` empties every backend).
- Reads (GetItem, Query, Scan, ListTables...), including the snapshot's own scans, never
  count: an idle system causes no scan.

Failure mode: a change that does not go through this server (another process's moto, a
test poking moto's backend objects in-process) is not seen until the next counted request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810."  # botocore's X-Amz-Target for DynamoDB (JSON 1.0 protocol)
MOTO_API_PATH = "/moto-api"
READ_ONLY_OPERATIONS = frozenset({
    "BatchGetItem", "DescribeBackup", "DescribeContinuousBackups", "DescribeContributorInsights",
    "DescribeEndpoints", "DescribeExport", "DescribeGlobalTable", "DescribeGlobalTableSettings", "DescribeImport",
    "DescribeKinesisStreamingDestination", "DescribeLimits", "DescribeTable", "DescribeTableReplicaAutoScaling",
    "DescribeTimeToLive", "GetItem", "GetResourcePolicy", "ListBackups", "ListContributorInsights", "ListExports",
    "ListGlobalTables", "ListImports", "ListTables", "ListTagsOfResource", "Query", "Scan", "TransactGetItems",
})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def may_change_dynamodb(environ: dict[str, Any]) -> bool:
    """True for a request that may have changed DynamoDB tables or items."""
    if str(environ.get("PATH_INFO", "")).startswith(MOTO_API_PATH):
        return True
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if not target.startswith(DYNAMODB_TARGET_PREFIX):
        return False  # SQS, S3, KMS, STS ... or DynamoDB Streams (DynamoDBStreams_20120810.*, read-only)
    return target[len(DYNAMODB_TARGET_PREFIX):] not in READ_ONLY_OPERATIONS


class DynamoDBChangeCounter:
    """WSGI middleware: ``count`` = requests so far that may have changed DynamoDB."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            # moto handles the request inside this call; the body iterable is already rendered
            return self._app(environ, start_response)
        finally:
            if may_change_dynamodb(environ):
                with self._lock:
                    self._count += 1


class CountingMotoServer(ThreadedMotoServer):
    """moto's threaded server with :class:`DynamoDBChangeCounter` in front of its dispatcher."""

    def __init__(self, ip_address: str, port: int) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self.changes = DynamoDBChangeCounter(DomainDispatcherApplication(create_backend_app))

    def _server_entry(self) -> None:
        # ThreadedMotoServer._server_entry (moto 5.2) with the counter wrapped around the app.
        self._server = make_server(self._ip_address, self._port, self.changes, True,
                                   request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
