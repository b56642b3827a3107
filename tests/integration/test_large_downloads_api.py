"""Source and attachment downloads over REST against real servers and moto's S3: what is
larger than the inline bound is streamed to S3 in partial FETCH windows, never read whole.
The download tests run on every IMAP server family (partial FETCH ``BODY.PEEK[]<o.n>`` on
Dovecot, Cyrus and Courier alike).

The bound is lowered to 200 kB for the tests (``IMAPLESS_MAX_RESPONSE_BYTES``) and the window
set to S3's smallest part (5 MiB), so a 12 MB message takes three windows beyond the first.
Every IMAP FETCH the API sends is recorded with the body octets it brought back.
"""

from __future__ import annotations

import math
import os
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
import requests
from imapclient import IMAPClient

from chalicelib.errors import MessageNotFoundError
from chalicelib.imap import messages as imap_messages
from chalicelib.message_ids import decode_message_id
from chalicelib.services import downloads
from chalicelib.services.mail_sessions import mail_connection
from chalicelib.settings import get_settings, reset_settings
from tests.integration.mail_api_support import fill, make_message

BOUND = 200_000
WINDOW = 5 * 1024 * 1024
ACCEPT_ANY = {"Accept": "*/*"}


@dataclass(frozen=True)
class Fetch:
    items: tuple[str, ...]
    body_octets: int


@pytest.fixture
def low_bound(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("IMAPLESS_MAX_RESPONSE_BYTES", str(BOUND))
    monkeypatch.setenv("IMAPLESS_DOWNLOAD_CHUNK_BYTES", str(WINDOW))
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def fetches(monkeypatch) -> list[Fetch]:
    """Every FETCH imapclient sends in this test, with the BODY[...] octets of its answer."""
    recorded: list[Fetch] = []
    original = IMAPClient.fetch

    def recording_fetch(self, messages, data, modifiers=None):
        answer = original(self, messages, data, modifiers)
        octets = sum(len(value) for item in answer.values() for key, value in item.items()
                     if isinstance(key, bytes) and key.startswith(b"BODY[") and isinstance(value, bytes))
        recorded.append(Fetch(tuple(str(item) for item in data), octets))
        return answer

    monkeypatch.setattr(IMAPClient, "fetch", recording_fetch)
    return recorded


def entry(api, account: str) -> dict:
    [message] = api.get(f"/v1/account/{account}/messages?path=INBOX").json["messages"]
    return message


def body_fetches(fetches: list[Fetch]) -> list[Fetch]:
    return [fetch for fetch in fetches if any(item.startswith("BODY.PEEK[") for item in fetch.items)]


def assert_streamed_in_windows(fetches: list[Fetch], total_octets: int) -> None:
    """Then: one bounded first FETCH, then full windows, never more than one window at a time."""
    windows = body_fetches(fetches)
    assert all("<" in item for fetch in windows for item in fetch.items if item.startswith("BODY.PEEK[")), windows
    assert windows[0].body_octets == BOUND
    assert max(fetch.body_octets for fetch in windows) <= WINDOW < total_octets / 2
    assert sum(fetch.body_octets for fetch in windows) == total_octets
    assert len(windows) == 1 + math.ceil((total_octets - BOUND + 1) / WINDOW)


@pytest.mark.imap_families()
class TestAboveTheBound:
    @pytest.fixture
    def large(self, imap, low_bound) -> tuple[bytes, bytes]:
        content = os.urandom(9 * 1024 * 1024)
        raw = make_message("scan", attachments=[("scan.bin", "application/octet-stream", content)])
        fill(imap, "INBOX", [raw])
        return raw, content

    def test_the_source_is_streamed_to_s3_and_redirected(self, api, account, large, fetches):
        # Given a 12 MB message (9 MB attachment, base64) and a 200 kB inline bound
        raw, _ = large
        message = entry(api, account)
        fetches.clear()

        # When its source is downloaded
        response = api.get(f"/v1/account/{account}/message/{message['id']}/source", headers=ACCEPT_ANY)

        # Then it is a redirect to S3 holding exactly the message
        assert response.status == 302, response.body[:300]
        assert response.json["size"] == len(raw)
        downloaded = requests.get(response.headers["Location"], timeout=60)
        assert downloaded.status_code == 200 and downloaded.content == raw
        # And it was read in windows of at most 5 MiB, never whole
        assert_streamed_in_windows(fetches, len(raw))

    def test_the_attachment_is_decoded_window_by_window_into_s3(self, api, account, large, fetches):
        _, content = large
        [attachment] = entry(api, account)["attachments"]
        fetches.clear()

        response = api.get(f"/v1/account/{account}/attachment/{attachment['id']}", headers=ACCEPT_ANY)

        assert response.status == 302, response.body[:300]
        assert (response.json["size"], response.json["filename"]) == (len(content), "scan.bin")
        downloaded = requests.get(response.headers["Location"], timeout=60)
        assert downloaded.status_code == 200 and downloaded.content == content
        assert downloaded.headers["Content-Type"] == "application/octet-stream"
        assert_streamed_in_windows(fetches, attachment["encodedSize"])


@pytest.mark.imap_families()
class TestBelowTheBound:
    @pytest.fixture
    def small(self, imap, low_bound) -> tuple[bytes, bytes]:
        content = os.urandom(50_000)
        raw = make_message("small", attachments=[("note.bin", "application/octet-stream", content)])
        fill(imap, "INBOX", [raw])
        return raw, content

    def test_the_source_answers_inline_after_one_fetch(self, api, account, small, fetches):
        raw, _ = small
        message = entry(api, account)
        fetches.clear()
        response = api.get(f"/v1/account/{account}/message/{message['id']}/source", headers=ACCEPT_ANY)
        assert (response.status, response.body) == (200, raw)
        assert [fetch.body_octets for fetch in body_fetches(fetches)] == [len(raw)]

    def test_the_attachment_answers_inline_after_one_fetch(self, api, account, small, fetches):
        _, content = small
        [attachment] = entry(api, account)["attachments"]
        fetches.clear()
        response = api.get(f"/v1/account/{account}/attachment/{attachment['id']}", headers=ACCEPT_ANY)
        assert (response.status, response.body) == (200, content)
        assert [fetch.body_octets for fetch in body_fetches(fetches)] == [attachment["encodedSize"]]


def test_a_failure_midway_aborts_the_multipart_upload(aws_resources, low_bound):
    # Given a stream whose source fails after the first part went to S3 (the message was expunged)
    def windows() -> Iterator[bytes]:
        yield os.urandom(WINDOW)
        raise MessageNotFoundError("the message no longer exists in its mailbox")

    # When it is uploaded
    with pytest.raises(MessageNotFoundError):
        downloads.upload_stream("acc-abort", windows(), "application/octet-stream", "gone.bin")

    # Then the error comes through and no unfinished upload is left behind in the bucket
    s3 = boto3.client("s3", region_name=get_settings().aws_region)
    assert s3.list_multipart_uploads(Bucket=downloads.bucket_name()).get("Uploads", []) == []


def test_one_window_costs_about_one_window_of_memory(api, account, imap):
    # Given a 12 MB message
    fill(imap, "INBOX", [make_message("big", attachments=[("big.bin", "application/octet-stream",
                                                            os.urandom(9 * 1024 * 1024))])])
    ref = decode_message_id(entry(api, account)["id"])

    # When one 5 MiB window of it is fetched, with allocations traced
    with mail_connection(account) as conn:
        imap_messages.select_mailbox(conn, "INBOX")
        tracemalloc.start()
        try:
            data, _ = imap_messages.fetch_window(conn, ref.uid, "", 0, WINDOW)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # Then the process held the window and little else (no repr() of it for a debug log)
    assert len(data) == WINDOW
    assert peak < 1.2 * WINDOW, f"peak {peak / 1e6:.1f} MB for a {WINDOW / 1e6:.1f} MB window"
