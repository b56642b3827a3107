"""OAuth2 application records: one item per application in the settings table.

Key ``oauth2App:<id>``; ``value`` holds the application's fields without its secret,
``sealed`` its client secret (opaque here: sealing and opening happen in the service layer,
like account credentials). The settings table is small and holds a deployment's few
applications beside its settings, so listing is a scan by key prefix.

Invariants: an id is created once (conditional put); a record's ``value`` never holds the
client secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError

from chalicelib.errors import ConflictError, OAuth2AppNotFoundError
from chalicelib.store.settings import SettingItem

KEY_PREFIX = "oauth2App:"


@dataclass
class StoredApp:
    id: str
    fields: dict[str, Any]  # the API's field names, without clientSecret
    sealed_client_secret: str
    created: datetime
    updated: datetime


def _key(app_id: str) -> str:
    return KEY_PREFIX + app_id


def _from_item(item: SettingItem) -> StoredApp:
    value = dict(item.value or {})
    created = datetime.fromisoformat(value.pop("created"))
    return StoredApp(id=item.key[len(KEY_PREFIX):], fields=value, sealed_client_secret=item.sealed or "",
                     created=created, updated=item.updated_at)


def _item(app: StoredApp) -> SettingItem:
    return SettingItem(_key(app.id), value={**app.fields, "created": app.created.isoformat()},
                       sealed=app.sealed_client_secret, updated_at=app.updated)


def _not_found(app_id: str) -> OAuth2AppNotFoundError:
    return OAuth2AppNotFoundError(f"OAuth2 application {app_id!r} does not exist", details={"app": app_id})


def insert_app(app: StoredApp) -> StoredApp:
    try:
        _item(app).save(condition=SettingItem.key.does_not_exist())
    except PutError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise ConflictError(f"OAuth2 application {app.id!r} already exists") from None
        raise
    return app


def get_app(app_id: str) -> StoredApp:
    try:
        return _from_item(SettingItem.get(_key(app_id), consistent_read=True))
    except DoesNotExist:
        raise _not_found(app_id) from None


def list_apps() -> list[StoredApp]:
    """Every application, oldest first (a scan of the small settings table)."""
    found = [_from_item(item) for item in SettingItem.scan(SettingItem.key.startswith(KEY_PREFIX))]
    return sorted(found, key=lambda app: (app.created, app.id))


def replace_app(app: StoredApp) -> StoredApp:
    """Write back a changed application that exists; OAuth2AppNotFoundError if it is gone."""
    app.updated = datetime.now(UTC)
    try:
        _item(app).save(condition=SettingItem.key.exists())
    except PutError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise _not_found(app.id) from None
        raise
    return app


def delete_app(app_id: str) -> None:
    try:
        SettingItem(_key(app_id)).delete(condition=SettingItem.key.exists())
    except DeleteError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise _not_found(app_id) from None
        raise
