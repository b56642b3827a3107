"""Small pure pieces of the message API: UID sets, COPYUID, partial text, download sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.imap.message_changes import compact_uid_set, expand_uid_set, parse_copyuid
from chalicelib.services.downloads import content_disposition, response_payload_size
from chalicelib.services.messages import complete_prefix


@given(st.sets(st.integers(1, 5000), max_size=400), st.integers(10, 200))
def test_compact_uid_sets_cover_exactly_the_given_uids(uids, max_length):
    chunks = compact_uid_set(list(uids), max_length=max_length)
    expanded = [uid for chunk in chunks for uid in expand_uid_set(chunk)]
    assert sorted(expanded) == sorted(uids)
    assert all(len(chunk) <= max(max_length, 11) for chunk in chunks)


def test_copyuid_maps_source_to_destination_uids():
    assert parse_copyuid([b"1795242799 4:6,9 20:23"]) == (1795242799, {4: 20, 5: 21, 6: 22, 9: 23})
    assert parse_copyuid([b"garbage"]) == (None, {})


@pytest.mark.parametrize(("text", "charset"), [
    ("Grüße aus 日本", "utf-8"),
    ("简体中文测试", "gb2312"),
    ("日本語のテキスト", "iso-2022-jp"),
    ("日本語のテキスト", "shift_jis"),
    ("Привет", None),
])
def test_a_character_cut_in_half_at_the_end_is_dropped(text, charset):
    encoded = text.encode({"gb2312": "gb18030", None: "utf-8"}.get(charset, charset))
    for cut in range(1, len(encoded)):
        prefix = complete_prefix(encoded[:cut], charset)
        decoded = prefix.decode({"gb2312": "gb18030", None: "utf-8"}.get(charset, charset))
        assert text.startswith(decoded.rstrip("\x1b")) or decoded == ""


def test_binary_bodies_count_as_base64_in_the_response():
    assert response_payload_size(3, binary=True) == 4
    assert response_payload_size(4, binary=True) == 8
    assert response_payload_size(4, binary=False) == 4


@pytest.mark.parametrize(("filename", "expected"), [
    (None, "attachment"),
    ("report.pdf", 'attachment; filename="report.pdf"'),
    ("Größe.pdf", "attachment; filename=\"Gr??e.pdf\"; filename*=UTF-8''Gr%C3%B6%C3%9Fe.pdf"),
    ('a"b\r\n.txt', "attachment; filename=\"a'b__.txt\"; filename*=UTF-8''a%22b%0D%0A.txt"),
])
def test_content_disposition_is_safe_and_keeps_unicode_names(filename, expected):
    assert content_disposition(filename) == expected
