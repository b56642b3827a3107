"""The deployment's cursor key: made once on first use, the same for every process, stored sealed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def test_the_cursor_key_is_made_once_even_by_concurrent_first_uses_and_stored_sealed(aws_resources):
    from chalicelib.services import cursors
    from chalicelib.store import settings as settings_store

    # Given a deployment without a cursor key
    settings_store.delete_value(cursors.KEY_SETTING)
    try:
        # When eight processes (threads, each without the process cache) need it at once
        with ThreadPoolExecutor(max_workers=8) as pool:
            keys = list(pool.map(lambda _: cursors.deployment_key.__wrapped__(), range(8)))
        # Then they all got the one key that was stored, and the store holds it sealed only
        assert len(set(keys)) == 1 and len(keys[0]) == cursors.KEY_BYTES
        assert cursors.deployment_key.__wrapped__() == keys[0]
        assert keys[0].hex() not in settings_store.get_sealed(cursors.KEY_SETTING)
    finally:
        cursors.deployment_key.cache_clear()
