"""Bodies too large for a Lambda response, handed out as short-lived presigned S3 URLs.

Lambda caps a synchronous response at 6 MB (6,291,456 bytes of JSON envelope); a binary
body travels base64-encoded in that envelope, so it grows by a third. Anything whose
payload would exceed ``IMAPLESS_MAX_RESPONSE_BYTES`` (default 5.5 MB, leaving room for
headers and the envelope) is not sent inline:

    payload <= limit  ->  the bytes themselves (200)
    payload >  limit  ->  PutObject to the downloads bucket (SSE, private, expires after a
                          day by lifecycle) -> 302 Found, Location: presigned GET URL
                          valid IMAPLESS_DOWNLOAD_URL_SECONDS (default 15 min), with a JSON
                          body {url, expiresAt, size, contentType, filename}

Why a redirect rather than a JSON answer: every common HTTP client (curl -L, browsers,
fetch, requests, axios) follows it, so a download works the same whether the file is
5 KB or 50 MB, and clients that do not follow redirects still get the URL in the body.
Clients strip the Authorization header when the redirect leaves the API's host, which S3
requires (a presigned URL plus an Authorization header is rejected).

Memory is bounded before anything is read: a caller reads at most
``IMAPLESS_MAX_RESPONSE_BYTES`` octets of a body whole (:func:`prepare`: inline, or one
PutObject). A larger body is never held whole: it arrives as an iterator of windows
(partial IMAP FETCHes of ``IMAPLESS_DOWNLOAD_CHUNK_BYTES``) and :func:`upload_stream` sends
it as an S3 multipart upload: a window of at least S3's 5 MiB part minimum is a part as it
is, smaller pieces (decoded base64 slices) gather until they make one. Memory stays at
about one window plus one part whatever the size:

    IMAP  --window-->  decoder  --pieces-->  part buffer  --UploadPart (>= 5 MiB)-->  S3
                                                      `-- any failure: AbortMultipartUpload

(Chalice and API Gateway's Lambda proxy integration take a whole response body, so the
streamed path always ends in a presigned URL.)

The bucket name is ``IMAPLESS_DOWNLOADS_BUCKET``, or ``<prefix>downloads-<account id>-<region>``
as template.yaml names it (the account id comes from STS once per process, only when a
large body is actually handed off).
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from chalicelib import aws_clients
from chalicelib.settings import S3_MIN_PART_BYTES, get_settings

_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Download:
    """Either inline ``content``, or ``url`` (presigned) valid until ``expires_at``."""

    content_type: str
    filename: str | None
    size: int
    content: bytes | None = None
    url: str | None = None
    expires_at: datetime | None = None


def response_payload_size(size: int, *, binary: bool) -> int:
    """Bytes a body takes in the Lambda response (base64 for binary bodies)."""
    return 4 * math.ceil(size / 3) if binary else size


def content_disposition(filename: str | None, disposition: str = "attachment") -> str:
    """RFC 6266 header with an ASCII fallback and the UTF-8 name (RFC 5987)."""
    if not filename:
        return disposition
    fallback = filename.encode("ascii", "replace").decode("ascii").replace('"', "'").replace("\\", "_")
    fallback = re.sub(r"[\x00-\x1f\x7f]", "_", fallback)
    if fallback == filename:
        return f'{disposition}; filename="{fallback}"'
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _s3():
    from botocore.config import Config  # with the client: botocore loads on the first AWS call

    # Path-style URLs work for every bucket name and for emulators on an IP address.
    return aws_clients.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


@functools.lru_cache(maxsize=1)
def bucket_name() -> str:
    settings = get_settings()
    if settings.downloads_bucket:
        return settings.downloads_bucket
    account_id = aws_clients.client("sts").get_caller_identity()["Account"]
    return f"{settings.resource_prefix}downloads-{account_id}-{settings.aws_region}"


def _object_key(account_id: str, filename: str | None) -> str:
    safe_name = _UNSAFE_KEY_CHARACTERS.sub("_", filename or "download")[:100] or "download"
    return f"{_UNSAFE_KEY_CHARACTERS.sub('_', account_id)}/{datetime.now(UTC):%Y-%m-%d}/{uuid.uuid4().hex}/{safe_name}"


def _presigned(key: str, content_type: str, filename: str | None, size: int) -> Download:
    seconds = get_settings().download_url_seconds
    url = _s3().generate_presigned_url("get_object", Params={"Bucket": bucket_name(), "Key": key},
                                       ExpiresIn=seconds)
    return Download(content_type, filename, size, url=url, expires_at=datetime.now(UTC) + timedelta(seconds=seconds))


def prepare(account_id: str, content: bytes, content_type: str, filename: str | None, *,
            binary: bool = True) -> Download:
    """Inline when it fits a response, otherwise uploaded and presigned."""
    if response_payload_size(len(content), binary=binary) <= get_settings().max_response_bytes:
        return Download(content_type, filename, len(content), content=content)
    key = _object_key(account_id, filename)
    _s3().put_object(Bucket=bucket_name(), Key=key, Body=content, ContentType=content_type,
                     ContentDisposition=content_disposition(filename))
    return _presigned(key, content_type, filename, len(content))


def upload_stream(account_id: str, chunks: Iterable[bytes], content_type: str, filename: str | None) -> Download:
    """Upload ``chunks`` as one object (multipart, never all in memory) and presign it.

    Whatever fails midway (IMAP, S3) aborts the upload, so no orphan parts are billed, and
    propagates.
    """
    key = _object_key(account_id, filename)
    s3, bucket = _s3(), bucket_name()
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type,
                                           ContentDisposition=content_disposition(filename))["UploadId"]
    parts: list[dict[str, Any]] = []
    pending = bytearray()  # small chunks gather here until they make a part
    size = 0

    def send_part(body: bytes | bytearray) -> None:
        number = len(parts) + 1
        answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    try:
        for chunk in chunks:
            size += len(chunk)
            if not pending and len(chunk) >= S3_MIN_PART_BYTES:
                send_part(chunk)  # a whole window is a part: no copy
            else:
                pending.extend(chunk)
                if len(pending) >= S3_MIN_PART_BYTES:
                    send_part(pending)
                    pending.clear()
            del chunk  # not kept alive while the next window is fetched
        if pending or not parts:
            send_part(pending)  # the last part may be smaller than the minimum
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        with contextlib.suppress(Exception):
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return _presigned(key, content_type, filename, size)
