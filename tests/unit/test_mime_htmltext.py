"""HTML -> text for the plain alternative of mail we send."""

from __future__ import annotations

import pytest

from chalicelib.mime.htmltext import html_to_text

CASES = [
    ("<p>Hello&nbsp;<b>World</b>!</p>", "Hello World!"),
    ("<p>One</p><p>Two</p>", "One\n\nTwo"),
    ("<div>Line one<br>Line two</div>", "Line one\nLine two"),
    ("first<br><br>second", "first\n\nsecond"),                     # <br><br> is a blank line
    ("<div>a</div><div><br></div><div>b</div>", "a\n\nb"),            # Gmail's empty line
    ("<ul><li>One</li><li>Two</li></ul>", "- One\n- Two"),
    ('<a href="https://example.com/x">our site</a>', "our site (https://example.com/x)"),
    ('<a href="https://example.com/">https://example.com</a>', "https://example.com"),
    ('<a href="mailto:a@example.com">a@example.com</a>', "a@example.com"),
    ('<a href="mailto:a@example.com">write us</a>', "write us (mailto:a@example.com)"),
    ('<a href="javascript:alert(1)">click</a>', "click"),
    ('<a href="cid:x">logo</a>', "logo"),
    ("<a>no href</a>", "no href"),
    ("<script>alert(1)</script><style>p{}</style>visible", "visible"),
    ("<html><head><title>Title</title></head><body>Body</body></html>", "Body"),
    ("<!-- a comment -->text", "text"),
    ("<table><tr><td>A</td><td>B</td></tr><tr><td>C</td><td>D</td></tr></table>", "A | B\nC | D"),
    ('<p>Logo: <img src="cid:x" alt="ACME"></p>', "Logo: ACME"),
    ("<pre>  indented\n    code</pre>", "  indented\n    code"),
    ("a   lot\n\nof    space", "a lot of space"),
    ("Fish &amp; Chips &lt;3 &#8364;", "Fish & Chips <3 €"),
    ("<h1>Title</h1>text<hr>after", "Title\n\ntext\n\n----------\n\nafter"),
    ("<p>unclosed <b>tags <i>everywhere", "unclosed tags everywhere"),
    ("", ""),
]


@pytest.mark.parametrize(("html", "text"), CASES)
def test_html_to_text(html, text):
    assert html_to_text(html) == text
