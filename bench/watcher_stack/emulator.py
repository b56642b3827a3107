"""The benchmarks' AWS emulator: moto's server, with DynamoDB transactions backed up per item.

    python bench/watcher_stack/emulator.py -H 127.0.0.1 -p PORT      (same arguments as moto.server)

moto rolls a failed ``TransactWriteItems`` back by deep-copying, before it starts, every
table the transaction names, once per item: a seven-item checkpoint commit against a
table of 35,000 checkpoints (5,000 accounts) copies the table seven times, and a run of
thousands of commits grows the emulator to many gigabytes and stalls it. DynamoDB
itself has no such cost. Here the backup holds only the items the transaction names,
and a cancelled transaction puts exactly those back.

moto also answers a ``Query`` on a table's own key by walking *every* item of the table
and keeping those with the asked hash key: the watcher's one checkpoint Query per
account connect then costs O(checkpoints), and connecting 5,000 accounts O(N^2) (measured:
the emulator fell from 65 to 25 calls/s by 2,500 accounts, at 85 % CPU, with "dictionary
changed size during iteration" errors from those walks racing writes). DynamoDB reads
one partition. Here such a query sees only the asked partition's items; index queries
and everything else are moto unchanged.
"""

from __future__ import annotations

import copy
import sys
import threading
import types
from typing import Any

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table


def _key_of(table: Table, operation: dict[str, Any]) -> tuple[DynamoType, DynamoType | None]:
    attributes = operation.get("Item") or operation["Key"]
    range_attribute = table.range_key_attr
    return (DynamoType(attributes[table.hash_key_attr]),
            DynamoType(attributes[range_attribute]) if range_attribute else None)


def _stored(table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Any:
    if range_key is None:
        return table.items.get(hash_key)
    return table.items.get(hash_key, {}).get(range_key)


def _restore(table: Table, hash_key: DynamoType, range_key: DynamoType | None, item: Any) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
        return
    if item is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    backup = []
    for entry in transact_items:
        operation = next(iter(entry.values()))
        table = self.tables.get(operation.get("TableName"))
        if table is not None:
            hash_key, range_key = _key_of(table, operation)
            backup.append((table, hash_key, range_key, copy.deepcopy(_stored(table, hash_key, range_key))))
    try:
        _ORIGINAL(self, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(backup):
            _restore(table, hash_key, range_key, item)
        raise


# moto's own whole-table backup becomes a reference (its "rollback" then re-assigns the same table).
_copy_tables_by_reference = types.SimpleNamespace(
    deepcopy=lambda value, memo=None: value if isinstance(value, Table) else copy.deepcopy(value, memo))
_ORIGINAL = dynamodb_models.DynamoDBBackend.transact_write_items


_ORIGINAL_QUERY = Table.query
_ORIGINAL_ALL_ITEMS = Table.all_items
_partition = threading.local()


def _query(self: Table, hash_key: DynamoType | None, *args: Any, **kwargs: Any) -> Any:
    # moto's key query is "all_items() filtered by hash key": hand it the one partition.
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")  # moto passes it 8th, by position
    own_key = index_name is None and hash_key is not None
    _partition.key = hash_key if own_key else None
    try:
        return _ORIGINAL_QUERY(self, hash_key, *args, **kwargs)
    finally:
        _partition.key = None


def _all_items(self: Table) -> list[Any]:
    key = getattr(_partition, "key", None)
    if key is None:
        return _ORIGINAL_ALL_ITEMS(self)
    stored = self.items.get(key)
    if stored is None:
        return []
    return list(stored.values()) if self.range_key_attr else [stored]


def install() -> None:
    dynamodb_models.copy = _copy_tables_by_reference  # type: ignore[assignment]
    dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
