"""Every message of the tricky corpus (tests/corpus: legacy charsets, broken MIME, RFC 2231
names, nesting, TNEF, DSNs, a 10 MB attachment) lists and reads through the API without
an error, and the API agrees with a decode of the raw bytes."""

from __future__ import annotations

import pytest
import requests

from chalicelib.mime.decode import extract_part, parse_message
from tests.corpus.generate import corpus_files, large_attachment_content, large_attachment_message
from tests.integration.mail_api_support import direct_imap, register_account

ACCEPT_ANY = {"Accept": "*/*"}
CORPUS_FOLDER = "Corpus"


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    messages = {path.name: path.read_bytes() for path in corpus_files()}
    messages["large-10mb-attachment.eml"] = large_attachment_message()
    return messages


@pytest.fixture
def loaded(api, dovecot, mail_user, corpus) -> tuple[str, dict[int, bytes]]:
    """An account whose Corpus mailbox holds the corpus; UID -> the bytes Dovecot stored."""
    account = register_account(api, dovecot, mail_user)
    with direct_imap(dovecot, mail_user) as client:
        client.create_folder(CORPUS_FOLDER)
        for raw in corpus.values():
            client.append(CORPUS_FOLDER, raw)
        client.select_folder(CORPUS_FOLDER, readonly=True)
        uids = client.search("ALL")
        stored = {uid: item[b"BODY[]"] for uid, item in client.fetch(uids, ["BODY.PEEK[]"]).items()}
    return account, stored


def test_corpus_is_large_enough(corpus):
    assert len(corpus) >= 26


def test_every_corpus_message_lists_reads_and_downloads(api, loaded):
    account, stored = loaded

    # When the whole mailbox is listed page by page
    entries, cursor = [], None
    while True:
        query = f"?path={CORPUS_FOLDER}&pageSize=7" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/v1/account/{account}/messages{query}")
        assert page.status == 200, page.body
        entries += page.json["messages"]
        cursor = page.json.get("nextPageCursor")
        if not cursor:
            break

    # Then every message is there once, and each reads, downloads and agrees with its raw decode
    assert sorted(entry["uid"] for entry in entries) == sorted(stored)
    for entry in entries:
        raw = stored[entry["uid"]]
        expected = parse_message(raw)
        where = f"uid {entry['uid']} ({expected.subject!r})"
        assert entry["subject"] == (expected.subject or ""), where
        assert entry.get("from", {}).get("address") == (expected.from_ or {}).get("address"), where

        message = api.get(f"/v1/account/{account}/message/{entry['id']}")
        assert message.status == 200, (where, message.body)
        assert message.json["text"].get("plain") == expected.text_plain, where
        assert message.json["text"].get("html") == expected.text_html, where

        text = api.get(f"/v1/account/{account}/text/{entry['text']['id']}")
        assert text.status == 200, (where, text.body)

        if len(raw) < 1_000_000:
            source = api.get(f"/v1/account/{account}/message/{entry['id']}/source", headers=ACCEPT_ANY)
            assert (source.status, source.body) == (200, raw), where
        assert [a.get("filename") for a in entry["attachments"]] == [a.filename for a in expected.attachments], where
        for listed, known in zip(entry["attachments"], expected.attachments, strict=True):
            if known.encoded_size > 1_000_000:
                continue  # the large one is checked below, through S3
            download = api.get(f"/v1/account/{account}/attachment/{listed['id']}", headers=ACCEPT_ANY)
            assert download.status == 200, (where, listed, download.body[:200])
            assert download.body == extract_part(raw, known.part).content, (where, listed)


def test_the_10_mb_message_is_handed_out_through_presigned_urls(api, loaded):
    account, stored = loaded
    found = api.post(f"/v1/account/{account}/search?path={CORPUS_FOLDER}", {"search": {"larger": 10_000_000}})
    [entry] = found.json["messages"]
    [attachment] = entry["attachments"]

    # The message itself (its text is small) answers inline
    message = api.get(f"/v1/account/{account}/message/{entry['id']}")
    assert message.status == 200 and message.json["subject"] == "Scan 10 MB"

    # The attachment and the source are too large for a Lambda response: 302 to S3
    for path in (f"attachment/{attachment['id']}", f"message/{entry['id']}/source"):
        response = api.get(f"/v1/account/{account}/{path}", headers=ACCEPT_ANY)
        assert response.status == 302, response.body[:300]
        assert response.headers["Location"] == response.json["url"]
        assert response.json["expiresAt"].endswith("Z")
        downloaded = requests.get(response.headers["Location"], timeout=30)
        assert downloaded.status_code == 200
        if path.startswith("attachment"):
            assert downloaded.content == large_attachment_content()
            assert downloaded.headers["Content-Type"] == "application/pdf"
            assert 'filename="scan.pdf"' in downloaded.headers["Content-Disposition"]
        else:
            assert downloaded.content == stored[entry["uid"]]
