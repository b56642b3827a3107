"""Header values -> Python values: decoded text, addresses, message ids and dates.

The functions the rest of the application calls for headers live here (text decoding is
implemented in :mod:`.encodedwords`, address lists in :mod:`.addresses`). Every function
accepts ``str``, ``bytes`` or None and never raises on malformed input: garbage yields
``""``, ``None`` or ``[]``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz

from chalicelib.mime.addresses import parse_address_list
from chalicelib.mime.encodedwords import HeaderInput, decode_header_value

__all__ = ["decode_header_value", "parse_address_list", "parse_date", "parse_message_id", "parse_references"]

HEADER_NAME_PATTERN = r"^[!-9;-~]+$"  # RFC 5322 field-name: printable ASCII but ':'
_MESSAGE_ID = re.compile(r"<([^<>]*)>")
_COMMENT = re.compile(r"\([^()]*\)")
_MAX_OFFSET = timedelta(hours=23, minutes=59)


def parse_message_id(value: HeaderInput) -> str | None:
    """The first message id in ``<…>`` form (added when a mailer omitted them), or None."""
    ids = _message_ids(value)
    return ids[0] if ids else None


def parse_references(value: HeaderInput) -> list[str]:
    """Every message id of a References/In-Reply-To value, in order, without duplicates."""
    return list(dict.fromkeys(_message_ids(value)))


def _message_ids(value: HeaderInput) -> list[str]:
    text = decode_header_value(value)
    bracketed = [re.sub(r"\s+", "", found) for found in _MESSAGE_ID.findall(text)]
    found = [f"<{message_id}>" for message_id in bracketed if message_id]
    if found or "<" in text:
        return found
    # Some scripts write bare ids ("abc@example.com"), one or several, comma or space separated;
    # RFC 822-era In-Reply-To prose ("Your message of ...") has no "@" token and yields nothing.
    tokens = re.split(r"[\s,]+", _COMMENT.sub(" ", text))
    bare = (token.strip('"') for token in tokens)
    return [f"<{token}>" for token in bare if "@" in token]


def parse_date(value: HeaderInput) -> datetime | None:
    """A timezone-aware datetime, or None for garbage. A missing zone (``-0000``) means UTC."""
    text = decode_header_value(value)
    if not text:
        return None
    try:
        parsed = parsedate_tz(text)
    except (ValueError, IndexError, TypeError, OverflowError):
        parsed = None
    if parsed is None:
        return _parse_iso_date(text)
    year, month, day, hour, minute, second = parsed[:6]
    offset = timedelta(seconds=parsed[9] or 0)
    if abs(offset) > _MAX_OFFSET:
        offset = timedelta(0)
    try:
        # A leap second (":60") is valid in RFC 5322 but not in datetime.
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=timezone(offset))
    except (ValueError, OverflowError, TypeError):
        return None


def _parse_iso_date(text: str) -> datetime | None:
    # Some web mailers and scripts write ISO 8601 into the Date header.
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
