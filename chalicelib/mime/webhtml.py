"""A message's HTML made safe to show in a browser, and its ``cid:`` images inlined (pure).

:func:`web_safe_html` runs the HTML through nh3 (the ammonia sanitizer: an HTML5 parser and
an allow list, never patterns over markup):

- kept: the formatting tags mail uses (tables, fonts, lists, headings), presentational
  attributes (``align``, ``bgcolor``, ``width`` ...) and ``style`` with an allow list of
  CSS properties (no ``position``, ``z-index``: a message cannot lay itself over the page);
- dropped with their content: ``script``, ``style`` blocks, ``title``, ``template``,
  ``noscript``; dropped, content kept: every other tag (``form``, ``input``, ``svg``,
  ``iframe``, ``object``, ``meta``, ``base`` ...), every event handler (``on*``), ``id``,
  ``name`` and ``class`` (no DOM clobbering, no styling by the page's own classes);
- URLs: ``http``, ``https``, ``mailto``, ``tel`` and ``cid`` only, never relative ones (they
  would resolve against the page showing the message); links get ``rel="noopener noreferrer"``
  and ``target="_blank"``;
- a ``style`` attribute that asks for script (``expression(``, ``javascript:``,
  ``vbscript:``, also behind CSS comments, escapes or white space) is dropped whole.

A message with only plain text gets HTML made from it (escaped, line breaks kept), as
EmailEngine's ``webSafeHtml`` does, so a client has one field to show.

:func:`embed_cid_images` replaces ``<img src="cid:...">`` references with ``data:`` URLs
within a byte budget; the attribute is found by :class:`html.parser.HTMLParser` and only
the ``src`` of that ``img`` start tag is rewritten. The data URLs are added after
sanitizing (the sanitizer allows no ``data:`` URL from the message itself).
"""

from __future__ import annotations

import base64
import html as html_lib
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser

_TAGS = {
    "a", "abbr", "b", "bdi", "bdo", "big", "blockquote", "br", "caption", "center", "cite", "code", "col",
    "colgroup", "dd", "del", "details", "div", "dl", "dt", "em", "figcaption", "figure", "font", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span",
    "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u",
    "ul", "wbr",
}
_CONTENT_DROPPED = {"script", "style", "title", "template", "noscript"}
_CELL = {"align", "valign", "width", "height", "bgcolor", "colspan", "rowspan", "nowrap"}
_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"style", "dir", "lang", "title", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height", "border", "hspace", "vspace"},
    "table": {"width", "height", "border", "cellpadding", "cellspacing", "bgcolor", "summary"},
    "td": _CELL, "th": _CELL, "tr": {"valign", "bgcolor", "height"},
    "col": {"span", "width", "valign"}, "colgroup": {"span", "width", "valign"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type"}, "ul": {"type"}, "li": {"value"},
    "hr": {"width", "size", "noshade", "color"},
    "blockquote": {"cite"}, "q": {"cite"}, "del": {"cite", "datetime"}, "ins": {"cite", "datetime"},
}
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
_CSS_PROPERTIES = {
    "background", "background-color", "border", "border-bottom", "border-collapse", "border-color", "border-left",
    "border-radius", "border-right", "border-spacing", "border-style", "border-top", "border-width", "color",
    "direction", "display", "font", "font-family", "font-size", "font-style", "font-variant", "font-weight",
    "height", "letter-spacing", "line-height", "list-style", "list-style-type", "margin", "margin-bottom",
    "margin-left", "margin-right", "margin-top", "max-height", "max-width", "min-height", "min-width", "padding",
    "padding-bottom", "padding-left", "padding-right", "padding-top", "table-layout", "text-align",
    "text-decoration", "text-indent", "text-transform", "vertical-align", "white-space", "width", "word-break",
    "word-spacing", "word-wrap", "overflow-wrap",
}
# Script by way of CSS: IE's expression(), and script URLs inside url(...).
_CSS_SCRIPT = ("expression(", "javascript:", "vbscript:", "-moz-binding", "behavior:")


def _css_without_disguise(value: str) -> str:
    """The declaration as a browser would read it for the checks above: comments, escapes and
    white space removed, lower case (``e/**/xpression(``, ``java\\script:``)."""
    out, rest = [], value
    while "/*" in rest:
        before, _, after = rest.partition("/*")
        out.append(before)
        rest = after.partition("*/")[2]
    out.append(rest)
    return "".join("".join(out).replace("\\", "").split()).lower()


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "style" and any(token in _css_without_disguise(value) for token in _CSS_SCRIPT):
        return None
    return value


def plain_to_html(text: str) -> str:
    """Plain text as HTML a browser shows the same way: escaped, line breaks kept."""
    escaped = html_lib.escape(text).replace("\r\n", "\n").replace("\n", "<br>\n")
    return f'<div style="white-space: pre-wrap">{escaped}</div>'


def web_safe_html(html: str | None, plain: str | None) -> str | None:
    """The message's HTML (or its plain text as HTML) sanitized for display in a browser."""
    if not html:
        return plain_to_html(plain) if plain else None
    import nh3  # lazily: only a webSafeHtml read pays for loading the sanitizer

    return nh3.clean(html, tags=_TAGS, clean_content_tags=_CONTENT_DROPPED, attributes=_ATTRIBUTES,
                     attribute_filter=_attribute_filter, url_schemes=_URL_SCHEMES, url_relative="deny",
                     filter_style_properties=_CSS_PROPERTIES, link_rel="noopener noreferrer",
                     set_tag_attribute_values={"a": {"target": "_blank"}}, strip_comments=True)


class _CidImages(HTMLParser):
    """Where each ``<img src="cid:...">`` start tag is: (line, column, tag text, content id)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, int, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._image(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._image(tag, attrs)

    def _image(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "img":
            return
        src = next((value for name, value in attrs if name == "src"), None) or ""
        if src[:4].lower() == "cid:" and src[4:].strip():
            line, column = self.getpos()
            self.found.append((line, column, self.get_starttag_text() or "", src[4:].strip().strip("<>")))


def cid_images(html: str) -> list[str]:
    """The content ids the HTML shows as images, in order of first use."""
    parser = _CidImages()
    parser.feed(html)
    parser.close()
    return list(dict.fromkeys(cid for *_, cid in parser.found))


@dataclass(frozen=True)
class InlineImage:
    content_type: str
    content: bytes

    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.content).decode('ascii')}"


def embed_cid_images(html: str, images: Mapping[str, InlineImage]) -> str:
    """``html`` with the ``src`` of each ``<img src="cid:ID">`` whose ID is in ``images``
    replaced by its data URL; every other byte as it was."""
    parser = _CidImages()
    parser.feed(html)
    parser.close()
    line_starts = [0]
    for text_line in html.split("\n")[:-1]:
        line_starts.append(line_starts[-1] + len(text_line) + 1)
    pieces: list[str] = []
    done = 0
    for line, column, tag_text, cid in parser.found:
        image = images.get(cid)
        start = line_starts[line - 1] + column
        if image is None or html[start:start + len(tag_text)] != tag_text:
            continue
        rewritten = _replace_src(tag_text, image.data_url())
        if rewritten is None:
            continue
        pieces += [html[done:start], rewritten]
        done = start + len(tag_text)
    pieces.append(html[done:])
    return "".join(pieces)


def _replace_src(tag_text: str, data_url: str) -> str | None:
    """The start tag with its ``cid:`` src value (quoted or not, as written) replaced."""
    lowered = tag_text.lower()
    at = lowered.find("cid:")
    while at >= 0:
        # The value runs to its closing quote, or to white space or ">" when unquoted.
        quote = tag_text[at - 1] if at > 0 and tag_text[at - 1] in "\"'" else None
        end = at
        while end < len(tag_text) and (tag_text[end] != quote if quote else tag_text[end] not in " \t\r\n>"):
            end += 1
        head = lowered[:at].rstrip(" \t\r\n\"'")
        if head.endswith("="):
            head = head[:-1].rstrip(" \t\r\n")
            if head.endswith("src") and head[-4:-3] in (" ", "\t", "\r", "\n"):
                return tag_text[:at] + data_url + tag_text[end:]
        at = lowered.find("cid:", end)
    return None
