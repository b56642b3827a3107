"""Part numbering and classification, from raw FETCH lines and from hand-built messages.

BODYSTRUCTURE inputs are real protocol lines parsed by imapclient's own response parser, so
the shapes are exactly what the IMAP adapter hands over (``BodyData`` at the top, plain
tuples inside message/rfc822 parts).
"""

from __future__ import annotations

import pytest
from imapclient.response_parser import parse_fetch_response

from chalicelib.mime.classify import PartRole, classify_part, summarize_parts
from chalicelib.mime.decode import extract_part, parse_message
from chalicelib.mime.model import PartNode
from chalicelib.mime.structure import bodystructure_tree, parse_bodystructure


def bodystructure(line: bytes, literal: bytes | None = None, rest: bytes = b""):
    """imapclient's value for ``* 1 FETCH (UID 1 BODYSTRUCTURE <line>[{n}literal rest])``.

    A literal arrives from imaplib as a ``(line ending in {n}, literal bytes)`` pair.
    """
    if literal is None:
        return parse_fetch_response([b"1 (UID 1 BODYSTRUCTURE " + line + b")"])[1][b"BODYSTRUCTURE"]
    pieces = [(b"1 (UID 1 BODYSTRUCTURE " + line + b"{%d}" % len(literal), literal), rest + b")"]
    return parse_fetch_response(pieces)[1][b"BODYSTRUCTURE"]


def sections(structure) -> tuple[list[str], list[str], list[str]]:
    return ([a.part for a in structure.attachments], [t.part for t in structure.text.plain],
            [t.part for t in structure.text.html])


# -- BODYSTRUCTURE -----------------------------------------------------------------------------

def test_a_single_part_message_is_section_1():
    structure = parse_bodystructure(bodystructure(
        b'("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL)'))
    assert sections(structure) == ([], ["1"], [])
    assert structure.text.plain[0].charset == "UTF-8"
    assert structure.text.plain_encoded_size == 12


def test_a_single_part_attachment_is_section_1():
    structure = parse_bodystructure(bodystructure(
        b'("APPLICATION" "PDF" ("NAME" "scan.pdf") NIL NIL "BASE64" 4000 NIL'
        b' ("ATTACHMENT" ("FILENAME" "scan.pdf")) NIL NIL)'))
    assert sections(structure) == (["1"], [], [])
    assert structure.attachments[0].filename == "scan.pdf"
    assert structure.attachments[0].disposition == "attachment"


NESTED = (
    b'(("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)'
    b'(("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "QUOTED-PRINTABLE" 20 1 NIL NIL NIL NIL)'
    b'(("TEXT" "HTML" ("CHARSET" "UTF-8") NIL NIL "7BIT" 30 1 NIL NIL NIL NIL)'
    b'("IMAGE" "PNG" ("NAME" "logo.png") "<logo@x>" NIL "BASE64" 40 NIL ("INLINE" NIL) NIL NIL)'
    b' "RELATED" ("BOUNDARY" "r") NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "a") NIL NIL NIL)'
    b'("MESSAGE" "RFC822" ("NAME" "fwd.eml") NIL NIL "7BIT" 500 (NIL "Fwd" NIL NIL NIL NIL NIL NIL NIL NIL)'
    b' (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)'
    b'("APPLICATION" "PDF" NIL NIL NIL "BASE64" 8 NIL ("ATTACHMENT" ("FILENAME" "inner.pdf")) NIL NIL)'
    b' "MIXED" ("BOUNDARY" "i") NIL NIL NIL) 20 NIL ("ATTACHMENT" ("FILENAME" "fwd.eml")) NIL NIL)'
    b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 200 (NIL "Old" NIL NIL NIL NIL NIL NIL NIL NIL)'
    b' ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL) 8 NIL NIL NIL NIL)'
    b'("APPLICATION" "ZIP" ("NAME" "a.zip") NIL NIL "BASE64" 60 NIL ("ATTACHMENT" ("FILENAME" "a.zip")) NIL NIL)'
    b' "MIXED" ("BOUNDARY" "m") NIL NIL NIL)'
)


def test_nested_parts_are_numbered_as_rfc_3501_says():
    # Given   mixed: 1 text/plain, 2 alternative(2.1 plain, 2.2 related(2.2.1 html, 2.2.2 png)),
    #                3 message/rfc822 > mixed(3.1 plain, 3.2 pdf), 4 message/rfc822 > 4.1 plain, 5 zip
    structure = parse_bodystructure(bodystructure(NESTED))
    # Then the encapsulated multipart's parts are 3.1/3.2 and a non-multipart body is 4.1;
    # messages are attachments, their text is not ours
    assert sections(structure) == (["2.2.2", "3", "3.2", "4", "5"], ["1", "2.1"], ["2.2.1"])
    logo, forwarded, inner_pdf, _, archive = structure.attachments
    assert (logo.embedded, logo.inline, logo.content_id) == (True, True, "logo@x")
    assert (forwarded.content_type, forwarded.filename, forwarded.encoded_size) == ("message/rfc822", "fwd.eml", 500)
    assert inner_pdf.filename == "inner.pdf"
    assert (archive.embedded, archive.inline) == (False, False)


def test_the_tree_keeps_every_section():
    tree = bodystructure_tree(bodystructure(NESTED))
    found = []

    def walk(node: PartNode) -> None:
        found.append((node.section, node.content_type))
        for child in node.children:
            walk(child)

    walk(tree)
    assert found == [
        ("", "multipart/mixed"), ("1", "text/plain"), ("2", "multipart/alternative"), ("2.1", "text/plain"),
        ("2.2", "multipart/related"), ("2.2.1", "text/html"), ("2.2.2", "image/png"),
        ("3", "message/rfc822"), ("3", "multipart/mixed"), ("3.1", "text/plain"), ("3.2", "application/pdf"),
        ("4", "message/rfc822"), ("4.1", "text/plain"), ("5", "application/zip"),
    ]


def test_rfc_2231_parameters_in_bodystructure_are_decoded():
    # Dovecot hands RFC 2231 pieces over as they are in the header
    structure = parse_bodystructure(bodystructure(
        b'("APPLICATION" "PDF" ("NAME*0*" "UTF-8\'\'%E6%97%A5" "NAME*1*" "%E6%9C%AC.pdf") NIL NIL "BASE64" 8 NIL'
        b' ("ATTACHMENT" ("FILENAME*" "UTF-8\'\'%E6%97%A5%E6%9C%AC.pdf")) NIL NIL)'))
    assert structure.attachments[0].filename == "日本.pdf"


def test_server_quirks_are_tolerated():
    # A bare-string disposition (some Exchange versions), a size as a string, NIL encoding,
    # no extension data at all (BODY instead of BODYSTRUCTURE), and 8-bit literal values.
    structure = parse_bodystructure(bodystructure(
        b'(("TEXT" "PLAIN" NIL NIL NIL NIL "12" 1)("APPLICATION" "OCTET-STREAM" ("NAME" ',
        "été.bin".encode(),
        b') NIL NIL "BASE64" 8 NIL "ATTACHMENT" NIL NIL) "MIXED")'))
    text, = structure.text.plain
    assert (text.charset, text.encoding, text.encoded_size) == ("us-ascii", "7bit", 12)
    attachment, = structure.attachments
    assert (attachment.filename, attachment.disposition) == ("été.bin", "attachment")


@pytest.mark.parametrize("garbage", [None, b"", (), [], (b"TEXT",), ([],), (None, None, None), 42, "text"])
def test_garbage_bodystructure_yields_an_empty_or_minimal_structure(garbage):
    structure = parse_bodystructure(garbage)
    assert isinstance(structure.attachments, list)


# -- raw messages ------------------------------------------------------------------------------

def part(headers: list[str], body: str) -> str:
    return "\r\n".join(headers) + "\r\n\r\n" + body


def multipart(subtype: str, boundary: str, *parts: str) -> str:
    lines = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"', ""]
    for item in parts:
        lines += [f"--{boundary}", item]
    lines += [f"--{boundary}--", ""]
    return "\r\n".join(lines)


FORWARDED = part(["Subject: inner", "Content-Type: multipart/mixed; boundary=in"],
                 "\r\n".join(["--in", part(["Content-Type: text/plain"], "inner text"),
                              "--in", part(["Content-Type: application/pdf", "Content-Disposition: attachment; "
                                            "filename=in.pdf", "Content-Transfer-Encoding: base64"], "aW5uZXI="),
                              "--in--", ""]))
OLD = part(["Subject: old", "Content-Type: text/plain"], "old text")
RAW = ("From: a@example.com\r\nSubject: numbering\r\nMIME-Version: 1.0\r\n" + multipart(
    "mixed", "m",
    part(["Content-Type: text/plain; charset=utf-8"], "first"),
    multipart("alternative", "a",
              part(["Content-Type: text/plain; charset=utf-8"], "alt plain"),
              multipart("related", "r",
                        part(["Content-Type: text/html; charset=utf-8"], "<img src=cid:logo@x>"),
                        part(["Content-Type: image/png", "Content-ID: <logo@x>", "Content-Transfer-Encoding: base64"],
                             "iVBORw=="))),
    part(["Content-Type: message/rfc822", "Content-Disposition: attachment; filename=fwd.eml"], FORWARDED),
    part(["Content-Type: message/rfc822"], OLD),
    part(["Content-Type: application/zip; name=a.zip", "Content-Transfer-Encoding: base64"], "UEsFBg=="),
)).encode()


def test_raw_message_numbering_matches_the_bodystructure_rules():
    parsed = parse_message(RAW)
    assert [a.part for a in parsed.attachments] == ["2.2.2", "3", "3.2", "4", "5"]
    assert [t.part for t in parsed.text_parts.plain] == ["1", "2.1"]
    assert [t.part for t in parsed.text_parts.html] == ["2.2.1"]
    assert parsed.text_plain == "first\nalt plain"
    assert parsed.text_html == "<img src=cid:logo@x>"


@pytest.mark.parametrize(("section", "content"), [
    ("1", b"first"), ("2.1", b"alt plain"), ("2.2.1", b"<img src=cid:logo@x>"), ("2.2.2", b"\x89PNG"),
    ("3", FORWARDED.encode()), ("3.1", b"inner text"), ("3.2", b"inner"), ("4", OLD.encode()), ("4.1", b"old text"),
    ("5", b"PK\x05\x06"),
])
def test_extract_part_by_section(section, content):
    assert extract_part(RAW, section).content == content


@pytest.mark.parametrize("section", ["2", "2.2", "6", "3.3", "1.1", "4.2"])
def test_extract_part_of_a_multipart_or_a_missing_section_is_none(section):
    assert extract_part(RAW, section) is None


@pytest.mark.parametrize("section", ["0", "1.", ".1", "a", "1.0", "", "1 2", "TEXT"])
def test_extract_part_rejects_what_is_not_a_section_number(section):
    with pytest.raises(ValueError, match="section"):
        extract_part(RAW, section)


def test_a_message_whose_body_is_a_message():
    raw = ("Subject: wrapper\r\nContent-Type: message/rfc822\r\n\r\n" + OLD).encode()
    parsed = parse_message(raw)
    assert [(a.part, a.content_type) for a in parsed.attachments] == [("1", "message/rfc822")]
    assert extract_part(raw, "1.1").content == b"old text"


# -- classification ----------------------------------------------------------------------------

def node(content_type: str, *, disposition: str | None = None, filename: str | None = None,
         content_id: str | None = None, children: tuple[PartNode, ...] = ()) -> PartNode:
    return PartNode(section="1", content_type=content_type, params={"name": filename} if filename else {},
                    disposition=disposition, content_id=content_id, children=children)


INNER_MESSAGE = node("text/plain")

CLASSIFICATION = [
    # (part, inside multipart/alternative, a multipart/related resource, role)
    (node("multipart/mixed"), False, False, PartRole.CONTAINER),
    (node("message/rfc822", children=(INNER_MESSAGE,)), False, False, PartRole.MESSAGE),
    (node("message/rfc822"), False, False, PartRole.ATTACHMENT),            # not descended into by the server
    (node("text/plain"), False, False, PartRole.TEXT),
    (node("text/html", disposition="inline"), False, False, PartRole.TEXT),
    (node("text/plain", disposition="attachment"), False, False, PartRole.ATTACHMENT),
    (node("text/plain", disposition="attachment"), True, False, PartRole.ATTACHMENT),
    (node("text/plain", filename="notes.txt", disposition="inline"), False, False, PartRole.ATTACHMENT),  # Apple Mail
    (node("text/plain", filename="body.txt"), True, False, PartRole.TEXT),  # a named alternative is still the body
    (node("text/html"), False, True, PartRole.ATTACHMENT),                 # a resource of related
    (node("text/calendar"), True, False, PartRole.ATTACHMENT),
    (node("text/csv"), False, False, PartRole.ATTACHMENT),
    (node("image/png", disposition="inline", content_id="x"), False, False, PartRole.ATTACHMENT),
    (node("application/pkcs7-signature"), False, False, PartRole.ATTACHMENT),
    (node("message/delivery-status"), False, False, PartRole.ATTACHMENT),
]


@pytest.mark.parametrize(("part_node", "in_alternative", "related_resource", "role"), CLASSIFICATION)
def test_classify_part(part_node, in_alternative, related_resource, role):
    assert classify_part(part_node, in_alternative=in_alternative, related_resource=related_resource) is role


def test_the_last_alternative_with_each_kind_of_text_wins():
    # Given alternative(plain A, plain B, html C)
    tree = PartNode(section="", content_type="multipart/alternative", params={}, children=(
        PartNode(section="1", content_type="text/plain", params={}),
        PartNode(section="2", content_type="text/plain", params={}),
        PartNode(section="3", content_type="text/html", params={}),
    ))
    structure = summarize_parts(tree)
    # Then the plain text is B (the richer plain rendering) and the html is C; A is neither
    assert sections(structure) == ([], ["2"], ["3"])


def test_the_related_start_parameter_picks_the_root():
    tree = PartNode(section="", content_type="multipart/related", params={"start": "<root@x>"}, children=(
        PartNode(section="1", content_type="image/png", params={}, content_id="img@x"),
        PartNode(section="2", content_type="text/html", params={}, content_id="root@x"),
    ))
    structure = summarize_parts(tree)
    assert sections(structure) == (["1"], [], ["2"])
    assert structure.attachments[0].embedded


def test_embedded_means_a_content_id_in_related_or_inline():
    tree = PartNode(section="", content_type="multipart/mixed", params={}, children=(
        PartNode(section="1", content_type="text/html", params={}),
        PartNode(section="2", content_type="image/png", params={}, content_id="a@x", disposition="inline"),
        PartNode(section="3", content_type="image/png", params={}, content_id="b@x", disposition="attachment"),
        PartNode(section="4", content_type="image/png", params={}),
    ))
    assert [a.embedded for a in summarize_parts(tree).attachments] == [True, False, False]
