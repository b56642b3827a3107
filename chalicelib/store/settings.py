"""Deployment-wide settings in DynamoDB: one item per key in the settings table.

Owns the pynamodb model of the settings table and three kinds of items, all keyed by a
string:

- plain settings (``webhooks``, ``webhookEvents``, ...): a JSON ``value``;
- sealed secrets (``webhookSecret``): an envelope-encrypted ``sealed`` blob, opaque here
  (sealing and opening happen in the service layer, like account credentials);
- state records written by the system itself (e.g. ``webhookEndpointDisabled:<hash>``),
  found by key prefix.

Invariants: nothing secret is stored in ``value``; a secret written with ``if_absent``
is created at most once even when two writers race (conditional put).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import JSONAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from chalicelib.settings import get_settings

_settings = get_settings()


class SettingItem(Model):
    class Meta:
        table_name = _settings.table_name("settings")
        region = _settings.aws_region

    key = UnicodeAttribute(hash_key=True)
    value = JSONAttribute(null=True)
    sealed = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt")


def get_values(keys: Iterable[str]) -> dict[str, Any]:
    """The stored values of ``keys`` (absent keys are left out), read consistently."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    # One BatchGetItem for all keys; consistent so a POST is visible to the next GET.
    found: dict[str, Any] = {}
    for item in SettingItem.batch_get(wanted, consistent_read=True):
        if item.value is not None:
            found[item.key] = item.value
    return found


def put_values(values: Mapping[str, Any]) -> None:
    """Store each key's JSON value (a value of None deletes the key)."""
    now = datetime.now(UTC)
    with SettingItem.batch_write() as batch:
        for key, value in values.items():
            if value is None:
                batch.delete(SettingItem(key))
            else:
                batch.save(SettingItem(key, value=value, updated_at=now))


def delete_value(key: str) -> None:
    SettingItem(key).delete()


def values_with_prefix(prefix: str) -> dict[str, Any]:
    """Every ``key -> value`` whose key starts with ``prefix`` (a scan: the table is tiny)."""
    return {item.key: item.value for item in SettingItem.scan(SettingItem.key.startswith(prefix))
            if item.value is not None}


def get_sealed(key: str) -> str | None:
    try:
        return SettingItem.get(key, consistent_read=True).sealed
    except SettingItem.DoesNotExist:
        return None


def put_sealed(key: str, sealed: str, *, if_absent: bool = False) -> bool:
    """Store a sealed secret; with ``if_absent``, only if none exists (False when one did)."""
    item = SettingItem(key, sealed=sealed, updated_at=datetime.now(UTC))
    try:
        item.save(condition=SettingItem.key.does_not_exist() if if_absent else None)
    except PutError as exc:
        if if_absent and getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            return False
        raise
    return True
