"""The benchmarks' AWS emulator: moto's server, with DynamoDB transactions backed up per item.

    python bench/watcher_stack/emulator.py -H 127.0.0.1 -p PORT      (same arguments as moto.server)

moto rolls a failed ``TransactWriteItems`` back by deep-copying, before it starts, every
table the transaction names, once per item: a seven-item checkpoint commit against a
table of 35,000 checkpoints (5,000 accounts) copies the table seven times, and a run of
thousands of commits grows the emulator to many gigabytes and stalls it. DynamoDB
itself has no such cost. Here the backup holds only the items the transaction names,
and a cancelled transaction puts exactly those back; everything else is moto unchanged.
"""

from __future__ import annotations

import copy
import sys
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


def install() -> None:
    dynamodb_models.copy = _copy_tables_by_reference  # type: ignore[assignment]
    dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
