"""Building outgoing MIME: structure, encodings, envelope, Sent copy, and the input it refuses."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.policy import default as default_policy

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chalicelib.mime.decode import extract_part, parse_message
from chalicelib.mime.headers import decode_header_value, parse_address_list
from chalicelib.smtp.addresses import Mailbox
from chalicelib.smtp.compose import (
    AttachmentSpec,
    ComposeError,
    OutgoingMessage,
    compose,
    normalize_message_id,
)

ANN = Mailbox("Ann Lee", "ann@example.com")
BOB = Mailbox("", "bob@example.com")
NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def fake_text_from_html(html: str) -> str:
    return "TEXT(" + html + ")"


def build(**fields):
    message = OutgoingMessage(**{"sender": ANN, "to": (BOB,), **fields})
    return compose(message, text_from_html=fake_text_from_html, now=NOW)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=default_policy)


def content(part) -> str:
    # The stdlib keeps the wire's CRLF in decoded text; compare with plain newlines.
    return part.get_content().replace("\r\n", "\n")


# What the API accepts in a subject or display name (schemas.sending refuses the rest).
HEADER_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
                                             blacklist_characters="\x85"), max_size=80)


def parse_raw_headers(raw: bytes) -> dict[str, bytes]:
    """Header name -> unfolded raw value, straight from the bytes."""
    block = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t")
    return {name.decode().lower(): value.strip() for name, _, value in
            (line.partition(b":") for line in block.split(b"\r\n"))}


def structure(part) -> object:
    if part.is_multipart():
        return (part.get_content_type(), [structure(p) for p in part.iter_parts()])
    return part.get_content_type()


class TestStructure:
    def test_text_only_is_a_single_7bit_part(self):
        composed = build(subject="Hi", text="Hello\nthere")
        message = parse(composed.raw)
        assert structure(message) == "text/plain"
        assert message["Content-Transfer-Encoding"] == "7bit"
        assert content(message) == "Hello\nthere\n"
        assert b"\r\n" in composed.raw and b"\n" not in composed.raw.replace(b"\r\n", b"")

    def test_html_only_gets_generated_text_in_an_alternative(self):
        message = parse(build(html="<p>Hi</p>").raw)
        assert structure(message) == ("multipart/alternative", ["text/plain", "text/html"])
        assert content(message.get_body(("plain",))) == "TEXT(<p>Hi</p>)\n"

    def test_cid_images_go_into_related_and_files_into_mixed(self):
        logo = AttachmentSpec(b"\x89PNG", "image/png", "logo.png", "logo@x", "attachments.0")
        pdf = AttachmentSpec(b"%PDF", "application/pdf", "a.pdf", None, "attachments.1")
        unused_cid = AttachmentSpec(b"GIF8", "image/gif", "b.gif", "unused@x", "attachments.2")
        message = parse(build(text="t", html='<img src="CID:logo@x">', attachments=(logo, pdf, unused_cid)).raw)
        assert structure(message) == ("multipart/mixed", [
            ("multipart/alternative", ["text/plain", ("multipart/related", ["text/html", "image/png"])]),
            "application/pdf", "image/gif"])
        image = next(p for p in message.walk() if p.get_content_type() == "image/png")
        assert image["Content-ID"] == "<logo@x>" and image.get_content_disposition() == "inline"
        # A cid the HTML never shows is an ordinary attachment that still carries its Content-ID.
        gif = next(p for p in message.walk() if p.get_content_type() == "image/gif")
        assert gif.get_content_disposition() == "attachment" and gif["Content-ID"] == "<unused@x>"

    def test_only_the_top_level_has_mime_version(self):
        raw = build(text="t", html="<p>h</p>", attachments=(AttachmentSpec(b"x", "text/plain", "x.txt"),)).raw
        assert raw.count(b"MIME-Version:") == 1

    def test_long_or_non_ascii_text_is_quoted_printable(self):
        assert parse(build(text="Grüße").raw)["Content-Transfer-Encoding"] == "quoted-printable"
        assert parse(build(text="x" * 1200).raw)["Content-Transfer-Encoding"] == "quoted-printable"
        assert max(len(line) for line in build(text="x" * 1200).raw.split(b"\r\n")) <= 78


class TestHeaders:
    def test_headers_are_set_in_order_and_dated(self):
        composed = build(subject="S", text="t", reply_to=(Mailbox("", "replies@example.com"),),
                         cc=(Mailbox("", "cc@example.com"),), headers=(("X-Tag", "v"),),
                         in_reply_to="<p@x>", references=("<r@x>", "<p@x>"))
        message = parse(composed.raw)
        names = [name for name, _ in message.items()]
        assert names[:9] == ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
                             "References"]
        assert message["Date"] == "Tue, 03 Nov 2026 10:00:00 +0000"
        assert message["References"] == "<r@x> <p@x>" and message["X-Tag"] == "v"
        assert composed.message_id.endswith("@example.com>")

    @settings(max_examples=60, deadline=None)
    # Drawn names avoid apostrophes, which are not ours: the tolerant decoder reads Outlook's
    # 'Name' quoting and so drops apostrophes at the edges of a name.
    @given(name=HEADER_TEXT.filter(lambda s: any(c.isalnum() for c in s) and "'" not in s), subject=HEADER_TEXT)
    def test_names_and_subjects_survive_any_text_as_ascii_headers(self, name, subject):
        composed = build(sender=Mailbox(name, "ann@example.com"), subject=subject, text="t")
        header_block = composed.raw.split(b"\r\n\r\n", 1)[0]
        assert header_block.isascii()
        # Read back with the project's decoder: the stdlib parser puts a space between adjacent
        # encoded words, which RFC 2047 6.2 says to drop.
        raw_headers = parse_raw_headers(composed.raw)
        [sender] = parse_address_list(raw_headers["from"])
        assert sender["name"] == name.strip()
        assert decode_header_value(raw_headers["subject"]).strip() == subject.strip()

    @pytest.mark.parametrize("evil", ["\r\nBcc: x@example.com", "\u2028", "\x1e", "\x00", "\x85"])
    def test_line_breaking_characters_in_names_and_subjects_become_spaces(self, evil):
        composed = build(sender=Mailbox(f"Ann{evil}Lee", "ann@example.com"), subject=f"Hi{evil}there", text="t")
        message = parse(composed.raw)
        assert message["Bcc"] is None and len(message.get_all("Subject")) == 1
        assert message["Subject"].startswith("Hi ") and message["Subject"].endswith("there")

    def test_idn_domains_become_a_labels_in_headers_and_envelope(self):
        composed = build(sender=Mailbox("Jörg", "joerg@bücher.example"), to=(Mailbox("", "ann@ÉCOLE.example"),))
        assert b"From: =?utf-8?q?J=C3=B6rg?= <joerg@xn--bcher-kva.example>" in composed.raw
        assert composed.envelope.mail_from == "joerg@xn--bcher-kva.example"
        assert composed.envelope.recipients == ("ann@xn--cole-9oa.example",)
        assert composed.envelope.smtputf8 is False

    def test_a_unicode_local_part_makes_an_smtputf8_message(self):
        composed = build(to=(Mailbox("Jörg", "jörg@bücher.example"),), subject="Grüße", text="t")
        assert composed.envelope.smtputf8 is True
        assert composed.envelope.recipients == ("jörg@bücher.example",)
        assert "To: Jörg <jörg@bücher.example>".encode() in composed.raw
        assert "Subject: Grüße".encode() in composed.raw  # RFC 6532: raw UTF-8 headers

    @pytest.mark.parametrize(("value", "expected"), [
        ("abc@example.com", "<abc@example.com>"), ("<abc@example.com>", "<abc@example.com>"),
        (" <a.b-c@host> ", "<a.b-c@host>")])
    def test_message_ids_are_normalized(self, value, expected):
        assert normalize_message_id(value) == expected
        assert build(message_id=value).message_id == expected

    @pytest.mark.parametrize("value", ["no-at-sign", "<a@b", "a b@c", "<a@b> <c@d>"])
    def test_malformed_message_ids_are_refused(self, value):
        with pytest.raises(ValueError, match="Message-ID"):
            normalize_message_id(value)


class TestEnvelopeAndSentCopy:
    def test_recipients_are_to_cc_bcc_once_each_and_bcc_stays_out_of_the_message(self):
        composed = build(to=(BOB, Mailbox("", "Carol@Example.com")), cc=(Mailbox("", "carol@example.com"),),
                         bcc=(Mailbox("Dan", "dan@example.com"), Mailbox("", "bob@example.com")), text="t")
        # (domains are case-insensitive and go out in lower case; local parts keep their case)
        assert composed.envelope.recipients == ("bob@example.com", "Carol@example.com", "dan@example.com")
        assert b"dan@example.com" not in composed.raw
        assert composed.sent_copy() == b"Bcc: Dan <dan@example.com>, bob@example.com\r\n" + composed.raw

    def test_without_bcc_the_sent_copy_is_the_sent_bytes(self):
        composed = build(text="t")
        assert composed.sent_copy() == composed.raw

    def test_at_least_one_recipient_is_required(self):
        with pytest.raises(ComposeError) as error:
            build(to=())
        assert error.value.field == "to"


class TestAttachments:
    @settings(max_examples=40, deadline=None)
    @given(content=st.binary(max_size=5000), filename=st.text(min_size=1, max_size=40).filter(
        lambda s: s.strip() and not any(c in s for c in "\r\n\0") and s.isprintable()))
    def test_any_bytes_and_file_name_come_back_identical(self, content, filename):
        raw = build(text="t", attachments=(AttachmentSpec(content, "application/octet-stream", filename),)).raw
        [attachment] = parse_message(raw).attachments
        assert extract_part(raw, attachment.part).content == content
        assert attachment.filename == filename.strip()

    @pytest.mark.parametrize("content_type", ["pdf", "multipart/mixed", "a/b/c", "text/"])
    def test_bad_content_types_name_the_attachment(self, content_type):
        with pytest.raises(ComposeError) as error:
            build(text="t", attachments=(AttachmentSpec(b"x", content_type, "x", None, "attachments.3"),))
        assert error.value.field == "attachments.3.contentType"

    def test_the_size_limit_names_the_largest_part(self):
        big = AttachmentSpec(b"x" * 5000, "application/octet-stream", "big", None, "attachments.1")
        small = AttachmentSpec(b"x", "application/octet-stream", "small", None, "attachments.0")
        with pytest.raises(ComposeError) as error:
            compose(OutgoingMessage(sender=ANN, to=(BOB,), text="t", attachments=(small, big)),
                    text_from_html=fake_text_from_html, max_bytes=4000)
        assert error.value.field == "attachments.1.content" and error.value.code == "MessageTooLarge"
        with pytest.raises(ComposeError) as error:
            compose(OutgoingMessage(sender=ANN, to=(BOB,), html="<p>" + "y" * 6000),
                    text_from_html=fake_text_from_html, max_bytes=4000)
        assert error.value.field == "html"


class TestCustomHeaders:
    @pytest.mark.parametrize(("name", "value", "fragment"), [
        ("Subject", "x", "'subject' field"), ("bcc", "x", "'bcc' field"), ("Date", "x", "set when"),
        ("Content-Type", "text/html", "MIME structure"), ("MIME-Version", "1.0", "MIME structure"),
        ("X Bad", "x", "not a valid header name"), ("X-Ok", "a\r\nBcc: evil@example.com", "one line"),
        ("X-Ok", "a\u2028b", r"U\+2028"),
    ])
    def test_reserved_malformed_or_injected_headers_are_refused(self, name, value, fragment):
        with pytest.raises(ComposeError, match=fragment) as error:
            build(text="t", headers=((name, value),))
        assert error.value.field == f"headers.{name}"

    def test_threading_headers_are_allowed_unless_a_reference_sets_them(self):
        composed = build(text="t", headers=(("In-Reply-To", "<a@b>"), ("References", "<a@b>")))
        assert parse(composed.raw)["In-Reply-To"] == "<a@b>"
        with pytest.raises(ComposeError, match="reference"):
            build(text="t", in_reply_to="<p@x>", headers=(("References", "<a@b>"),))


def _spaced_subjects() -> list[str]:
    # Lengths chosen so the folder's split falls before, on and after the space.
    subjects = []
    for n in range(40, 121, 1):
        subjects += ["a" * n + " ¡Hola", "x " * (n // 2) + "é (paren) é", "a" * n + " é !x, ok"]
    return subjects


class TestNonAsciiSubjectSpaces:
    """CPython's folder dropped or doubled the space before a non-ASCII word where it folded."""

    @staticmethod
    def check(subject: str) -> None:
        composed = build(subject=subject, text="t")
        raw_value = parse_raw_headers(composed.raw)["subject"].decode("ascii")
        assert parse(composed.raw)["Subject"] == subject
        assert str(make_header(decode_header(raw_value))) == subject
        assert decode_header_value(raw_value) == subject
        assert all(len(line) <= 78 for line in composed.raw.split(b"\r\n"))

    @pytest.mark.parametrize("subject", _spaced_subjects())
    def test_spaces_around_non_ascii_words_survive_every_fold(self, subject):
        self.check(subject)

    @settings(max_examples=100, deadline=None)
    @given(prefix=st.text(alphabet="ab ,\"'é", max_size=90), word=st.sampled_from(["¡Hola", "Grüße", "✓", "日本"]),
           tail=st.text(alphabet="ab !(é", max_size=30))
    @example(prefix="a" * 56, word="¡Hola", tail="")
    @example(prefix="Re: " + "b" * 60 + ",", word="Grüße", tail=" !x")
    def test_any_subject_with_a_non_ascii_word_reads_back_exactly(self, prefix, word, tail):
        subject = (prefix + " " + word + " " + tail).strip()
        self.check(subject)


def _spaced_names() -> list[str]:
    names = []
    for n in range(1, 61, 3):
        names += ["a" * n + " ¡Hola", "Lee, " + "b" * n + " Jörg", 'Ann "Q" ' + "c" * n + " ¡Hola amigo",
                  "Jörg Müller " + "x " * (n // 3) + "Ährenthal"]
    return names


class TestNonAsciiDisplayNameSpaces:
    """Display names kept spaces next to non-ASCII words only by luck of where the folder split."""

    @staticmethod
    def check(name: str) -> None:
        composed = build(sender=Mailbox(name, "ann@example.com"), to=(BOB, Mailbox(name, "cy@example.com")),
                         bcc=(Mailbox(name, "dan@example.com"),), text="t")
        raw_headers = parse_raw_headers(composed.sent_copy())
        for field, address in [("from", "ann@example.com"), ("to", "cy@example.com"), ("bcc", "dan@example.com")]:
            decoded = str(make_header(decode_header(raw_headers[field].decode("ascii"))))
            assert f"{name} <{address}>" in decoded
            assert any(m["name"] == name for m in parse_address_list(raw_headers[field]))
        # The email package's reader folds runs of spaces inside a name into one and, unlike
        # RFC 2047 6.2, keeps the space between two encoded words, which a run of non-atom
        # words too long for one encoded word needs.
        if b"?= =?" not in raw_headers["from"]:
            assert parse(composed.raw)["From"].addresses[0].display_name == re.sub(" +", " ", name)
        assert all(len(line) <= 78 for line in composed.sent_copy().split(b"\r\n"))

    @pytest.mark.parametrize("name", _spaced_names())
    def test_spaces_around_non_ascii_words_survive_every_fold(self, name):
        self.check(name)

    @settings(max_examples=100, deadline=None)
    @given(prefix=st.text(alphabet="ab ,\".é", max_size=30), word=st.sampled_from(["¡Hola", "Grüße", "✓", "日本"]),
           tail=st.text(alphabet="ab !(é", max_size=12))
    @example(prefix="Lee, Ann  ", word="Jörg", tail="")
    @example(prefix="a" * 40, word="¡Hola", tail="x y")
    def test_any_name_with_a_non_ascii_word_reads_back_exactly(self, prefix, word, tail):
        self.check((prefix + " " + word + " " + tail).strip())
