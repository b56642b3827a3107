"""Decoding a transfer-encoded part window by window gives the bytes of decoding it whole."""

from __future__ import annotations

import base64
import binascii
import itertools
import quopri

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.mime.transfer import StreamDecoder, decode_transfer_encoding


def windows(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[start:end] for start, end in itertools.pairwise(points)]


def streamed(data: bytes, encoding: str, cuts: list[int]) -> bytes:
    decoder = StreamDecoder(encoding)
    return b"".join(piece for window in windows(data, cuts) for piece in decoder.feed(window)) + decoder.finish()


def mangled_base64(content: bytes, line: int) -> bytes:
    """Base64 as mailers write it: CRLF lines, sometimes padding mid-stream and junk lines."""
    text = base64.b64encode(content)
    lines = [text[i:i + line] for i in range(0, len(text), line)] or [b""]
    return b"\r\n".join(lines) + b"\r\n"


CUTS = st.lists(st.integers(0, 100_000), max_size=12)


@settings(max_examples=300)
@given(st.binary(max_size=3000), st.integers(4, 120), CUTS)
def test_base64_windows_decode_like_the_whole(content, line, cuts):
    encoded = mangled_base64(content, line)
    assert streamed(encoded, "base64", cuts) == decode_transfer_encoding(encoded, "base64") == content


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=200), max_size=8), st.text(alphabet="=- \r\n!#A", max_size=20), CUTS)
def test_lenient_base64_with_padding_and_junk_decodes_like_the_whole(chunks, junk, cuts):
    # Given base64 encoded piece by piece (padding mid-stream) with junk between the pieces
    encoded = junk.encode().join(base64.b64encode(chunk) for chunk in chunks)
    # Then windows decode exactly as the whole does
    assert streamed(encoded, "base64", cuts) == decode_transfer_encoding(encoded, "base64")


@settings(max_examples=300)
@given(st.binary(max_size=3000), CUTS)
def test_quoted_printable_windows_decode_like_the_whole(content, cuts):
    encoded = quopri.encodestring(content).replace(b"\n", b"\r\n")
    assert streamed(encoded, "quoted-printable", cuts) == decode_transfer_encoding(encoded, "quoted-printable")


@settings(max_examples=300)
@given(st.text(alphabet="ab=\t \r\n3D", max_size=400), CUTS)
def test_broken_quoted_printable_decodes_like_the_whole(text, cuts):
    encoded = text.encode()
    assert streamed(encoded, "quoted-printable", cuts) == decode_transfer_encoding(encoded, "quoted-printable")


@settings(max_examples=200)
@given(st.binary(max_size=1500), st.booleans(), CUTS)
def test_uuencode_windows_decode_like_the_whole(content, header, cuts):
    body = b"".join(binascii.b2a_uu(content[i:i + 45]) for i in range(0, len(content), 45))
    encoded = (b"begin 644 scan.pdf\n" if header else b"") + body + b"`\nend\n"
    assert streamed(encoded, "x-uuencode", cuts) == decode_transfer_encoding(encoded, "x-uuencode") == content


def test_a_window_larger_than_a_slice_decodes_like_the_whole(monkeypatch):
    monkeypatch.setattr("chalicelib.mime.transfer.DECODE_SLICE_BYTES", 7)
    content = bytes(range(256)) * 3
    for encoded, encoding in ((mangled_base64(content, 76), "base64"),
                              (quopri.encodestring(content).replace(b"\n", b"\r\n"), "quoted-printable")):
        decoder = StreamDecoder(encoding)
        assert b"".join(decoder.feed(encoded)) + decoder.finish() == decode_transfer_encoding(encoded, encoding)


@given(st.binary(max_size=2000), CUTS)
def test_identity_encodings_pass_windows_through(content, cuts):
    for encoding in ("7bit", "8bit", "binary", None, "x-gzip64"):
        assert streamed(content, encoding, cuts) == content
