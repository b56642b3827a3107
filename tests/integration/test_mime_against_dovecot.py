"""The MIME layer agrees with a real IMAP server about every corpus message.

Every message of ``tests/corpus`` (plus the generated 10 MB one) is appended to a Dovecot
mailbox byte for byte. Then, for each message:
- ``structure.py`` reading Dovecot's BODYSTRUCTURE and ``decode.py`` reading the raw bytes
  list the same attachments (section numbers, names, types, sizes, flags) and the same
  text parts; this is what lets the API list from BODYSTRUCTURE and fetch from bytes;
- each attachment fetched alone with ``BODY.PEEK[<part>]`` and transfer-decoded equals what
  ``extract_part`` cuts out of the full message, so Dovecot and we number parts alike.
"""

from __future__ import annotations

import re
import secrets
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from imapclient import IMAPClient

from chalicelib.mime.decode import decode_transfer_encoding, extract_part, parse_message
from chalicelib.mime.structure import parse_bodystructure
from tests.corpus.generate import LARGE_ATTACHMENT_NAME, corpus_files, large_attachment_message
from tests.support.certs import TestPKI
from tests.support.fixtures import MAIL_DOMAIN
from tests.support.mailservers import HOSTNAME, Dovecot

MAILBOX = "Corpus"
CORPUS_NAMES = [path.name for path in corpus_files()] + [LARGE_ATTACHMENT_NAME]


@dataclass(frozen=True)
class StoredMessage:
    uid: int
    original: bytes
    fetched: bytes
    bodystructure: Any


@dataclass
class CorpusMailbox:
    client: IMAPClient
    messages: dict[str, StoredMessage]

    def fetch_section(self, uid: int, part: str) -> bytes:
        key = f"BODY[{part}]".encode()
        return self.client.fetch([uid], [f"BODY.PEEK[{part}]"])[uid][key]


def corpus_bytes() -> dict[str, bytes]:
    messages = {path.name: path.read_bytes() for path in corpus_files()}
    messages[LARGE_ATTACHMENT_NAME] = large_attachment_message()
    return messages


@pytest.fixture(scope="module")
def corpus_mailbox(dovecot: Dovecot, test_pki: TestPKI) -> Iterator[CorpusMailbox]:
    # Given every corpus message appended, unchanged, to a fresh mailbox of a new user
    email, password = f"corpus-{secrets.token_hex(6)}@{MAIL_DOMAIN}", secrets.token_urlsafe(16)
    dovecot.add_user(email, password)
    context = ssl.create_default_context(cafile=str(test_pki.ca_file))
    with IMAPClient(HOSTNAME, port=dovecot.imaps_port, ssl=True, ssl_context=context, timeout=30) as client:
        client.login(email, password)
        client.create_folder(MAILBOX)
        uids: dict[str, int] = {}
        originals = corpus_bytes()
        for name, raw in originals.items():
            response = client.append(MAILBOX, raw)
            uids[name] = int(re.search(rb"APPENDUID \d+ (\d+)", response).group(1))
        client.select_folder(MAILBOX, readonly=True)
        fetched = client.fetch(list(uids.values()), ["BODYSTRUCTURE", "BODY.PEEK[]"])
        yield CorpusMailbox(client=client, messages={
            name: StoredMessage(uid=uid, original=originals[name], fetched=fetched[uid][b"BODY[]"],
                                bodystructure=fetched[uid][b"BODYSTRUCTURE"])
            for name, uid in uids.items()
        })


def test_every_corpus_message_is_stored_byte_for_byte(corpus_mailbox: CorpusMailbox) -> None:
    # Then Dovecot hands back exactly what was appended (so both sides see the same bytes)
    changed = [name for name, stored in corpus_mailbox.messages.items() if stored.fetched != stored.original]
    assert changed == []


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_bodystructure_and_raw_bytes_give_the_same_structure(corpus_mailbox: CorpusMailbox, name: str) -> None:
    stored = corpus_mailbox.messages[name]
    # When the structure is read from Dovecot's BODYSTRUCTURE and the message from its bytes
    from_server = parse_bodystructure(stored.bodystructure)
    from_bytes = parse_message(stored.fetched)
    # Then both list the same attachments and the same text parts
    assert from_server.attachments == from_bytes.attachments
    assert from_server.text == from_bytes.text_parts


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_attachments_fetched_by_section_equal_extracted_parts(corpus_mailbox: CorpusMailbox, name: str) -> None:
    stored = corpus_mailbox.messages[name]
    attachments = parse_bodystructure(stored.bodystructure).attachments
    for attachment in attachments:
        # When one attachment is fetched from the server by its section number and decoded
        section = corpus_mailbox.fetch_section(stored.uid, attachment.part)
        from_server = decode_transfer_encoding(section, attachment.encoding)
        # Then it is the content extract_part finds under that number in the full message
        extracted = extract_part(stored.fetched, attachment.part)
        assert extracted is not None, attachment.part
        assert from_server == extracted.content, attachment.part
        assert extracted.content_type == attachment.content_type
        assert extracted.filename == attachment.filename
