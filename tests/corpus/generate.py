"""Corpus messages too big to commit, generated with fixed bytes at test time.

``large_attachment_message()`` is a 10 MiB PDF-typed attachment (deterministic pseudo-random
content, base64 in 76-character lines, CRLF line ends) after a short text part: the shape of
a scanned document sent from a phone, and large enough to exercise streaming limits.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path

CORPUS_DIR = Path(__file__).parent
LARGE_ATTACHMENT_BYTES = 10 * 1024 * 1024
LARGE_ATTACHMENT_NAME = "large-10mb-attachment.eml"
_BASE64_LINE = 76


def corpus_files() -> list[Path]:
    """The committed corpus, in name order."""
    return sorted(CORPUS_DIR.glob("*.eml"))


def large_attachment_content(size: int = LARGE_ATTACHMENT_BYTES) -> bytes:
    return random.Random(20240115).randbytes(size)


def large_attachment_message(size: int = LARGE_ATTACHMENT_BYTES) -> bytes:
    encoded = base64.b64encode(large_attachment_content(size))
    body_lines = b"\r\n".join(encoded[i:i + _BASE64_LINE] for i in range(0, len(encoded), _BASE64_LINE))
    headers = (
        b"From: Scanner <scanner@example.com>\r\n"
        b"To: Bob Test <bob@example.test>\r\n"
        b"Subject: Scan 10 MB\r\n"
        b"Date: Mon, 15 Jan 2024 10:12:00 +0100\r\n"
        b"Message-ID: <scan-10mb@example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="scan-boundary"\r\n'
    )
    return (
        headers + b"\r\n"
        b"--scan-boundary\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Scanned document attached.\r\n"
        b"--scan-boundary\r\n"
        b'Content-Type: application/pdf; name="scan.pdf"\r\n'
        b'Content-Disposition: attachment; filename="scan.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + body_lines + b"\r\n"
        b"--scan-boundary--\r\n"
    )
