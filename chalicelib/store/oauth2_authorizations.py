"""Hosted authorizations in flight: what a ``POST /v1/authentication/form`` asked for, kept in
the settings table under ``oauth2Authorization:<state id>`` for the provider's callback.

Invariants: an authorization is used at most once: :func:`use_authorization` marks the item
used on the condition that it was not (one conditional update), so of two callbacks with the
same ``state`` (a replay, a double click) only one proceeds; the other still learns where to
send the user back (the item stays). Nothing secret is stored here (the PKCE verifier is
derived, see :mod:`chalicelib.services.oauth2_authorization_state`). Items carry their ``expires``;
they are small and are not cleaned up yet.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.store.settings import SettingItem

KEY_PREFIX = "oauth2Authorization:"
_USED = "used"  # the marker in the item's ``sealed`` attribute (no secret is ever sealed here)


def put_authorization(state_id: str, value: dict[str, Any]) -> None:
    SettingItem(KEY_PREFIX + state_id, value=value, updated_at=datetime.now(UTC)).save(
        condition=SettingItem.key.does_not_exist())


def get_authorization(state_id: str) -> dict[str, Any] | None:
    try:
        return dict(SettingItem.get(KEY_PREFIX + state_id, consistent_read=True).value or {})
    except DoesNotExist:
        return None


def use_authorization(state_id: str) -> bool:
    """Mark the authorization used; False if it was used already (or is unknown)."""
    item = SettingItem(KEY_PREFIX + state_id)
    try:
        item.update(actions=[SettingItem.sealed.set(_USED), SettingItem.updated_at.set(datetime.now(UTC))],
                    condition=SettingItem.key.exists() & SettingItem.sealed.does_not_exist())
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            return False
        raise
    return True
