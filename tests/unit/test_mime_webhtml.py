"""Sanitizing a message's HTML and inlining its cid: images (pure)."""

from __future__ import annotations

import pytest

from chalicelib.mime.webhtml import InlineImage, cid_images, embed_cid_images, plain_to_html, web_safe_html

PNG = InlineImage("image/png", b"\x89PNG")
DATA = "data:image/png;base64,iVBORw=="


@pytest.mark.parametrize(("html", "expected"), [
    ('<img src="cid:a@x">', f'<img src="{DATA}">'),
    ("<img src='cid:a@x' alt=1>", f"<img src='{DATA}' alt=1>"),
    ("<IMG SRC = cid:a@x>", f"<IMG SRC = {DATA}>"),
    ('<img\n  alt="x"\n  src="cid:a@x"/>', f'<img\n  alt="x"\n  src="{DATA}"/>'),
    ('<img data-src="cid:a@x" src="cid:a@x">', f'<img data-src="cid:a@x" src="{DATA}">'),
    ('<img src="cid:b@x">', '<img src="cid:b@x">'),  # not among the images: unchanged
    ('<a href="cid:a@x">cid:a@x</a>', '<a href="cid:a@x">cid:a@x</a>'),  # only img src
])
def test_only_the_src_of_img_tags_changes(html, expected):
    prefix = "<p>before\nline</p>\n"
    assert embed_cid_images(prefix + html + " after", {"a@x": PNG}) == prefix + expected + " after"


def test_cid_images_lists_each_id_once_in_order():
    html = '<img src="cid:b@x"><img src="CID:<a@x>"><img src="cid:b@x"><img src="https://e.example/i.png">'
    assert cid_images(html) == ["b@x", "a@x"]


@pytest.mark.parametrize("style", [
    "width: expression(alert(1))", "width: ex/**/pression(alert(1))", "background: url(javascript:alert(1))",
    "background: url('JAVA\\SCRIPT:alert(1)')", "color: red; -moz-binding: url(x.xml#y)",
])
def test_a_style_asking_for_script_is_dropped_whole(style):
    assert web_safe_html(f'<p style="{style}">x</p>', None) == "<p>x</p>"


def test_a_harmless_style_keeps_its_allowed_properties():
    assert (web_safe_html('<p style="color: red; position: absolute; font-weight: bold">x</p>', None)
            == '<p style="color:red;font-weight:bold">x</p>')


def test_plain_text_becomes_escaped_html():
    assert plain_to_html("a <b> & c\nd") == '<div style="white-space: pre-wrap">a &lt;b&gt; &amp; c<br>\nd</div>'
    assert web_safe_html(None, "x") == plain_to_html("x")
    assert web_safe_html(None, None) is None and web_safe_html("", "") is None
