"""Replies and forwards: threading headers, subject prefixes, recipients and quoting (pure)."""

from __future__ import annotations

import pytest

from chalicelib.smtp.addresses import Mailbox
from chalicelib.smtp.compose import AttachmentSpec
from chalicelib.smtp.replies import (
    MAX_REFERENCES,
    OriginalMessage,
    forwarded_attachments,
    inline_forward,
    inline_images,
    prefixed_subject,
    quote_reply,
    reply_recipients,
    threading_headers,
)

ME = "me@example.com"
ALICE = Mailbox("Alice", "alice@example.com")
BOB = Mailbox("Bob", "bob@example.com")
CAROL = Mailbox("", "carol@example.com")


def original(**fields) -> OriginalMessage:
    return OriginalMessage(**{"message_id": "<m3@x>", "subject": "Plan", "date": "Tue, 3 Nov 2026 10:00:00 +0000",
                              "sender": (ALICE,), "to": (Mailbox("Me", ME),), **fields})


class TestThreadingHeaders:
    @pytest.mark.parametrize(("fields", "references"), [
        ({}, ("<m3@x>",)),
        ({"references": ("<m1@x>", "<m2@x>")}, ("<m1@x>", "<m2@x>", "<m3@x>")),
        # no References: a single In-Reply-To stands in for the chain (RFC 5322 3.6.4)
        ({"in_reply_to": ("<m2@x>",)}, ("<m2@x>", "<m3@x>")),
        ({"references": ("<m1@x>", "<m3@x>", "<m1@x>")}, ("<m1@x>", "<m3@x>")),
        ({"message_id": None, "references": ("<m1@x>",)}, ("<m1@x>",)),
    ])
    def test_references_extend_the_chain_once_each(self, fields, references):
        in_reply_to, chain = threading_headers(original(**fields))
        assert chain == references
        assert in_reply_to == fields.get("message_id", "<m3@x>")

    def test_very_long_chains_keep_the_root_and_the_latest(self):
        ids = tuple(f"<m{n}@x>" for n in range(100))
        _, chain = threading_headers(original(references=ids, message_id="<last@x>"))
        assert len(chain) == MAX_REFERENCES
        assert chain[0] == "<m0@x>" and chain[-1] == "<last@x>" and chain[-2] == "<m99@x>"


class TestSubjects:
    @pytest.mark.parametrize(("subject", "action", "expected"), [
        ("Plan", "reply", "Re: Plan"),
        ("Re: Plan", "reply", "Re: Plan"),
        ("RE: Plan", "reply-all", "RE: Plan"),
        ("AW: Plan", "reply", "AW: Plan"),
        ("Re[2]: Plan", "reply", "Re[2]: Plan"),
        ("  Plan ", "reply", "Re: Plan"),
        ("", "reply", "Re: "),
        ("Plan", "forward", "Fwd: Plan"),
        ("Fwd: Plan", "forward", "Fwd: Plan"),
        ("FW: Plan", "forward", "FW: Plan"),
        ("WG: Plan", "forward", "WG: Plan"),
        ("Re: Plan", "forward", "Fwd: Re: Plan"),
        ("Fwd: Plan", "reply", "Re: Fwd: Plan"),
        ("Really?", "reply", "Re: Really?"),
    ])
    def test_prefix_added_only_when_missing(self, subject, action, expected):
        assert prefixed_subject(subject, action) == expected


class TestRecipients:
    def test_reply_goes_to_reply_to_else_from(self):
        assert reply_recipients(original(), "reply", {ME}) == ([ALICE], [])
        to, _ = reply_recipients(original(reply_to=(BOB,)), "reply", {ME})
        assert to == [BOB]

    def test_reply_all_adds_to_and_cc_without_me_or_duplicates(self):
        message = original(to=(Mailbox("Me", "ME@Example.COM"), BOB, ALICE), cc=(CAROL, BOB))
        to, cc = reply_recipients(message, "reply-all", {ME})
        assert to == [ALICE]
        assert cc == [BOB, CAROL]

    def test_replying_to_my_own_message_goes_to_its_recipients(self):
        mine = original(sender=(Mailbox("Me", ME),), to=(BOB, CAROL), cc=(ALICE,))
        assert reply_recipients(mine, "reply", {ME}) == ([BOB, CAROL], [])
        assert reply_recipients(mine, "reply-all", {ME}) == ([BOB, CAROL], [ALICE])

    def test_an_alias_used_as_from_counts_as_mine(self):
        message = original(to=(Mailbox("", "alias@example.com"), BOB))
        _, cc = reply_recipients(message, "reply-all", {ME, "alias@example.com"})
        assert cc == [BOB]

    def test_idn_and_a_label_forms_are_the_same_address(self):
        message = original(to=(Mailbox("", "me@bücher.example"), BOB))
        _, cc = reply_recipients(message, "reply-all", {"me@xn--bcher-kva.example"})
        assert cc == [BOB]


class TestQuoting:
    def test_text_reply_quotes_every_line_under_an_attribution(self):
        text, html = quote_reply(original(text="one\n\ntwo\n"), "Thanks", None, str.upper)
        assert html is None
        assert text == ("Thanks\n\nOn Tue, 3 Nov 2026 10:00:00 +0000, Alice <alice@example.com> wrote:\n"
                        "> one\n>\n> two\n")

    def test_html_reply_blockquotes_the_original_body_inside_the_users_body(self):
        source = "<html><head><style>p{}</style></head><body class='x'><p>Original</p></body></html>"
        text, html = quote_reply(original(html=source), None, "<html><body><p>Mine</p></body></html>", str.upper)
        assert text is None
        assert html.startswith("<html><body><p>Mine</p><br><div class=\"imapless_quote\">")
        assert '<blockquote type="cite"' in html and "<p>Original</p></blockquote>" in html
        assert "<style>" not in html and html.endswith("</div></body></html>")

    def test_a_text_only_original_is_escaped_into_html(self):
        _, html = quote_reply(original(text="a < b\nc"), None, "<p>x</p>", str.upper)
        assert "a &lt; b<br>\nc" in html

    def test_an_html_only_original_is_quoted_as_text_through_the_converter(self):
        text, _ = quote_reply(original(html="<p>hi</p>"), "ok", None, lambda html: "converted")
        assert text.endswith("wrote:\n> converted\n")

    def test_inline_forward_lists_the_original_headers_then_its_body(self):
        message = original(text="Body\n", cc=(CAROL,))
        text, html = inline_forward(message, "FYI", "<p>FYI</p>", str.upper)
        assert text == ("FYI\n\n---------- Forwarded message ---------\nFrom: Alice <alice@example.com>\n"
                        "Date: Tue, 3 Nov 2026 10:00:00 +0000\nSubject: Plan\nTo: Me <me@example.com>\n"
                        "Cc: carol@example.com\n\nBody\n")
        assert "From: Alice &lt;alice@example.com&gt;" in html and "Body" in html


class TestForwardedParts:
    def test_inline_images_follow_the_html_and_the_rest_are_attachments(self):
        logo = AttachmentSpec(b"png", "image/png", "logo.png", "logo@x")
        pdf = AttachmentSpec(b"pdf", "application/pdf", "a.pdf")
        stray = AttachmentSpec(b"gif", "image/gif", "b.gif", "unused@x")
        message = original(html='<img src="cid:LOGO@x">', attachments=(logo, pdf, stray))
        assert inline_images(message) == [logo]
        assert forwarded_attachments(message) == [pdf, stray]
