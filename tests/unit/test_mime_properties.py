"""Nothing in the MIME layer raises on malformed mail: property tests on random and mutated input.

Example counts are bounded so the file runs in a few seconds; every failure hypothesis has
ever found is replayed from its database first.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.mime.decode import decode_part_payload, extract_part, parse_message
from chalicelib.mime.headers import decode_header_value, parse_address_list, parse_date, parse_references
from chalicelib.mime.htmltext import html_to_text
from chalicelib.mime.structure import parse_bodystructure
from chalicelib.mime.transfer import decode_transfer_encoding
from tests.corpus.generate import corpus_files

CORPUS = [path.read_bytes() for path in corpus_files()]
MIME_NOISE = [b"\r\n", b"--", b"boundary", b"=?", b"?=", b"?Q?", b"?B?", b"=\r\n", b"Content-Type: multipart/mixed",
              b'; boundary="x"', b"\r\n--x\r\n", b"\r\n--x--\r\n", b"Content-Type: message/rfc822\r\n\r\n",
              b"charset=", b"*0*=utf-8''%", b"\x1b$B", b"\xff\xfe", b"\xc3", b"\x00", b"<", b">", b",", b'"', b"("]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_consistent(raw: bytes) -> None:
    message = parse_message(raw)
    assert isinstance(message.defects, list)
    for attachment in message.attachments:
        # every listed part can be cut out again under the same number
        assert extract_part(raw, attachment.part) is not None


@FAST
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert_consistent(raw)


@st.composite
def mutated_corpus_message(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["insert", "delete", "flip", "truncate"]))
        if operation == "insert":
            data[position:position] = draw(st.sampled_from(MIME_NOISE) | st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[position:position + draw(st.integers(1, 64))]
        elif operation == "flip" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif operation == "truncate":
            del data[position:]
    return bytes(data)


@FAST
@given(mutated_corpus_message())
def test_mutated_corpus_messages_never_raise(raw: bytes) -> None:
    assert_consistent(raw)


def test_pathologically_deep_nesting_never_raises() -> None:
    # Given 5,000 nested multiparts (the stdlib parser recurses once per level)
    depth = 5000
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    message = parse_message(b"Subject: deep\r\n" + opening + b"Content-Type: text/plain\r\n\r\nbottom\r\n")
    # Then the headers survive and the problem is reported
    assert message.subject == "deep"
    assert message.defects


header_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.binary(max_size=300)
header_noise = st.lists(st.sampled_from([m.decode("latin-1") for m in MIME_NOISE] + ["a@b", " ", "x", "é"]),
                        max_size=40).map("".join)


@FAST
@given(header_text | header_noise)
def test_header_decoders_never_raise(value) -> None:
    assert isinstance(decode_header_value(value), str)
    assert all(entry["address"] for entry in parse_address_list(value))
    assert isinstance(parse_references(value), list)
    parsed = parse_date(value)
    assert parsed is None or parsed.tzinfo is not None


@FAST
@given(st.binary(max_size=500), st.sampled_from([None, "base64", "quoted-printable", "x-uuencode", "8bit", "junk"]),
       st.sampled_from([None, "utf-8", "us-ascii", "iso-2022-jp", "utf-16", "gb2312", "x-unknown", "utf-7"]))
def test_part_decoders_never_raise(payload: bytes, encoding: str | None, charset: str | None) -> None:
    assert isinstance(decode_transfer_encoding(payload, encoding), bytes)
    assert isinstance(decode_part_payload(payload, encoding, charset, content_type="text/html"), str)


@FAST
@given(st.text(max_size=500))
def test_html_to_text_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)


atoms = st.none() | st.integers(-5, 10_000) | st.binary(max_size=12) | st.sampled_from(
    [b"TEXT", b"PLAIN", b"MESSAGE", b"RFC822", b"MULTIPART", b"ATTACHMENT", b"BASE64", b"NAME*0*", b"utf-8''%E6"])
bodystructures = st.recursive(atoms, lambda children: st.lists(children, max_size=12).map(tuple)
                              | st.lists(children, max_size=4), max_leaves=60)


@FAST
@given(bodystructures)
def test_any_bodystructure_shape_never_raises(value) -> None:
    structure = parse_bodystructure(value)
    assert isinstance(structure.attachments, list)
