"""Embedded AWS emulation for ``make run``: moto in-process, with DynamoDB made durable.

moto keeps its state only in memory, so every restart of ``make run`` would forget the
accounts and tokens a developer set up. A DynamoDB implementation that persists (dynalite,
on LevelDB) would make Node.js a dependency of local development. Local data is small,
so instead this module snapshots moto's DynamoDB into one JSON file and loads it back on
the next start.

    data dir (0700)
      dynamodb.json (0600)   {"format": 1, "tables": [{definition..., "Items": [typed items]}]}

    start()          restore()                autosave thread                        stop()
    moto up, empty -> snapshot loaded   -> every SAVE_INTERVAL_SECONDS, if a request -> final save
                      into moto            may have changed DynamoDB since the last   (if changed),
                                           save: scan all tables, hash; write only    moto down
                                           if the hash changed

The change signal is a count of DynamoDB write requests kept by a WSGI middleware in front
of moto (see :mod:`local.dynamodb_changes`): an idle system causes no scan, because a scan
goes through the same server every local process uses and stalls it.

What is durable: every DynamoDB table of the emulator's region, its definition (keys,
indexes, billing mode, TTL attribute) and its items. What is not: SQS messages (queued or
in flight events are gone after a restart; the queues come back empty from template.yaml)
and S3 objects. KMS is not used locally: the app runs with ``IMAPLESS_KEY_PROVIDER=local``
and a key file in the data dir, because moto would give its keys new ids on every start
and nothing sealed before a restart would decrypt.

Invariants:

- Nothing is written before :meth:`AwsEmulator.restore` has loaded the snapshot, so an
  empty moto can never overwrite the data on disk.
- The file is always a complete snapshot (temp file, fsync, rename; see
  :mod:`local.datadir`).
- Attribute types round-trip exactly: items keep DynamoDB's typed form (S, N, B, BOOL,
  NULL, M, L, SS, NS, BS) as the low-level client returns it; binary values (B, BS) are
  base64 text in the file, numbers stay the strings DynamoDB sent.
- A table that already exists when restoring (created from template.yaml just before)
  keeps its definition, and the snapshot only fills it: the template owns the schema, the
  snapshot the contents. A table only the snapshot knows is created from its recorded
  definition.

Failure modes:

- SIGKILL or power loss loses the writes of the last save interval (plus one scan), never
  the file; the temp file of an interrupted save is removed at the next start.
- An unreadable snapshot, or items that no longer fit their table (a key schema changed in
  template.yaml), make restore() raise :class:`SnapshotError` and leave the file untouched:
  move it away to start empty.
- A save scans table after table, so a write spanning tables that races a save can be
  captured half-applied, exactly as if the process had died between the two writes.
- The port is checked before moto starts: ``ThreadedMotoServer.start`` would wait forever
  for a server that failed to bind.
- moto's backends are process-global: two emulators in one process would share state. The
  runner has one; tests start ``python -m local.emulator`` as a child process.
- Saving scans everything once per interval when something changed: cheap for a
  developer's few megabytes, not meant for large data sets. A periodic writer (the
  watcher's lease renewals) causes a scan per interval in which it wrote.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from local.datadir import discard_partial_writes, ensure_private_dir, resolve_data_dir, write_private_file
from local.dynamodb_changes import CountingMotoServer
from local.resources import LOCAL_CREDENTIALS, create_resources

DEFAULT_MOTO_PORT = 4566
SAVE_INTERVAL_SECONDS = 1.0
SNAPSHOT_FILE_NAME = "dynamodb.json"
SNAPSHOT_FORMAT = 1
BATCH_WRITE_LIMIT = 25  # items per BatchWriteItem, a DynamoDB limit
BATCH_WRITE_ATTEMPTS = 10  # rounds of retrying UnprocessedItems before giving up

logger = logging.getLogger(__name__)


class SnapshotError(RuntimeError):
    """The snapshot on disk cannot be loaded; it is left as it is."""


class PortInUseError(RuntimeError):
    """Something else already listens on the port the emulator wants."""


def encode_item(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level (typed) DynamoDB item as JSON-safe data: bytes become base64 text."""
    return {name: _encode_value(value) for name, value in item.items()}


def decode_item(item: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`encode_item`."""
    return {name: _decode_value(value) for name, value in item.items()}


def _encode_value(value: dict[str, Any]) -> dict[str, Any]:
    (kind, data), = value.items()
    if kind == "B":
        return {"B": base64.b64encode(data).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(member).decode("ascii") for member in data]}
    if kind == "M":
        return {"M": encode_item(data)}
    if kind == "L":
        return {"L": [_encode_value(member) for member in data]}
    return {kind: data}  # S, N, BOOL, NULL, SS, NS are JSON already


def _decode_value(value: dict[str, Any]) -> dict[str, Any]:
    (kind, data), = value.items()
    if kind == "B":
        return {"B": base64.b64decode(data)}
    if kind == "BS":
        return {"BS": [base64.b64decode(member) for member in data]}
    if kind == "M":
        return {"M": decode_item(data)}
    if kind == "L":
        return {"L": [_decode_value(member) for member in data]}
    return {kind: data}


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Raise :class:`PortInUseError` when ``host:port`` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUseError(f"{host}:{port} is already in use ({error.strerror})") from error


class AwsEmulator:
    """moto on ``127.0.0.1:port`` plus the DynamoDB snapshot in ``data_dir``."""

    def __init__(self, data_dir: Path, *, port: int = DEFAULT_MOTO_PORT, region: str = "us-east-1",
                 save_interval_seconds: float = SAVE_INTERVAL_SECONDS) -> None:
        self.data_dir = data_dir
        self.port = port
        self.region = region
        self.save_interval_seconds = save_interval_seconds
        self.snapshot_path = data_dir / SNAPSHOT_FILE_NAME
        self._server: CountingMotoServer | None = None
        self._client: BaseClient | None = None
        self._restored = False
        self._saved_digest: str | None = None
        self._saved_changes = 0  # the change count the last save (or restore) covered
        self._save_lock = threading.Lock()
        self._stop_autosave = threading.Event()
        self._autosave: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start moto (empty) and prepare the data dir. Call :meth:`restore` next."""
        ensure_private_dir(self.data_dir)
        discard_partial_writes(self.snapshot_path)
        check_port_free(self.port)
        # moto's server logs every request through werkzeug at INFO.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = CountingMotoServer(ip_address="127.0.0.1", port=self.port)
        self._server.start()
        self._client = boto3.client(
            "dynamodb", endpoint_url=self.endpoint_url, region_name=self.region, **LOCAL_CREDENTIALS,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=30))

    def restore(self) -> int:
        """Load the snapshot into moto, then keep it current; returns the number of items loaded."""
        if self._client is None:
            raise RuntimeError("start() the emulator before restore()")
        tables = self._read_snapshot()
        # No save covers moto's state yet (the template's tables, the restored items): the first
        # interval scans once and records the tables as moto has them, as before any change signal.
        self._saved_changes = -1
        restored = 0
        for table in tables:
            try:
                restored += self._restore_table(table)
            except Exception as error:
                raise SnapshotError(
                    f"cannot restore table {table.get('TableName')!r} from {self.snapshot_path}: {error}; "
                    "the file is untouched (move it away to start with empty tables)") from error
        self._saved_digest = _digest(tables)
        self._restored = True
        self._autosave = threading.Thread(target=self._autosave_loop, name="dynamodb-snapshot", daemon=True)
        self._autosave.start()
        return restored

    @property
    def changed_since_save(self) -> bool:
        """True if a request that may have changed DynamoDB arrived after the last save began."""
        return self._server is not None and self._server.changes.count != self._saved_changes

    def save(self) -> bool:
        """Write the snapshot now if DynamoDB changed since the last write; True if written."""
        if not self._restored:
            raise RuntimeError("refusing to save before restore(): it would overwrite the snapshot")
        with self._save_lock:
            assert self._server is not None
            changes = self._server.changes.count  # read before scanning: a write during the scan counts again
            tables = self._scan_tables()
            digest = _digest(tables)
            if digest == self._saved_digest:
                self._saved_changes = changes
                return False
            document = {"format": SNAPSHOT_FORMAT, "region": self.region,
                        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tables": tables}
            write_private_file(self.snapshot_path, json.dumps(document, indent=1, sort_keys=True).encode())
            # only now: a failed write (disk full) leaves the change pending, so the next interval retries
            self._saved_digest = digest
            self._saved_changes = changes
            return True

    def save_if_changed(self) -> bool:
        """:meth:`save`, but without scanning when no request may have changed DynamoDB."""
        return self.changed_since_save and self.save()

    def stop(self) -> None:
        """Stop saving periodically, save a last time (if restored), stop moto. Idempotent."""
        self._stop_autosave.set()
        if self._autosave is not None:
            self._autosave.join()
            self._autosave = None
        try:
            if self._restored and self._server is not None:
                self.save_if_changed()
        finally:
            if self._server is not None:
                self._server.stop()
                self._server = None

    def _autosave_loop(self) -> None:
        while not self._stop_autosave.wait(self.save_interval_seconds):
            try:
                self.save_if_changed()
            except Exception:  # keep trying: the next interval may succeed (disk full, moto busy)
                logger.exception("saving the DynamoDB snapshot to %s failed", self.snapshot_path)

    def _read_snapshot(self) -> list[dict[str, Any]]:
        try:
            raw = self.snapshot_path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            document = json.loads(raw)
        except ValueError as error:
            raise SnapshotError(f"{self.snapshot_path} is not valid JSON ({error}); the file is untouched "
                                "(move it away to start with empty tables)") from error
        if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"{self.snapshot_path} is not a format {SNAPSHOT_FORMAT} snapshot")
        return list(document.get("tables", []))

    def _restore_table(self, table: dict[str, Any]) -> int:
        assert self._client is not None
        name = table["TableName"]
        try:
            self._client.describe_table(TableName=name)
        except self._client.exceptions.ResourceNotFoundException:
            definition = {key: value for key, value in table.items() if key not in ("Items", "TimeToLiveAttribute")}
            self._client.create_table(**definition)
            if table.get("TimeToLiveAttribute"):
                self._client.update_time_to_live(TableName=name, TimeToLiveSpecification={
                    "AttributeName": table["TimeToLiveAttribute"], "Enabled": True})
        items = [decode_item(item) for item in table.get("Items", [])]
        for start in range(0, len(items), BATCH_WRITE_LIMIT):
            pending: dict[str, Any] = {
                name: [{"PutRequest": {"Item": item}} for item in items[start:start + BATCH_WRITE_LIMIT]]}
            for _ in range(BATCH_WRITE_ATTEMPTS):
                pending = self._client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise SnapshotError(f"DynamoDB kept refusing items of {name}")
        return len(items)

    def _scan_tables(self) -> list[dict[str, Any]]:
        """Every table of the region as snapshot records, in a canonical order."""
        assert self._client is not None
        tables = []
        for page in self._client.get_paginator("list_tables").paginate():
            for name in page["TableNames"]:
                try:
                    tables.append(self._scan_table(name))
                except self._client.exceptions.ResourceNotFoundException:
                    continue  # deleted between listing and scanning
        return sorted(tables, key=lambda table: table["TableName"])

    def _scan_table(self, name: str) -> dict[str, Any]:
        assert self._client is not None
        description = self._client.describe_table(TableName=name)["Table"]
        record: dict[str, Any] = {key: description[key] for key in ("TableName", "KeySchema", "AttributeDefinitions")}
        billing_mode = description.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        record["BillingMode"] = billing_mode
        if billing_mode == "PROVISIONED":
            record["ProvisionedThroughput"] = _throughput(description["ProvisionedThroughput"])
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            indexes = [_index_definition(index, billing_mode) for index in description.get(kind) or []]
            if indexes:
                record[kind] = indexes
        ttl = self._client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            record["TimeToLiveAttribute"] = ttl["AttributeName"]
        items: list[dict[str, Any]] = []
        for page in self._client.get_paginator("scan").paginate(TableName=name, ConsistentRead=True):
            items.extend(encode_item(item) for item in page["Items"])
        record["Items"] = sorted(items, key=_canonical)
        return record


def _index_definition(index: dict[str, Any], billing_mode: str) -> dict[str, Any]:
    definition = {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
    if billing_mode == "PROVISIONED" and "ProvisionedThroughput" in index:
        definition["ProvisionedThroughput"] = _throughput(index["ProvisionedThroughput"])
    return definition


def _throughput(throughput: dict[str, Any]) -> dict[str, int]:
    return {key: max(1, int(throughput.get(key, 1))) for key in ("ReadCapacityUnits", "WriteCapacityUnits")}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _digest(tables: list[dict[str, Any]]) -> str:
    return hashlib.sha256(_canonical(tables).encode()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m local.emulator``: only the AWS emulation, until SIGINT/SIGTERM.

    Handy to look at local data with the AWS CLI, and what the tests start as a child
    process to restart and kill it for real.
    """
    parser = argparse.ArgumentParser(prog="python -m local.emulator", description=main.__doc__)
    parser.add_argument("--data-dir", type=Path, default=resolve_data_dir())
    parser.add_argument("--port", type=int, default=int(os.environ.get("IMAPLESS_MOTO_PORT") or DEFAULT_MOTO_PORT))
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1")
    parser.add_argument("--save-interval", type=float, default=SAVE_INTERVAL_SECONDS, metavar="SECONDS")
    parser.add_argument("--template", type=Path, help="also create the resources of this template.yaml")
    args = parser.parse_args(argv)

    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop_requested.set())
    emulator = AwsEmulator(args.data_dir.resolve(), port=args.port, region=args.region,
                           save_interval_seconds=args.save_interval)
    try:
        emulator.start()
        if args.template is not None:
            create_resources(args.template, endpoint_url=emulator.endpoint_url, region=args.region)
        items = emulator.restore()
    except (PortInUseError, SnapshotError) as error:
        emulator.stop()
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    print(f"ready {emulator.endpoint_url} items={items} snapshot={emulator.snapshot_path}", flush=True)
    try:
        stop_requested.wait()
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
