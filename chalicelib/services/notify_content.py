"""``messageNew`` data: the listing entry plus the text and headers the notify settings ask for.

Owns three things:

- what the watcher fetches, from ``notifyText``/``notifyTextSize``/``notifyHeaders``
  (:func:`current_request`), read through a cache of ``IMAPLESS_WEBHOOK_CONFIG_CACHE_SECONDS``
  (the webhook consumers' setting): a change reaches every watcher within that time, and
  a busy watcher reads the settings table once per period, not once per message;
- decoding what was fetched (:func:`message_new_data`) with the mail API's own decoders,
  so ``data.text.plain``/``html`` equal what ``GET /text/{id}?maxBytes=n`` returns, and
  ``data.headers`` what ``GET /message/{id}`` shows under ``headers``;
- keeping the event under the SQS message limit (:func:`fit_event_data`).

Size rules: each text is cut at ``notifyTextSize`` bytes of UTF-8 (unset or 0: no limit of
its own). Whatever the setting, the event's ``data`` stays within
:data:`EVENT_DATA_BUDGET_BYTES` of JSON (SQS takes 256 KiB per message; the rest is left
for the envelope and the dead-letter attributes): ``headers`` beyond
:data:`HEADERS_BUDGET_BYTES` lose their last values, then the two texts share what is left
(the shorter keeps all it can, up to half) and ``hasMore`` is set. A listing still too
large (thousands of recipients or attachments) loses its headers, then the last entries
of its longest lists and finally the end of its subject, with ``truncated: true``.

Failure modes: a part that does not decode (malformed MIME, unknown or wrong charset)
falls back exactly as the API does; anything worse leaves that event without text (the
event is never held back). A settings read that fails reuses the last value read.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from chalicelib.events.publisher import SQS_MESSAGE_BYTES
from chalicelib.imap.message_content import ContentRequest
from chalicelib.imap.messages import MessageSummary
from chalicelib.mime.structure import parse_bodystructure
from chalicelib.observability import logger
from chalicelib.schemas.messages import MessageEntry
from chalicelib.services.message_views import entry_fields, listing_entry, text_refs
from chalicelib.services.messages import decode_texts
from chalicelib.settings import get_settings
from chalicelib.ttlcache import TtlCache
from chalicelib.webhooks import configuration

# The rest of the SQS message is left for the event's envelope and the dead-letter attributes.
EVENT_DATA_BUDGET_BYTES = SQS_MESSAGE_BYTES - 32 * 1024
HEADERS_BUDGET_BYTES = 32 * 1024
TEXT_KINDS = ("plain", "html")
# Listing fields that may lose their last entries when an event cannot fit otherwise.
TRUNCATABLE_LISTS = ("to", "cc", "bcc", "replyTo", "attachments")

_cache = TtlCache[ContentRequest](max_entries=1)
_last_known: list[ContentRequest] = []
_last_known_lock = threading.Lock()


# -- what to fetch ---------------------------------------------------------------------------


def request_from(settings: configuration.WebhookSettings) -> ContentRequest:
    """The fetch request the settings describe (``notifyTextSize`` unset or 0: as much as fits)."""
    text_bytes = None
    if settings.notify_text:
        text_bytes = min(settings.notify_text_size or EVENT_DATA_BUDGET_BYTES, EVENT_DATA_BUDGET_BYTES)
    return ContentRequest.build(text_bytes, settings.notify_headers)


def _load_request() -> ContentRequest:
    try:
        request = request_from(configuration.load_settings())
    except Exception:
        with _last_known_lock:
            if not _last_known:
                raise
            logger.warning("notify settings unreadable; using the last ones read", exc_info=True)
            return _last_known[0]
    with _last_known_lock:
        _last_known[:] = [request]
    return request


def current_request() -> ContentRequest:
    """The current request, at most ``IMAPLESS_WEBHOOK_CONFIG_CACHE_SECONDS`` old."""
    return _cache.get_or_load("request", _load_request, get_settings().webhook_config_cache_seconds)


def clear_cache() -> None:
    _cache.clear()


# -- what the event carries ------------------------------------------------------------------


def message_new_data(path: str, uid_validity: int, summary: MessageSummary) -> dict[str, Any]:
    """The listing entry of ``summary``, plus the text and headers it was fetched with."""
    content = summary.content
    if content is None or content.request.empty:
        return fit_event_data(_dump(listing_entry(summary, path, uid_validity)))
    request = content.request
    fields, parsed = entry_fields(summary, path, uid_validity, all_headers=bool(request.headers))
    data = _dump(MessageEntry(**fields))
    if request.headers:
        data["headers"] = select_headers(parsed.headers, request)
    if request.text_bytes is not None:
        data["text"].update(_decoded_text(summary, content.sections, request.text_bytes))
    return fit_event_data(data)


def select_headers(decoded: dict[str, list[str]], request: ContentRequest) -> dict[str, list[str]]:
    """The requested headers (lowercased names, values in message order); all of them for ``*``."""
    if request.all_headers:
        return decoded
    return {name: decoded[name] for name in request.headers if name in decoded}


def _decoded_text(summary: MessageSummary, sections: dict[str, bytes], max_bytes: int) -> dict[str, Any]:
    try:
        structure = parse_bodystructure(summary.bodystructure)
        texts, has_more = decode_texts(text_refs(structure, "*"), sections, structure, max_bytes)
    except Exception:  # noqa: BLE001 - one message's content must never hold back its event
        logger.warning("message text not decodable; event sent without it", exc_info=True,
                       extra={"uid": summary.uid})
        return {}
    found = {kind: texts[kind] for kind in TEXT_KINDS if texts.get(kind) is not None}
    return {**found, "hasMore": has_more}


def _dump(entry: MessageEntry) -> dict[str, Any]:
    return entry.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- the size limit --------------------------------------------------------------------------


def json_size(value: Any) -> int:
    """Bytes of ``value`` as the event's JSON carries it (UTF-8, no ASCII escaping)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


def fit_event_data(data: dict[str, Any], budget: int = EVENT_DATA_BUDGET_BYTES) -> dict[str, Any]:
    """``data`` cut to ``budget`` bytes of JSON (see the module docstring); changed in place."""
    if json_size(data) <= budget:
        return data
    headers = data.get("headers")
    if headers and json_size(headers) > HEADERS_BUDGET_BYTES:
        data["headers"] = cut_headers(headers, HEADERS_BUDGET_BYTES)
    text = data.get("text") or {}
    kinds = [kind for kind in TEXT_KINDS if text.get(kind)]
    if json_size(data) > budget and kinds:
        text["hasMore"] = True
        over = json_size(data) - budget
        sizes = {kind: json_size(text[kind]) for kind in kinds}
        allowance = max(0, sum(sizes.values()) - over)
        for index, kind in enumerate(sorted(kinds, key=sizes.__getitem__)):
            share = min(sizes[kind], allowance // (len(kinds) - index))
            text[kind] = cut_to_json_size(text[kind], share)
            allowance -= json_size(text[kind])
    if json_size(data) > budget and "headers" in data:
        data["headers"] = {}
    if json_size(data) > budget:
        _cut_listing(data, budget)
    return data


def _cut_listing(data: dict[str, Any], budget: int) -> None:
    """The last resort for a listing that alone is over the budget (a mailing with thousands
    of visible recipients, a message with thousands of attachments): drop the last entries
    of the longest lists, then cut the subject, and say so with ``truncated: true``. Never
    held back: an event SQS refuses would be retried forever and hold its account's queue."""
    data["truncated"] = True
    over = json_size(data) - budget
    lists = sorted((key for key in TRUNCATABLE_LISTS if isinstance(data.get(key), list) and data[key]),
                   key=lambda key: -json_size(data[key]))
    for key in lists:
        entries = data[key]
        while entries and over > 0:
            over -= json_size(entries.pop()) + 1
    over = json_size(data) - budget  # the estimate above ignores a list's last comma
    if over > 0 and isinstance(data.get("subject"), str):
        data["subject"] = cut_to_json_size(data["subject"], max(0, json_size(data["subject"]) - over))


def cut_to_json_size(text: str, limit: int) -> str:
    """The longest prefix of ``text`` (whole characters) whose JSON string is at most ``limit`` bytes."""
    if json_size(text) <= limit:
        return text
    encoded = text.encode("utf-8", "surrogatepass")
    cut = max(0, limit - 2)
    while True:
        candidate = encoded[:cut].decode("utf-8", "ignore")
        size = json_size(candidate)
        if size <= limit or cut == 0:
            return candidate if size <= limit else ""
        # Escaping inflates evenly enough that scaling converges in a step or two.
        cut = max(0, min(cut - 1, cut * limit // size))


def cut_headers(headers: dict[str, list[str]], limit: int) -> dict[str, list[str]]:
    """The first header values, in order, that fit ``limit`` bytes of JSON."""
    kept: dict[str, list[str]] = {}
    used = 2
    for name, values in headers.items():
        for value in values:
            cost = json_size(value) + 1 + (0 if name in kept else json_size(name) + 3)
            if used + cost > limit:
                return kept
            kept.setdefault(name, []).append(value)
            used += cost
    return kept
