"""Charset labels, the decoding fallback chain and transfer decoding, as tables."""

from __future__ import annotations

import base64

import pytest

from chalicelib.mime.charsets import decode_bytes, normalize_charset
from chalicelib.mime.decode import decode_part_payload, join_text_parts
from chalicelib.mime.transfer import decode_transfer_encoding, normalize_transfer_encoding


@pytest.mark.parametrize(("label", "codec"), [
    ("utf-8", "utf-8"), ("UTF-8", "utf-8"), ("utf8", "utf-8"), ('"utf-8"', "utf-8"), ("UTF-8;", "utf-8"),
    (" 'utf-8' ", "utf-8"), (b"utf-8", "utf-8"),
    ("latin1", "cp1252"), ("ISO-8859-1", "cp1252"),          # Latin-1 labels mean windows-1252
    ("gb2312", "gb18030"), ("GBK", "gb18030"),                # GB2312 labels carry GBK text
    ("Shift_JIS", "cp932"), ("x-sjis", "cp932"),
    ("euc-kr", "cp949"), ("ks_c_5601-1987", "cp949"),
    ("big5", "cp950"), ("iso-2022-jp", "iso2022_jp"),
    ("x-mac-roman", "mac_roman"), ("macintosh", "mac-roman"),
    ("unicode-1-1-utf-7", "utf-7"), ("windows-1251", "cp1251"), ("win-1250", "cp1250"), ("cp-1252", "cp1252"),
    ("koi8-r", "koi8-r"), ("iso-8859-8-i", "iso8859_8"), ("tis-620", "cp874"),
    # no information: detection decides
    ("us-ascii", None), ("x-unknown", None), ("unknown-8bit", None), ("", None), (None, None),
    ("no-such-charset", None), ("rot13", None), ("base64", None), ("unicode_escape", None), ("undefined", None),
])
def test_charset_labels(label, codec):
    assert normalize_charset(label) == codec


DECODING = [
    # (bytes, declared label, expected text, expect a problem to be reported)
    ("Grüße".encode(), "utf-8", "Grüße", False),
    ("Grüße".encode(), None, "Grüße", True),                                  # missing: UTF-8 first
    ("Grüße".encode(), "iso-8859-1", "Grüße", True),                          # PHP: UTF-8 labelled Latin-1
    ("Grüße".encode(), "us-ascii", "Grüße", True),
    ("“quoted” – €".encode("cp1252"), "iso-8859-1", "“quoted” – €", False),  # Outlook smart quotes
    ("Café crème brûlée".encode("cp1252"), "utf-8", "Café crème brûlée", True),  # wrong label: detected
    ("朱镕基".encode("gbk"), "gb2312", "朱镕基", False),
    ("①見積書".encode("cp932"), "shift_jis", "①見積書", False),
    ("똠방각하".encode("cp949"), "euc-kr", "똠방각하", False),
    ("會議通知".encode("big5"), "big5", "會議通知", False),
    ("日本語です".encode("iso2022_jp"), "iso-2022-jp", "日本語です", False),
    ("日本語です".encode("iso2022_jp"), None, "日本語です", True),               # raw escapes sniffed
    ("Привет, как дела? Это тестовое сообщение.".encode("koi8-r"), None,
     "Привет, как дела? Это тестовое сообщение.", True),                     # detection
    ("Привет".encode("koi8-r"), "x-unknown", None, True),
    ("Café".encode("utf-7"), "unicode-1-1-utf-7", "Café", False),
    ("Grüße".encode("utf-16"), "utf-16", "Grüße", False),
    (b"\xef\xbb\xbfBOM wins", "iso-8859-1", "BOM wins", False),                # a byte-order mark beats the label
    (b"plain ascii", "no-such-charset", "plain ascii", True),
    (b"", "utf-8", "", False),
]


@pytest.mark.parametrize(("data", "declared", "expected", "problem"), DECODING)
def test_decode_bytes_fallback_chain(data, declared, expected, problem):
    decoded = decode_bytes(data, declared)
    if expected is not None:
        assert decoded.text == expected
    else:
        assert decoded.text  # some text, never an exception
    assert (decoded.problem is not None) == problem


def test_the_body_charset_hint_decodes_what_detection_cannot():
    # Given a short KOI8-R header that detection alone reads wrongly
    data = "Отчёт".encode("koi8-r")
    # When the message body's charset is passed as the hint
    # Then it is used once UTF-8 has failed
    assert decode_bytes(data, None, hint="koi8-r").text == "Отчёт"


def test_bytes_invalid_in_the_declared_charset_still_decode_and_say_so():
    # Given UTF-16 with an odd number of bytes, which cannot be UTF-16
    decoded = decode_bytes(b"abc", "utf-16")
    # Then another decoding is used and the wrong declaration is reported
    assert decoded.text == "abc"
    assert decoded.problem == "content is not valid 'utf-16', detected utf-8"


TRANSFER = [
    # (payload, Content-Transfer-Encoding, decoded bytes)
    (b"SGVsbG8gd29ybGQ=", "base64", b"Hello world"),
    (b"SGVsbG8g\r\nd29ybGQ=\r\n", "BASE64", b"Hello world"),
    (b"SGVsbG8gd29ybGQ", "base64", b"Hello world"),                          # padding missing
    (b"SGVsbG8g\r\n!!! ### $$$\r\nd29ybGQ=", "base64", b"Hello world"),      # junk line
    (b"SGVsbA==\r\nbw==\r\n", "base64", b"Hello"),                           # padding mid-stream
    (b"SGVsbG8gd29ybGQ=A", "base64", b"Hello world"),                        # lone trailing character
    (b"SGVsbG8gd29ybGQ=", ' "Base64" ', b"Hello world"),                      # label quirks
    (b"SGVsbG8gd29ybGQ=", "base-64", b"Hello world"),
    (b"caf=C3=A9 soft=\r\nbreak", "quoted-printable", b"caf\xc3\xa9 softbreak"),
    (b"caf=c3=a9", "quoted-printable", b"caf\xc3\xa9"),                      # lowercase hex
    (b"bad =ZZ escape", "quoted-printable", b"bad =ZZ escape"),
    (b"padded soft break = \r\nend", "quoted-printable", b"padded soft break end"),
    (b"trailing space   \r\nnext", "quoted-printable", b"trailing space\r\nnext"),
    (b"x=", "quoted-printable", b"x"),
    (b"begin 644 hi.txt\r\n+2&5L;&\\@=V]R;&0`\r\n`\r\nend\r\n", "x-uuencode", b"Hello world"),
    (b"+2&5L;&\\@=V]R;&0`\r\n", "uuencode", b"Hello world"),
    (b"raw \xff bytes", "8bit", b"raw \xff bytes"),
    (b"raw", "binary", b"raw"),
    (b"raw", None, b"raw"),
    (b"raw", "x-gzip64", b"raw"),                                            # unknown: untouched
]


@pytest.mark.parametrize(("payload", "encoding", "expected"), TRANSFER)
def test_decode_transfer_encoding(payload, encoding, expected):
    assert decode_transfer_encoding(payload, encoding) == expected


@pytest.mark.parametrize(("label", "expected"), [
    ("Base64", "base64"), (" quoted-printable ", "quoted-printable"), ("quoted/printable", "quoted-printable"),
    ("8-bit", "8bit"), ("x-uue", "x-uuencode"), ("", None), (None, None), (b"7BIT", "7bit"),
])
def test_normalize_transfer_encoding(label, expected):
    assert normalize_transfer_encoding(label) == expected


def test_base64_of_every_length_round_trips():
    for length in range(0, 40):
        data = bytes(range(length))
        encoded = base64.b64encode(data)
        assert decode_transfer_encoding(encoded, "base64") == data
        assert decode_transfer_encoding(encoded.rstrip(b"="), "base64") == data


def test_decode_part_payload_transfer_and_charset_and_line_ends():
    payload = base64.b64encode("Grüße\r\nzweite Zeile\r\n".encode("iso-8859-1"))
    assert decode_part_payload(payload, "base64", "iso-8859-1") == "Grüße\nzweite Zeile\n"


def test_html_without_a_declared_charset_uses_its_meta_tag():
    html = '<meta charset="koi8-r"><p>Привет</p>'.encode("koi8-r")
    assert decode_part_payload(html, "8bit", None, content_type="text/html") == '<meta charset="koi8-r"><p>Привет</p>'
    # us-ascii is what servers report for "no charset": the meta tag still wins
    assert decode_part_payload(html, "8bit", "us-ascii", content_type="text/html").endswith("Привет</p>")


@pytest.mark.parametrize(("texts", "max_bytes", "expected"), [
    ([], None, (None, False)),
    (["one"], None, ("one", False)),
    (["one\n", "two"], None, ("one\ntwo", False)),
    (["one", "two"], None, ("one\ntwo", False)),            # a line break between parts
    (["héllo"], 2, ("h", True)),                             # never cut inside a character
    (["héllo"], 3, ("hé", True)),
    (["hello"], 5, ("hello", False)),
    (["hello"], 0, ("", True)),
])
def test_join_text_parts(texts, max_bytes, expected):
    assert join_text_parts(texts, max_bytes) == expected


def test_join_text_parts_rejects_a_negative_limit():
    with pytest.raises(ValueError, match="max_bytes"):
        join_text_parts(["x"], -1)
