"""Every corpus message decodes, and the tricky ones decode to the right values.

The corpus (``tests/corpus``, described in its README) holds real-world-shaped messages as
wire bytes; the 10 MB one is generated (``tests/corpus/generate.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.mime.decode import ParsedMessage, extract_part, parse_message
from tests.corpus.generate import (
    CORPUS_DIR,
    corpus_files,
    large_attachment_content,
    large_attachment_message,
)


def load(name: str) -> bytes:
    return (CORPUS_DIR / name).read_bytes()


def parsed(name: str) -> ParsedMessage:
    return parse_message(load(name))


def attachments(message: ParsedMessage) -> list[tuple[str, str | None, str]]:
    return [(a.part, a.filename, a.content_type) for a in message.attachments]


def test_the_corpus_has_at_least_thirty_messages_all_described():
    names = [path.name for path in corpus_files()]
    readme = (CORPUS_DIR / "README.md").read_text(encoding="utf-8")
    assert len(names) >= 30
    assert [name for name in names if f"`{name}`" not in readme] == []


@pytest.mark.parametrize("path", corpus_files(), ids=lambda path: path.name)
def test_every_corpus_message_parses(path: Path):
    raw = path.read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # wire form: CRLF only
    message = parse_message(raw)
    assert message.subject
    for attachment in message.attachments:
        assert extract_part(raw, attachment.part) is not None


# (file, subject, start of text_plain or None, start of text_html or None)
TEXTS = [
    ("01-plain-ascii.eml", "Quarterly numbers", "Hi Bob,\n\nThe quarterly numbers", None),
    ("02-utf8-8bit-body.eml", "Grüße aus Köln 🎉", "Grüße aus Köln! Ça va? 日本語も大丈夫。 🎉", None),
    ("03-iso-2022-jp.eml", "会議の議事録について", "お疲れ様です。\n明日の会議の議事録を送ります。", None),
    ("04-gb2312-with-gbk-chars.eml", "关于朱镕基的报告", "朱镕基总理访问了深圳。\n喆和堃是常见的名字。", None),
    ("05-big5.eml", "會議通知", "各位同事好，\n下週一上午十點開會。", None),
    ("06-shift-jis.eml", "①見積書の件", "お世話になっております。\n①見積書\n②請求書\nⅢ 以上です。", None),
    ("07-euc-kr.eml", "회의 안내", "안녕하세요. 똠방각하 회의는 내일입니다.", None),
    ("08-koi8-r.eml", "Отчёт за квартал", "Добрый день!\nОтчёт во вложении.", None),
    ("09-windows-1252-smart-quotes.eml", "Smart quotes", "He said “it costs €10” – that’s all…", None),
    ("10-missing-charset-utf8.eml", "No charset", "Grüße, Jürgen — naïve café.", None),
    ("11-wrong-declared-charset.eml", "Wrong charsets", "Déjà vu — naïve.",
     "<p>Café crème brûlée – € 10, c’est très bon</p>"),
    ("12-unknown-charset.eml", "Résumé", "Résumé attached — über alles.", None),
    ("13-8bit-raw-utf8-headers.eml", "Überweisung für März ✓", "Anbei die Übersicht.", None),
    ("14-rfc2047-adjacent-words.eml", "Café 日本語 und München plain text ✓", "Body", None),
    ("17-deep-nesting.eml", "Deeply nested", "Plain inner",
     '<p>part A</p>\n<p>part B <img src="cid:deep@example.com"></p>'),
    ("18-forwarded-rfc822.eml", "Fwd: Invoice March", "See the forwarded message.", None),
    ("20-inline-cid-image.eml", "Logo inline", "Our logo: [logo]", '<html><body><p>Our logo: <img src="cid:'),
    ("21-alternative-only-html.eml", "Only HTML alternative", None, "<html><body><h1>Newsletter</h1>"),
    ("22-html-only-meta-charset.eml", "HTML only", None, "<html><head><meta"),
    ("23-calendar-invite.eml", "Invitation: Planning", "You have been invited to Planning.",
     "<p>You have been invited to <b>Planning</b>.</p>"),
    ("26-quoted-printable-soft-breaks.eml", "QP",
     "This is a long line that was wrapped by the encoder with a soft line break in the middle of a word, café "
     "in lowercase hex, a bad escape =ZZ stays literal, and a soft break with trailing white space joins too.\n"
     "Second line ✓\n", None),
    ("27-header-folding-tabs.eml", "This is a long subject line that Outlook folded with tabs", "Folded headers.",
     None),
    ("29-missing-content-type.eml", "No MIME headers", "No Content-Type at all, but 8-bit: Grüße.", None),
    ("30-missing-final-boundary.eml", "Cut off", "The closing boundary is missing.", None),
    ("31-delivery-status-notification.eml", "Undelivered Mail Returned to Sender", "I'm sorry to have to inform",
     None),
    ("32-smime-signed.eml", "Signed", "Signed text.", "<p>Signed <i>text</i>.</p>"),
    ("33-empty-body.eml", "Empty", "", None),
    ("35-utf7.eml", "Café", "Café crème — très bon.", None),
    ("36-apple-mail-inline-images.eml", "Photos", "Before\n\nAfter",
     "<html><body><div>Before</div>\n<div>After</div></body></html>"),
    ("38-raw-iso-2022-jp-header.eml", "会議", "本文です。", None),
]


@pytest.mark.parametrize(("name", "subject", "plain", "html"), TEXTS)
def test_subject_and_text(name, subject, plain, html):
    message = parsed(name)
    assert message.subject == subject
    if plain is None:
        assert message.text_plain is None
    else:
        assert message.text_plain.startswith(plain)
    if html is None:
        assert message.text_html is None
    else:
        assert message.text_html.startswith(html)


def test_html_without_charset_is_decoded_with_its_meta_charset():
    # iso-8859-15 byte A4 is the euro sign (it is the currency sign in Latin-1)
    assert "Price: 10 €" in parsed("22-html-only-meta-charset.eml").text_html


ATTACHMENTS = [
    ("13-8bit-raw-utf8-headers.eml", [("2", "Übersicht März.pdf", "application/pdf")]),
    ("15-rfc2231-filename-continuations.eml", [("2", "年度報告書 2024.pdf", "application/pdf"),
                                                ("3", "Straße.txt", "text/plain"),
                                                ("4", "résumé.txt", "application/octet-stream")]),
    ("16-rfc2047-filename.eml", [
        ("2", "提案書.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("3", "Präsentation.pptx", "application/vnd.ms-powerpoint")]),
    ("17-deep-nesting.eml", [("1.2.1.2.2.2", None, "image/gif"), ("1.2.2", "logo.png", "image/png"),
                             ("2", "archive.zip", "application/zip")]),
    ("18-forwarded-rfc822.eml", [("2", "Rechnung.eml", "message/rfc822"), ("2.2", "invoice.pdf", "application/pdf"),
                                 ("2.3", None, "message/rfc822"), ("3", "photo.jpg", "image/jpeg")]),
    ("19-winmail-tnef.eml", [("2", "winmail.dat", "application/ms-tnef")]),
    ("20-inline-cid-image.eml", [("2", "logo.png", "image/png")]),
    ("21-alternative-only-html.eml", []),
    ("23-calendar-invite.eml", [("1.3", None, "text/calendar"), ("2", "invite.ics", "application/ics")]),
    ("25-malformed-base64.eml", [("2", "data.bin", "application/octet-stream"), ("3", "lines.txt", "text/plain")]),
    ("30-missing-final-boundary.eml", [("2", "report.csv", "text/csv")]),
    ("31-delivery-status-notification.eml", [("2", None, "message/delivery-status"),
                                             ("3", None, "text/rfc822-headers")]),
    ("32-smime-signed.eml", [("2", "smime.p7s", "application/pkcs7-signature")]),
    ("36-apple-mail-inline-images.eml", [("2.2", "IMG_0001.jpeg", "image/jpeg")]),
    ("37-text-attachment-inline.eml", [("2", "notes.txt", "text/plain")]),
]


@pytest.mark.parametrize(("name", "expected"), ATTACHMENTS)
def test_attachments(name, expected):
    assert attachments(parsed(name)) == expected


def test_embedded_and_inline_flags():
    logo, = parsed("20-inline-cid-image.eml").attachments
    assert (logo.embedded, logo.inline, logo.content_id) == (True, True, "logo.png@01DA47B2")
    apple, = parsed("36-apple-mail-inline-images.eml").attachments
    assert (apple.embedded, apple.inline) == (True, True)
    notes, = parsed("37-text-attachment-inline.eml").attachments
    assert (notes.embedded, notes.inline) == (False, True)
    deep_gif, deep_logo, archive = parsed("17-deep-nesting.eml").attachments
    assert (deep_gif.embedded, deep_logo.embedded, archive.embedded) == (True, True, False)


def test_damaged_base64_attachments_decode_to_their_content():
    raw = load("25-malformed-base64.eml")
    assert extract_part(raw, "2").content == b"The quick brown fox jumps over the lazy dog. " * 3
    assert extract_part(raw, "3").content == b"line one\nline two!\n3\n"


def test_forwarded_message_parts_are_reachable_by_section():
    raw = load("18-forwarded-rfc822.eml")
    forwarded = extract_part(raw, "2")
    assert forwarded.content.startswith(b"From: Dave <dave@example.net>\r\n")
    assert parse_message(forwarded.content).subject == "Rechnung März"
    assert extract_part(raw, "2.2").content == b"%PDF-1.4 invoice\n"
    assert extract_part(raw, "2.3.1").content == b"The older message.\r\n"


def test_missing_final_boundary_keeps_the_last_part_whole():
    message = parsed("30-missing-final-boundary.eml")
    assert extract_part(load("30-missing-final-boundary.eml"), "2").content == b"a,b\r\n1,2\r\n"
    assert "message: CloseBoundaryNotFoundDefect" in message.defects


def test_addresses_with_commas_groups_and_garbage():
    message = parsed("34-from-encoded-name-with-comma.eml")
    assert message.from_ == {"name": "Müller, Jürgen", "address": "juergen.mueller@example.de"}
    assert message.to == [{"name": "Doe, John", "address": "john@example.com"},
                          {"name": "Smith, Jane", "address": "jane@example.com"}]
    assert message.cc == [{"name": "Team", "address": "team@例え.jp"}]
    assert message.reply_to == [{"name": "", "address": "a@example.org"},
                                {"name": "", "address": "b@xn--bcher-kva.example"}]


def test_raw_8bit_and_encoded_names():
    assert parsed("13-8bit-raw-utf8-headers.eml").from_ == {"name": "Jürgen Müller", "address": "jm@example.de"}
    assert parsed("13-8bit-raw-utf8-headers.eml").to == [{"name": "山田", "address": "yamada@example.jp"}]
    assert parsed("03-iso-2022-jp.eml").from_ == {"name": "山田太郎", "address": "yamada@example.jp"}
    assert parsed("04-gb2312-with-gbk-chars.eml").from_["name"] == "王喆"


def test_folded_headers():
    message = parsed("27-header-folding-tabs.eml")
    assert [address["address"] for address in message.to] == ["bob@example.test", "carol@example.org",
                                                               "dave@example.net"]
    assert message.message_id == "<folded@example.com>"
    assert message.references == ["<ref1@example.com>", "<ref2@example.com>", "<ref3@example.com>"]
    assert message.in_reply_to == "<ref3@example.com>"
    assert message.date.isoformat() == "2024-01-15T10:12:00+01:00"


def test_very_long_headers_survive_whole():
    message = parsed("28-very-long-header.eml")
    assert message.headers["x-long-header"] == ["x" * 10000]
    assert len(message.references) == 200
    assert message.subject.endswith("word299")


def test_message_without_message_id_and_date():
    message = parsed("24-no-message-id-no-date.eml")
    assert (message.message_id, message.date) == (None, None)
    assert "message-id" not in message.headers


def test_headers_are_lowercased_decoded_and_in_order():
    message = parsed("01-plain-ascii.eml")
    assert list(message.headers)[:3] == ["return-path", "received", "from"]
    assert message.headers["received"] == [
        "from mail.example.com (mail.example.com [192.0.2.10]) by mx.example.test with ESMTPS id 4F2A1; "
        "Mon, 15 Jan 2024 09:12:01 +0000"]


def test_wrong_and_missing_charsets_are_reported_as_defects():
    assert parsed("11-wrong-declared-charset.eml").defects == [
        "1: charset 'us-ascii' carries no information, detected utf-8",
        "2: content is not valid 'utf-8', detected cp1252",
    ]
    assert parsed("01-plain-ascii.eml").defects == []


def test_max_text_bytes_cuts_text_and_says_so():
    message = parse_message(load("02-utf8-8bit-body.eml"), max_text_bytes=6)
    assert (message.text_plain, message.has_more) == ("Grüß", True)    # 6 UTF-8 bytes, never half a character
    whole = parse_message(load("02-utf8-8bit-body.eml"), max_text_bytes=10_000)
    assert not whole.has_more


def test_the_ten_megabyte_attachment():
    raw = large_attachment_message()
    message = parse_message(raw)
    assert attachments(message) == [("2", "scan.pdf", "application/pdf")]
    assert message.attachments[0].encoded_size > 10 * 1024 * 1024
    assert extract_part(raw, "2").content == large_attachment_content()
