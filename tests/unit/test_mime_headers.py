"""Header decoding as tables: encoded-words, raw 8-bit text, addresses, message ids and dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib.mime.headers import (
    decode_header_value,
    parse_address_list,
    parse_date,
    parse_message_id,
    parse_references,
)

ENCODED_WORDS = [
    # (raw header value, decoded text)
    ("Quarterly numbers", "Quarterly numbers"),
    ("=?UTF-8?B?5pel5pys6Kqe?=", "日本語"),
    ("=?utf-8?q?caf=C3=A9_au_lait?=", "café au lait"),
    ("=?ISO-8859-1?Q?Gr=FC=DFe?=", "Grüße"),
    # adjacent words: the white space between them is not part of the text (RFC 2047 6.2)
    ("=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab"),
    ("=?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?=", "ab"),
    # a multibyte character split across two words (PHP mb_encode_mimeheader, old Outlook)
    ("=?UTF-8?B?5pc=?= =?UTF-8?B?peaXpQ==?=", "日日"),
    # mixed charsets and encodings, with plain text in between
    ("=?UTF-8?Q?Caf=C3=A9?= and =?ISO-8859-1?B?TfxuY2hlbg==?= too", "Café and München too"),
    ("Re: =?koi8-r?Q?=EF=D4=DE=A3=D4?=", "Re: Отчёт"),
    ("=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=", "日本語"),
    ("=?gb2312?B?1uzpRrv5?=", "朱镕基"),                      # GBK-only character under a gb2312 label
    ("=?ks_c_5601-1987?B?yLjAxw==?=", "회의"),                  # Outlook's label for Korean
    ("=?Shift_JIS?B?h0A=?=", "①"),                               # NEC extension: needs cp932
    # broken or unusual charsets
    ("=?x-unknown?Q?R=C3=A9sum=C3=A9?=", "Résumé"),
    ("=?unicode-1-1-utf-7?Q?+AOk-t+AOk-?=", "été"),
    ("=?utf8?Q?=C3=A9?=", "é"),
    ("=?UTF-8*en?Q?=C3=A9?=", "é"),                              # RFC 2231 language suffix
    ("=??Q?=C3=A9?=", "é"),                                      # no charset at all
    ("=?no-such-charset?Q?caf=E9?=", "café"),                    # unknown label: detection
    # lenient payloads: bad Q escapes stay literal, base64 without padding still decodes
    ("=?utf-8?q?bad=ZZescape?=", "bad=ZZescape"),
    ("=?utf-8?B?5pel5pys6Kqe5pel?=", "日本語日"),
    ("=?utf-8?B?w6k?=", "é"),
    # not encoded-words: left alone
    ("=?utf-8?b?5pel5pys?", "=?utf-8?b?5pel5pys?"),
    ("a = b ?= c", "a = b ?= c"),
    # folding (Outlook folds with a tab) and stray control characters
    ("This is long\r\n\tand folded", "This is long and folded"),
    ("folded\r\n with space", "folded with space"),
    ("nul\x00inside", "nul inside"),
    ("", ""),
    (None, ""),
]


@pytest.mark.parametrize(("raw", "expected"), ENCODED_WORDS)
def test_decode_header_value(raw, expected):
    assert decode_header_value(raw) == expected


RAW_8BIT = [
    # (header bytes as on the wire, fallback charset from the body, decoded text)
    ("Überweisung für März ✓".encode(), None, "Überweisung für März ✓"),
    ("Café crème brûlée".encode("cp1252"), None, "Café crème brûlée"),
    ("Отчёт за квартал".encode("koi8-r"), "koi8-r", "Отчёт за квартал"),   # the body's charset is the hint
    ("会議".encode("iso2022_jp"), None, "会議"),                            # raw ISO-2022-JP escapes
    ("Grüße".encode().decode("ascii", "surrogateescape"), None, "Grüße"),  # as the email parser gives it
]


@pytest.mark.parametrize(("raw", "hint", "expected"), RAW_8BIT)
def test_raw_8bit_headers_are_detected(raw, hint, expected):
    assert decode_header_value(raw, fallback_charset=hint) == expected


def mailbox(address: str, name: str = "") -> dict[str, str]:
    return {"name": name, "address": address}


ADDRESS_LISTS = [
    ("Alice Example <alice@example.com>", [mailbox("alice@example.com", "Alice Example")]),
    ('"Doe, John" <john@example.com>', [mailbox("john@example.com", "Doe, John")]),
    # an encoded name containing a comma must not be split
    ("=?UTF-8?Q?M=C3=BCller=2C_J=C3=BCrgen?= <jm@example.de>", [mailbox("jm@example.de", "Müller, Jürgen")]),
    # an unquoted display name with a comma (Exchange address books)
    ("Doe, Jane <jane@example.com>, bob@example.com",
     [mailbox("jane@example.com", "Doe, Jane"), mailbox("bob@example.com")]),
    # a raw comma inside an encoded-word (broken mailers)
    ("=?utf-8?Q?Doe,_John?= <j@example.com>", [mailbox("j@example.com", "Doe, John")]),
    # encoded-words inside quotes (Outlook, PHP libraries)
    ('"=?utf-8?B?5bGx55Sw?=" <yamada@example.jp>', [mailbox("yamada@example.jp", "山田")]),
    ("john@example.com (John Smith)", [mailbox("john@example.com", "John Smith")]),
    ("john@example.com", [mailbox("john@example.com")]),
    ("<john@example.com>", [mailbox("john@example.com")]),
    ("mailto:john@example.com", [mailbox("john@example.com")]),
    ("<@relay.example:user@host.example>", [mailbox("user@host.example")]),
    ('"Foo <bar>" <x@example.com>', [mailbox("x@example.com", "Foo <bar>")]),
    ('"quoted \\" pair" <q@example.com>', [mailbox("q@example.com", 'quoted " pair')]),
    # groups contribute their members only
    ("undisclosed-recipients:;", []),
    ("Team: a@example.com, \"B\" <b@example.com>;, c@example.com",
     [mailbox("a@example.com"), mailbox("b@example.com", "B"), mailbox("c@example.com")]),
    # IDN domains are kept as written
    ("user@bücher.example", [mailbox("user@bücher.example")]),
    ("user@xn--bcher-kva.example", [mailbox("user@xn--bcher-kva.example")]),
    # garbage pieces are skipped, good ones kept
    ("garbage, ,,, <>, Real <real@example.com>, foo", [mailbox("real@example.com", "Real")]),
    ("(only a comment)", []),
    ("<unclosed@example.com", [mailbox("unclosed@example.com")]),
    ('"unclosed quote <q@example.com>', [mailbox("q@example.com", "unclosed quote")]),
    ("", []),
    (None, []),
    (b"\xe5\xb1\xb1\xe7\x94\xb0 <y@example.jp>", [mailbox("y@example.jp", "山田")]),
]


@pytest.mark.parametrize(("raw", "expected"), ADDRESS_LISTS)
def test_parse_address_list(raw, expected):
    assert parse_address_list(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("<abc@example.com>", "<abc@example.com>"),
    ("  <abc@example.com> (comment)", "<abc@example.com>"),
    ("abc@example.com", "<abc@example.com>"),                   # scripts that forget the brackets
    ("< a b@example.com >", "<ab@example.com>"),                # folded inside the brackets
    ("<first@x> <second@x>", "<first@x>"),
    ('Your message of "Mon, 1 Jan" <orig@example.com>', "<orig@example.com>"),
    ("Your message of Monday", None),                           # RFC 822-era prose, no id
    ("<>", None),
    ("", None),
    (None, None),
    (b"<bytes@example.com>", "<bytes@example.com>"),
])
def test_parse_message_id(raw, expected):
    assert parse_message_id(raw) == expected


def test_parse_references_keeps_order_and_drops_duplicates():
    raw = "<a@x>\r\n\t<b@x> <a@x>\r\n <c@x>"
    assert parse_references(raw) == ["<a@x>", "<b@x>", "<c@x>"]


def test_parse_references_of_bare_ids_and_garbage():
    assert parse_references("a@x, b@x") == ["<a@x>", "<b@x>"]
    assert parse_references("no ids here") == []
    assert parse_references(None) == []


PLUS_ONE = timezone(timedelta(hours=1))


@pytest.mark.parametrize(("raw", "expected"), [
    ("Mon, 15 Jan 2024 10:12:00 +0100", datetime(2024, 1, 15, 10, 12, tzinfo=PLUS_ONE)),
    ("Mon, 15 Jan 2024 10:12:00 -0800 (PST)", datetime(2024, 1, 15, 10, 12, tzinfo=timezone(timedelta(hours=-8)))),
    ("15 Jan 2024 10:12 EST", datetime(2024, 1, 15, 10, 12, tzinfo=timezone(timedelta(hours=-5)))),
    ("Mon, 15 Jan 24 10:12:00 GMT", datetime(2024, 1, 15, 10, 12, tzinfo=UTC)),
    ("Mon, 15 Jan 2024 10:12:00 -0000", datetime(2024, 1, 15, 10, 12, tzinfo=UTC)),   # zone unknown: UTC
    ("Mon, 15 Jan 2024 10:12:00", datetime(2024, 1, 15, 10, 12, tzinfo=UTC)),         # no zone at all
    ("Mon, 15 Jan 2024 10:12:00\r\n\t+0100", datetime(2024, 1, 15, 10, 12, tzinfo=PLUS_ONE)),
    ("2024-01-15T10:12:00+01:00", datetime(2024, 1, 15, 10, 12, tzinfo=PLUS_ONE)),     # ISO 8601 from scripts
    ("Mon, 15 Jan 2024 23:59:60 +0000", datetime(2024, 1, 15, 23, 59, 59, tzinfo=UTC)),  # leap second
    ("Mon, 15 Jan 2024 10:12:00 +9999", datetime(2024, 1, 15, 10, 12, tzinfo=UTC)),   # absurd offset dropped
    ("Mon, 31 Feb 2024 10:12:00 +0000", None),
    ("yesterday", None),
    ("", None),
    (None, None),
])
def test_parse_date(raw, expected):
    parsed = parse_date(raw)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None
