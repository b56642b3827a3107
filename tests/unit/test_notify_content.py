"""messageNew text and headers: what is fetched (from raw FETCH lines), how it is decoded, how it is cut."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st
from imapclient.response_parser import parse_fetch_response

from chalicelib.events.model import Event
from chalicelib.events.publisher import SQS_BATCH_BYTES, SQS_BATCH_LIMIT, _batches
from chalicelib.imap.message_content import SPECULATIVE_BYTES, ContentRequest, FetchedContent
from chalicelib.imap.messages import body_sections, summary_from_fetch
from chalicelib.services.notify_content import (
    EVENT_DATA_BUDGET_BYTES,
    HEADERS_BUDGET_BYTES,
    cut_to_json_size,
    fit_event_data,
    json_size,
    message_new_data,
    request_from,
)
from chalicelib.webhooks.configuration import WebhookSettings
from tests.unit.test_sync_imap_responses import untagged

HEADERS = (b"Subject: =?iso-8859-1?q?Caf=E9?=\r\nX-Custom: one\r\nX-Custom: two\r\n"
           b"From: A <a@example.test>\r\n\r\n")
ALTERNATIVE = (b'(("text" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 24 1 NIL NIL NIL NIL)'
               b'("text" "html" ("charset" "utf-8") NIL NIL "base64" 20 1 NIL NIL NIL NIL) "alternative" '
               b'("boundary" "b1") NIL NIL NIL)')
MIXED = (b'((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 1 NIL NIL NIL NIL)'
         b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 12 1 NIL NIL NIL NIL) "alternative" '
         b'("boundary" "b2") NIL NIL NIL)("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 5000 NIL '
         b'("attachment" ("filename" "a.pdf")) NIL NIL) "mixed" ("boundary" "b1") NIL NIL NIL)')


def fetched(structure: bytes, *bodies: tuple[bytes, bytes], uid: int = 9):
    """A summary and its body sections from one raw Dovecot FETCH response with literals."""
    raw = (b"* 3 FETCH (UID %d FLAGS () RFC822.SIZE 900 INTERNALDATE \"21-Nov-2026 06:29:59 +0000\" "
           b"BODYSTRUCTURE " % uid + structure + b" BODY[HEADER.FIELDS (SUBJECT X-CUSTOM)] {%d}\r\n" % len(HEADERS)
           + HEADERS)
    for key, data in bodies:
        raw += b" " + key + b" {%d}\r\n" % len(data) + data
    raw += b")\r\n"
    [response] = untagged(raw)
    [item] = parse_fetch_response(response.parts, uid_is_key=False).values()
    return summary_from_fetch(uid, item), body_sections(item)


# -- what is fetched -------------------------------------------------------------------------


def test_settings_become_a_fetch_request_with_normalized_header_names():
    # Given: names in any case, repeated, and one that is not a header name
    request = ContentRequest.build(None, ["X-Custom", "x-custom", " List-ID ", "bad name", "a(b"])
    # Then: lowercased, once each, invalid dropped; names with IMAP specials go out quoted
    assert request.headers == ("x-custom", "list-id", "a(b")
    assert request.header_item().endswith('MESSAGE-ID IN-REPLY-TO X-CUSTOM LIST-ID "A(B")]')
    assert ContentRequest.build(5, ["subject", "*"]) == ContentRequest(5, ("*",))
    assert ContentRequest.build(5, ["*"]).header_item() == "BODY.PEEK[HEADER]"
    # Then: unset or 0 notifyTextSize means as much as fits; off means no text at all
    assert request_from(WebhookSettings(notify_text=True)).text_bytes == EVENT_DATA_BUDGET_BYTES
    assert request_from(WebhookSettings(notify_text=True, notify_text_size=0)).text_bytes == EVENT_DATA_BUDGET_BYTES
    assert request_from(WebhookSettings(notify_text=True, notify_text_size=300)).text_bytes == 300
    assert request_from(WebhookSettings(notify_text=False, notify_text_size=300)).empty


def test_alternative_message_keeps_the_guessed_plain_part_and_fetches_the_html():
    # Given: section 1 came with the listing FETCH (partial answer "BODY[1]<0>")
    summary, sections = fetched(ALTERNATIVE, (b"BODY[1]<0>", b"Caf=E9 cr=E8me=\r\n br=FBl=E9e"))
    # When: the watcher plans the rest
    kept, missing = ContentRequest(1000).plan_text(summary, sections)
    # Then: plain is complete; html is fetched whole (smaller than the partial limit)
    assert kept == {"1": b"Caf=E9 cr=E8me=\r\n br=FBl=E9e"}
    assert missing == (("2", 0, None),)


def test_mixed_message_drops_the_guess_and_fetches_the_nested_text_parts():
    # Given: section 1 is the multipart/alternative: its raw body is not a text part
    summary, sections = fetched(MIXED, (b"BODY[1]<0>", b"--b2\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b2"))
    kept, missing = ContentRequest(1000).plan_text(summary, sections)
    assert kept == {}
    assert missing == (("1.1", 0, None), ("1.2", 0, None))


def test_a_long_single_part_continues_where_the_guess_stopped():
    # Given: a 50,000-octet text part of which the guess brought the first 16 KiB
    structure = b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 50000 800 NIL NIL NIL NIL)'
    summary, sections = fetched(structure, (b"BODY[1]<0>", b"x" * SPECULATIVE_BYTES))
    # Then: for 100 KB of text, the rest of the part (with slack for inexact sizes)
    assert ContentRequest(100_000).plan_text(summary, sections)[1] == (("1", SPECULATIVE_BYTES, 50000 + 4096 - 16384),)
    # Then: for 1,000 bytes, what the guess brought is already more than the partial limit
    assert ContentRequest(1000).plan_text(summary, sections)[1] == ()
    # Then: without notifyText nothing is fetched
    assert ContentRequest(None, ("subject",)).plan_text(summary, sections) == ({}, ())


def test_fetch_bound_counts_the_most_a_follow_up_fetch_can_bring():
    request = ContentRequest(1000)
    # a part fetched whole is at most the partial limit (3 x 1000 + 4096); a range is its count
    assert request.fetch_bound((("2", 0, None), ("1", SPECULATIVE_BYTES, 5000))) == 7096 + 5000


def test_missing_sections_answered_nil_are_empty():
    item = parse_fetch_response([(b"1 (UID 5 BODY[1.2]<0> NIL BODY[2] \"\" BODY[HEADER] {2}", b"\r\n"), b")"],
                                uid_is_key=False)[1]
    assert body_sections(item) == {"1.2": b"", "2": b""}


# -- how it is decoded -----------------------------------------------------------------------


def describe(summary, sections: dict[str, bytes], request: ContentRequest) -> dict:
    return message_new_data("INBOX", 1700000001, replace(summary, content=FetchedContent(request, sections)))


def test_texts_are_transfer_and_charset_decoded_and_headers_selected():
    summary, _ = fetched(ALTERNATIVE)
    sections = {"1": b"Caf=E9 cr=E8me=\r\n br=FBl=E9e", "2": b"PHA+Q2Fmw6k8L3A+"}
    data = describe(summary, sections, ContentRequest(1000, ("x-custom", "subject", "x-absent")))
    assert data["text"]["plain"] == "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e"
    assert data["text"]["html"] == "<p>Caf\u00e9</p>"
    assert data["text"]["hasMore"] is False and data["text"]["encodedSize"] == {"plain": 24, "html": 20}
    assert data["headers"] == {"x-custom": ["one", "two"], "subject": ["Caf\u00e9"]}
    assert data["subject"] == "Caf\u00e9"


def test_unknown_charset_falls_back_like_the_api():
    structure = b'("text" "plain" ("charset" "x-no-such-charset") NIL NIL "8bit" 11 1 NIL NIL NIL NIL)'
    summary, _ = fetched(structure)
    data = describe(summary, {"1": "d\u00e9j\u00e0 vu".encode()}, ContentRequest(1000))
    assert data["text"]["plain"] == "d\u00e9j\u00e0 vu"
    assert data["text"]["hasMore"] is False


def test_text_is_cut_at_the_requested_bytes_on_a_character_boundary():
    structure = b'("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 40 1 NIL NIL NIL NIL)'
    summary, _ = fetched(structure)
    # When: 7 bytes are asked for: "\u00e9t\u00e9 " is 6, the next "\u00e9" would straddle the limit
    data = describe(summary, {"1": ("\u00e9t\u00e9 " * 8).encode()}, ContentRequest(7))
    assert data["text"]["plain"] == "\u00e9t\u00e9 "
    assert len(data["text"]["plain"].encode()) <= 7 and data["text"]["hasMore"] is True


def test_without_a_request_the_event_is_the_listing_entry():
    summary, _ = fetched(ALTERNATIVE)
    data = message_new_data("INBOX", 1700000001, summary)
    assert set(data["text"]) == {"id", "encodedSize"} and "headers" not in data


# -- how it is cut to fit SQS ----------------------------------------------------------------


def test_big_texts_share_the_budget_and_the_event_fits_in_one_sqs_message():
    # Given: 300 KB of plain text full of characters JSON escapes, 20 KB of CJK html
    data = {"id": "x", "subject": "s", "text": {"id": "t", "plain": '"\\\n' * 100_000, "html": "\u6f22" * 7_000,
                                               "hasMore": False}}
    fitted = fit_event_data(data)
    # Then: within the budget, html (the shorter) kept whole, plain cut, and hasMore says so
    assert json_size(fitted) <= EVENT_DATA_BUDGET_BYTES
    assert fitted["text"]["html"] == "\u6f22" * 7_000
    assert fitted["text"]["plain"] and fitted["text"]["hasMore"] is True
    event = Event(id="evt_1", account="a" * 64, event="messageNew", path="p" * 1000, data=fitted)
    assert len(event.to_json().encode()) < 256 * 1024


def test_many_headers_keep_their_first_values_within_their_budget():
    headers = {f"x-h{i}": ["v" * 1000] for i in range(300)}
    data = fit_event_data({"text": {"plain": "a" * 250_000}, "headers": headers})
    assert json_size(data["headers"]) <= HEADERS_BUDGET_BYTES
    assert list(data["headers"])[:3] == ["x-h0", "x-h1", "x-h2"]
    assert json_size(data) <= EVENT_DATA_BUDGET_BYTES


@given(st.text(), st.integers(min_value=0, max_value=400))
def test_cut_text_is_a_prefix_within_the_limit(text, limit):
    cut = cut_to_json_size(text, limit)
    assert text.startswith(cut)
    assert json_size(cut) <= limit or cut == ""
    assert json.loads(json.dumps(cut)) == cut


def test_publisher_batches_stay_within_the_sqs_batch_size():
    big = Event(id="evt_b", account="a", event="messageNew", data={"t": "x" * 200_000})
    small = Event(id="evt_s", account="a", event="messageNew")
    bodies = [(e, e.to_json()) for e in (small, big, small, big, *[small] * 12)]
    batches = list(_batches(bodies))
    assert [len(b) for b in batches] == [3, SQS_BATCH_LIMIT, 3]
    assert all(sum(len(body.encode()) for _, body in b) <= SQS_BATCH_BYTES for b in batches)
    assert [e for b in batches for e, _ in b] == [e for e, _ in bodies]


def test_a_listing_too_big_for_sqs_loses_its_last_recipients_and_says_so():
    # Given: a mailing with 20,000 visible recipients and a huge subject (no text asked for)
    recipients = [{"name": f"Recipient {n}", "address": f"r{n}@example.test"} for n in range(20_000)]
    data = {"id": "x", "subject": "s" * 300_000, "to": list(recipients), "cc": recipients[:50],
            "attachments": [], "headers": {"x-a": ["v"]}}
    fitted = fit_event_data(data)
    # Then: it fits, the first recipients are kept in order, and the cut is announced
    assert json_size(fitted) <= EVENT_DATA_BUDGET_BYTES
    assert fitted["truncated"] is True and fitted["headers"] == {}
    assert fitted["to"] == recipients[:len(fitted["to"])]
    assert fitted["to"] == [] and fitted["cc"] == [] and fitted["subject"] == "s" * len(fitted["subject"])
    event = Event(id="evt_1", account="a" * 64, event="messageNew", path="INBOX", data=fitted)
    assert len(event.to_json().encode()) < 256 * 1024


def test_recipients_are_cut_before_the_subject():
    recipients = [{"name": f"Recipient {n}", "address": f"r{n}@example.test"} for n in range(20_000)]
    fitted = fit_event_data({"id": "x", "subject": "Quarterly report", "to": list(recipients)})
    assert json_size(fitted) <= EVENT_DATA_BUDGET_BYTES and fitted["truncated"] is True
    assert fitted["subject"] == "Quarterly report"
    assert 1000 < len(fitted["to"]) < 20_000 and fitted["to"] == recipients[:len(fitted["to"])]


def test_an_event_that_fits_is_not_marked_truncated():
    data = {"id": "x", "subject": "hello", "to": [{"name": "", "address": "a@example.test"}]}
    assert "truncated" not in fit_event_data(data)
